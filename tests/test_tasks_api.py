"""Task API: names/get, Task round trip, splits, oracle features, spec validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from metabot.sim.spec import load_spec
from metabot.sim.task import Task

from metabot import tasks
from metabot.errors import ConfigError, TaskError

ARM_SPEC = Path(tasks.__file__).resolve().parent.parent / "sim" / "arm6.toml"


def test_names_and_unknown():
    assert {"arm2d-reach", "arm6-reach"} <= set(tasks.names())
    with pytest.raises(TaskError, match="unknown task distribution"):
        tasks.get("no-such-task")


@pytest.mark.parametrize("name", tasks.names())
def test_task_round_trip_and_oracle(name):
    dist = tasks.get(name)
    for split in ("train", "test", "ood", "fault"):
        for t in dist.sample(4, split=split, seed=3):
            d = json.loads(json.dumps(t.to_dict()))
            assert Task.from_dict(d) == t
            assert Task.from_dict(d).to_dict() == t.to_dict()
            f = dist.oracle_features(t)
            assert f.shape == (dist.oracle_dim,) and f.dtype == np.float32
            if split in ("train", "test"):
                assert np.all(np.abs(f) <= 1.0 + 1e-6)
    assert json.loads(json.dumps(dist.ranges())) == dist.ranges()


def test_sampling_deterministic_and_splits_disjoint():
    dist = tasks.get("arm6-reach")
    a = dist.sample(50, split="train", seed=7)
    assert a == dist.sample(50, split="train", seed=7)
    assert a != dist.sample(50, split="train", seed=8)
    train = {t.index for s in range(5) for t in dist.sample(200, split="train", seed=s)}
    test = {t.index for s in range(5) for t in dist.sample(200, split="test", seed=s)}
    assert train.isdisjoint(test)
    ptrain = {t.params for s in range(5) for t in dist.sample(200, split="train", seed=s)}
    ptest = {t.params for s in range(5) for t in dist.sample(200, split="test", seed=s)}
    assert ptrain.isdisjoint(ptest)
    # ood widens: some ood draws fall outside the training ranges
    ood = np.array([dist.oracle_features(t) for t in dist.sample(100, split="ood", seed=0)])
    assert np.abs(ood).max() > 1.05


def test_fault_split_payload_and_weak_servo():
    dist = tasks.get("arm6-reach")
    spec = dist.spec
    gain, payload = spec.param("servo_gain"), spec.param("payload")
    for t in dist.sample(20, split="fault", seed=1):
        g = t.param("servo_gain")
        assert np.isclose(g, 0.5 * gain.lo).sum() == 1  # exactly one weak servo
        assert int(np.argmin(g)) < 4  # on the arm chain, never the gripper
        assert t.value("payload") <= 3 * payload.hi + 1e-12
    same = dist.sample(20, split="test", seed=1)
    fault = dist.sample(20, split="fault", seed=1)
    for s, f in zip(same, fault, strict=True):
        assert s.index == f.index
        assert np.isclose(f.value("payload"), 3 * s.value("payload"))


@pytest.mark.parametrize(
    "bad",
    [
        "not a dict",
        {"dist": "arm6-reach", "split": "train", "index": 1},
        {"dist": "arm6-reach", "split": "nope", "index": 1, "params": {}},
        {"dist": "arm6-reach", "split": "train", "index": "x", "params": {}},
        {"dist": "arm6-reach", "split": "train", "index": 1, "params": {"a": ["x"]}},
        {"dist": "arm6-reach", "split": "train", "index": 1, "params": {}, "extra": 1},
    ],
)
def test_malformed_task_dict(bad):
    with pytest.raises(TaskError, match="malformed task dict"):
        Task.from_dict(bad)


def _write_spec(tmp_path: Path, mutate) -> Path:
    import tomllib

    raw = tomllib.loads(ARM_SPEC.read_text())
    raw["distribution"]["model"] = str(ARM_SPEC.parent / "arm6.xml")
    mutate(raw)
    lines = ["[distribution]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in raw["distribution"].items()]
    for p in raw["param"]:
        lines.append("[[param]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in p.items()]
    path = tmp_path / "spec.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_spec_round_trip_builds_a_distribution(tmp_path):
    path = _write_spec(tmp_path, lambda raw: None)
    dist = tasks.from_spec(path)
    assert dist.oracle_dim == tasks.get("arm6-reach").oracle_dim


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["param"][0].pop("why"), "missing field 'why'"),
        (lambda r: r["param"][1].update(range=[0.3, 0.1]), "lo 0.3 > hi 0.1"),
        (lambda r: r["param"][0].update(range=[0.0, 1.0]), "scale factor must be > 0"),
        (lambda r: r["param"][1].update(range=[-0.1, 0.2]), "must be >= 0"),
        (lambda r: r["param"][0].update(target="warp_drive"), "unknown target"),
        (lambda r: r["param"][0].update(elements=["no_body"]), "no body named 'no_body'"),
        (lambda r: r["distribution"].pop("control_dt"), "missing field 'control_dt'"),
        (lambda r: r["distribution"].update(physics_dt=0.01), "physics_dt"),
        (lambda r: r["param"][6].update(range=[0, 1.5]), "whole numbers"),
        (lambda r: r["param"].append({"name": "cd", "target": "command_delay", "unit": "s",
                                      "range": [0, 0.02], "why": "link"}),
         "command_delay must stay below"),
    ],
)
def test_spec_validation_errors(tmp_path, mutate, message):
    path = _write_spec(tmp_path, mutate)
    with pytest.raises(ConfigError, match=message) as exc:
        tasks.from_spec(path)
    assert str(path) in str(exc.value)


def test_load_spec_missing_file():
    with pytest.raises(ConfigError, match="no such randomization spec"):
        load_spec("/nonexistent/spec.toml")


def test_arm_module_is_numpy_only():
    code = (
        "import sys, metabot.sim.arm, metabot.sim; "
        "bad = [m for m in ('mujoco', 'torch', 'gymnasium') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_foreign_or_incomplete_task_is_a_task_error():
    dist = tasks.get("arm6-reach")
    d = dist.sample(1, seed=0)[0].to_dict()
    other = tasks.get("arm2d-reach").sample(1, seed=0)[0]
    missing = Task.from_dict(
        {**d, "params": {k: v for k, v in d["params"].items() if k != "payload"}}
    )
    short = Task.from_dict({**d, "params": {**d["params"], "servo_gain": [1.0, 1.0]}})
    for bad, msg in ((other, "given to"), (missing, "lacks parameter"), (short, "needs 6")):
        with pytest.raises(TaskError, match=msg):
            dist.make_env(bad)
        with pytest.raises(TaskError, match=msg):
            dist.oracle_features(bad)


def test_spec_paths_get_a_path_safe_label_for_run_ids_and_caches(tmp_path):
    from metabot.evaluation.baselines import baseline_dir

    assert tasks.label("arm6-reach") == "arm6-reach"
    assert tasks.label("/some/where/my_arm.toml") == "my_arm"
    # an absolute spec path must not escape the baseline cache root
    d = baseline_dir(tmp_path, "/some/where/my_arm.toml", "dr", 0)
    assert d == tmp_path / "my_arm" / "dr-seed0"
