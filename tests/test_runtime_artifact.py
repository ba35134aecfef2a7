"""The runtime refuses every bad artifact or input with a clear error, never an action."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from test_export_parity import ACT, OBS, build

from metabot.errors import ArtifactError
from metabot.runtime import InputError, load
from metabot.runtime.artifact import compute_digest, split_model


@pytest.fixture(scope="module")
def rma_artifact(tmp_path_factory):
    path = tmp_path_factory.mktemp("art") / "rma.onnx"
    build("rma", path, n_random=50)
    return path


@pytest.fixture(scope="module")
def oracle_artifact(tmp_path_factory):
    path = tmp_path_factory.mktemp("art") / "oracle.onnx"
    build("oracle", path, n_random=50)
    return path


def _edit_metadata(src, dst, edit, redigest: bool = False):
    model = onnx.load(str(src))
    doc = json.loads(model.metadata_props[0].value)
    edit(doc)
    if redigest:
        stripped, _ = split_model(model.SerializeToString())
        doc["digest"] = compute_digest(stripped, doc)
    model.metadata_props[0].value = json.dumps(doc)
    onnx.save(model, str(dst))
    return dst


def test_loads_and_acts(rma_artifact):
    agent = load(rma_artifact)
    assert agent.metadata["algorithm"] == "rma" and agent.metadata["format_version"] == 1
    a = agent.act(np.zeros(OBS))
    assert a.shape == (ACT,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.999])
def test_truncated(rma_artifact, tmp_path, keep):
    data = rma_artifact.read_bytes()
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ArtifactError, match="truncated"):
        load(bad)


def test_truncated_exactly_before_metadata(rma_artifact, tmp_path):
    data = rma_artifact.read_bytes()
    stripped, _ = split_model(data)
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(stripped)  # protobuf puts metadata_props (field 14) after the graph
    with pytest.raises(ArtifactError, match="no 'metabot' metadata"):
        load(bad)


def test_missing_file(tmp_path):
    with pytest.raises(ArtifactError, match="no such artifact"):
        load(tmp_path / "nope.onnx")


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["action"].update(scale=[0.2] * ACT),
        lambda d: d["observation"]["layout"].reverse(),
        lambda d: d["normalizer"]["mean"].__setitem__(0, 0.0),
        lambda d: d["task"].update(control_rate_hz=100.0),
    ],
    ids=["action-scale", "obs-order", "normalizer", "rate"],
)
def test_edited_metadata(rma_artifact, tmp_path, edit):
    bad = _edit_metadata(rma_artifact, tmp_path / "edit.onnx", edit)
    with pytest.raises(ArtifactError, match="digest mismatch"):
        load(bad)


def test_edited_weights(rma_artifact, tmp_path):
    model = onnx.load(str(rma_artifact))
    init = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    arr = np.frombuffer(init.raw_data, np.float32).copy()
    arr[0] += 1e-3
    init.raw_data = arr.tobytes()
    bad = tmp_path / "w.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(ArtifactError, match="digest mismatch"):
        load(bad)


def test_newer_format_version(rma_artifact, tmp_path):
    bad = _edit_metadata(rma_artifact, tmp_path / "v2.onnx", lambda d: d.update(format_version=2))
    with pytest.raises(ArtifactError, match=r"format version 2 .*format version 1"):
        load(bad)


def test_schema_violation_with_valid_digest(rma_artifact, tmp_path):
    bad = _edit_metadata(
        rma_artifact, tmp_path / "s.onnx", lambda d: d["action"].pop("low"), redigest=True
    )
    with pytest.raises(ArtifactError, match=r"metadata.action: missing 'low'"):
        load(bad)


def test_unknown_action_mode_is_refused(rma_artifact, tmp_path):
    # a robot must never run actions whose meaning the runtime does not know
    bad = _edit_metadata(rma_artifact, tmp_path / "m.onnx",
                         lambda d: d["action"].update(mode="velocity"), redigest=True)
    with pytest.raises(ArtifactError, match="mode"):
        load(bad)


def test_metadata_lies_about_shapes(rma_artifact, tmp_path):
    def edit(d):
        d["state"][0]["shape"][1] += 1

    bad = _edit_metadata(rma_artifact, tmp_path / "s.onnx", edit, redigest=True)
    with pytest.raises(ArtifactError, match="do not match the metadata|state tensor"):
        load(bad)


@pytest.mark.parametrize(
    "obs, msg",
    [
        (np.zeros(OBS + 1), "shape"),
        (np.zeros((2, OBS)), "shape"),
        (np.zeros((OBS, 1)), "shape"),
        (np.r_[np.zeros(OBS - 1), np.nan], r"NaN or Inf at index \[8\]"),
        (np.r_[np.inf, np.zeros(OBS - 1)], r"NaN or Inf at index \[0\]"),
    ],
)
def test_bad_observation(rma_artifact, obs, msg):
    agent = load(rma_artifact)
    agent.act(np.ones(OBS))
    before = agent.state
    with pytest.raises(InputError, match=msg):
        agent.act(obs)
    with pytest.raises(ValueError):  # InputError is also a ValueError
        agent.act(obs)
    np.testing.assert_array_equal(agent.state[0], before[0])  # memory untouched


def test_bad_reward_and_applied_action(rma_artifact):
    agent = load(rma_artifact)
    with pytest.raises(InputError, match="reward"):
        agent.act(np.zeros(OBS), reward=float("nan"))
    with pytest.raises(InputError, match="applied action"):
        agent.record_applied(np.full(ACT, np.inf))
    with pytest.raises(InputError, match="applied action has shape"):
        agent.record_applied(np.zeros(ACT + 2))


def test_privileged_required_for_oracle(oracle_artifact):
    agent = load(oracle_artifact)
    with pytest.raises(InputError, match="privileged"):
        agent.act(np.zeros(OBS))
    assert agent.act(np.zeros(OBS), privileged=np.zeros(4)).shape == (ACT,)


def test_adapt_without_step_is_clear(rma_artifact):
    with pytest.raises(ArtifactError, match="no adapt"):
        load(rma_artifact).adapt([])


def test_state_carries_and_resets(rma_artifact):
    agent = load(rma_artifact)
    obs = np.linspace(-1, 1, OBS)
    first = agent.act(obs)
    second = agent.act(obs)
    assert not np.allclose(first, second)  # the history window changed the action
    agent.reset()
    np.testing.assert_array_equal(agent.act(obs), first)


def test_runtime_imports_without_torch(rma_artifact):
    """A robot computer has no torch: importing and running the runtime must not need it."""
    code = f"""
import sys
for name in ("torch", "mujoco", "onnx", "gymnasium"):
    sys.modules[name] = None  # any import of these now raises ImportError
import numpy as np
import metabot.runtime as rt
agent = rt.load({str(rma_artifact)!r})
print(agent.act(np.zeros({OBS})).shape)
banned = [m for m in sys.modules if m.split(".")[0] in ("torch", "mujoco", "onnx", "gymnasium")
          and sys.modules[m] is not None]
assert not banned, banned
assert "metabot.algos" not in sys.modules
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"({ACT},)"


def test_unknown_optional_field_is_accepted(rma_artifact, tmp_path):
    """A later metabot of the same format version may add optional fields."""
    ok = _edit_metadata(
        rma_artifact, tmp_path / "x.onnx", lambda d: d.update(calibration={"k": 1}), redigest=True
    )
    assert load(ok).metadata["calibration"] == {"k": 1}
