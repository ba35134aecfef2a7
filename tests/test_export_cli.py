"""End to end through the CLI: train a tiny arm6-reach RMA run, export, inspect, bench."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import onnx
import pytest

from metabot.cli import main


@pytest.fixture(scope="module")
def run_and_artifact(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    run_dir, art = root / "runs" / "rma", root / "rma.onnx"
    assert main(["train", "--algo", "rma", "--tasks", "arm6-reach", "--out", str(run_dir),
                 "--seed", "0", "--steps", "1000"]) == 0
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["export", str(run_dir), "--out", str(art)]) == 0
    return run_dir, art, buf.getvalue()


def test_export_and_inspect(run_and_artifact, capsys):
    run_dir, art, out = run_and_artifact
    assert "parity: 1000 random steps + 200-step sequences" in out
    onnx.checker.check_model(onnx.load(str(art)), full_check=True)
    assert main(["inspect", str(art)]) == 0
    table = capsys.readouterr().out
    assert "shoulder_pan" in table and "verified" in table and "history [1, 40" in table
    assert main(["inspect", str(art), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    config = json.loads((run_dir / "config.json").read_text())
    assert meta["training"]["run_id"] == config["run_id"]
    assert meta["training"]["config_digest"] == config["digest"]


def test_inspect_fails_on_edited_artifact(run_and_artifact, tmp_path, capsys):
    _, art, _ = run_and_artifact
    model = onnx.load(str(art))
    doc = json.loads(model.metadata_props[0].value)
    doc["robot"]["joint_names"][0], doc["robot"]["joint_names"][1] = (
        doc["robot"]["joint_names"][1], doc["robot"]["joint_names"][0])  # swapped joint order
    model.metadata_props[0].value = json.dumps(doc)
    bad = tmp_path / "swapped.onnx"
    onnx.save(model, str(bad))
    assert main(["inspect", str(bad)]) != 0
    err = capsys.readouterr().err
    assert err.startswith("metabot: error:") and "digest mismatch" in err
    assert len(err.strip().splitlines()) == 1


def test_inspect_needs_no_torch(run_and_artifact):
    _, art, _ = run_and_artifact
    code = (
        "import sys\n"
        "for m in ('torch', 'mujoco', 'onnx'): sys.modules[m] = None\n"
        "from metabot.cli import main\n"
        f"sys.exit(main(['inspect', {str(art)!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_bench_infer_json(run_and_artifact, tmp_path):
    _, art, _ = run_and_artifact
    out = tmp_path / "infer.json"
    assert main(["bench", "infer", "--agent", str(art), "--n", "400", "--rounds", "2",
                 "--warmup", "20", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    for key in ("p50_us", "p99_us", "torch_p50_us", "torch_p99_us"):
        assert result[key] > 0
    assert result["p50_us"] <= result["p99_us"] and result["algorithm"] == "rma"


def test_export_teacher_acts_on_the_true_dynamics(run_and_artifact, tmp_path):
    """`--teacher` exports the rma teacher: no history state, the oracle's privileged input,
    and actions that follow the torch teacher given the same features (not the student's)."""
    import numpy as np
    import torch

    from metabot import runtime
    from metabot.algos.runs import load_agent

    run_dir, student_art, _ = run_and_artifact
    art = tmp_path / "teacher.onnx"
    assert main(["export", str(run_dir), "--out", str(art), "--teacher"]) == 0
    teacher = runtime.load(art)
    assert teacher.metadata["algorithm"] == "rma-teacher"
    assert teacher.metadata["history_length"] == 40 and teacher.metadata["privileged_dim"] > 0
    torch_agent, _ = load_agent(run_dir)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal(torch_agent.obs_dim).astype(np.float32)
    priv = rng.standard_normal(torch_agent.privileged_dim).astype(np.float32)
    with torch.no_grad():
        ref = torch_agent.actor_mean(torch.as_tensor(obs)[None],
                                     torch_agent.teacher_latent(torch.as_tensor(priv)[None]))
    got = teacher.act(obs, privileged=priv)
    assert np.allclose(got, np.clip(ref.numpy()[0], -1, 1), atol=1e-5)
    with pytest.raises(Exception, match="privileged"):
        teacher.act(obs)  # like the oracle, it cannot act without the true dynamics


def test_export_teacher_refuses_other_algorithms(tmp_path, capsys):
    run_dir = tmp_path / "dr"
    assert main(["train", "--algo", "dr", "--tasks", "toy-reach", "--out", str(run_dir),
                 "--seed", "0", "--steps", "640"]) == 0
    assert main(["export", str(run_dir), "--out", str(tmp_path / "t.onnx"), "--teacher"]) != 0
    err = capsys.readouterr().err
    assert "--teacher needs an rma run" in err and not (tmp_path / "t.onnx").exists()
