"""`metabot tasks list/sample` and `bench sim`: output and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metabot.cli import main


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "metabot", *args], capture_output=True, text=True, timeout=120
    )


def test_tasks_list(capsys):
    assert main(["tasks", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    arm6 = next(r for r in rows if r["name"] == "arm6-reach")
    assert arm6["act_dim"] == 6 and arm6["control_hz"] == 50
    assert main(["tasks", "list"]) == 0
    assert "arm6-reach" in capsys.readouterr().out


def test_tasks_sample_json(capsys):
    assert (
        main(["tasks", "sample", "arm6-reach", "--split", "test", "--n", "5", "--seed", "0"]) == 0
    )
    first = json.loads(capsys.readouterr().out)
    assert len(first) == 5 and all(t["split"] == "test" for t in first)
    assert (
        main(["tasks", "sample", "arm6-reach", "--split", "test", "--n", "5", "--seed", "0"]) == 0
    )
    assert json.loads(capsys.readouterr().out) == first


@pytest.mark.parametrize(
    "args",
    [
        ("tasks", "sample", "no-such-task"),
        ("tasks", "sample", "arm6-reach", "--split", "nope"),
        ("tasks", "sample", "arm6-reach", "--n", "-1"),
        ("bench", "sim", "--tasks", "no-such-task"),
    ],
)
def test_bad_input_one_line_nonzero(args):
    r = _cli(*args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("metabot: error:"), r.stderr
    assert "Traceback" not in r.stderr


def test_spec_file_through_the_cli(tmp_path):
    spec = Path(__file__).resolve().parent.parent / "sim" / "arm2d.toml"
    good = tmp_path / "arm.toml"
    good.write_text(
        spec.read_text().replace('model = "arm2d.xml"', f'model = "{spec.parent}/arm2d.xml"')
    )
    r = _cli("tasks", "sample", str(good), "--n", "2")
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 2
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace("range = [0.0, 0.3]", "range = [0.15, 0.0]"))
    r = _cli("tasks", "sample", str(bad))
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and "lo 0.15 > hi 0.0" in lines[0]
    assert str(bad) in lines[0]


def test_bench_sim_keys(tmp_path):
    out = tmp_path / "sim.json"
    argv = ["bench", "sim", "--tasks", "arm2d-reach", "--n-envs", "8", "--gym-envs", "2"]
    assert main([*argv, "--seconds", "0.05", "--rounds", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    for key in ("ours_steps_per_s", "raw_mj_step_per_s", "gym_sync_steps_per_s", "n_envs", "cores"):
        assert key in data
    assert data["ours_steps_per_s"] > 0 and data["n_envs"] == 8
