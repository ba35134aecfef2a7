"""Training UX: determinism, exact resume, validated configs, safe failures."""

import json

import pytest
import torch

from metabot.algos.trainer import resolve_config, train
from metabot.cli import main
from metabot.errors import CheckpointError, ConfigError

SMALL = {"num_envs": 8, "update_epochs": 2, "num_minibatches": 2}
RMA_SMALL = {**SMALL, "hidden": [32, 32], "history_len": 16, "adapt_channels": 8,
             "student_epochs": 1, "student_episodes": 2}
RL2_SMALL = {**SMALL, "hidden_size": 16, "head": [16], "episodes_per_rollout": 2}


def _weights(run_dir):
    blob = torch.load(run_dir / "agent.pt", weights_only=False)
    return blob["state_dict"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    kw = dict(steps=8 * 40 * 3, overrides={**SMALL, "hidden": [32, 32]}, progress=False)
    a = train("dr", "toy-reach", tmp_path / "a", seed=3, **kw)
    b = train("dr", "toy-reach", tmp_path / "b", seed=3, **kw)
    c = train("dr", "toy-reach", tmp_path / "c", seed=4, **kw)
    assert _same(_weights(a), _weights(b))
    assert not _same(_weights(a), _weights(c))


@pytest.mark.parametrize("algo,overrides,iters", [("rma", RMA_SMALL, 6), ("rl2", RL2_SMALL, 3)])
def test_killed_and_resumed_run_ends_with_identical_weights(tmp_path, algo, overrides, iters):
    per_iter = 8 * 40 * (2 if algo == "rl2" else 1)
    steps = per_iter * iters  # rma: 4 teacher iterations then student ones (phase switch)
    full = train(algo, "toy-reach", tmp_path / "full", seed=1, steps=steps,
                 overrides=overrides, progress=False)
    part = train(algo, "toy-reach", tmp_path / "part", seed=1, steps=steps,
                 overrides=overrides, progress=False, stop_after_iterations=iters // 2)
    assert not json.loads((part / "run.json").read_text())["finished"]
    train(algo, "toy-reach", part, resume=True, progress=False)
    assert _same(_weights(full), _weights(part))
    status = json.loads((part / "run.json").read_text())
    assert status["finished"] and status["env_steps"] >= steps


def test_extended_run_equals_a_run_started_with_the_larger_budget(tmp_path):
    kw = dict(overrides={**SMALL, "hidden": [32, 32]}, progress=False, seed=2)
    per_iter = 8 * 40
    longer = train("dr", "toy-reach", tmp_path / "long", steps=per_iter * 4, **kw)
    short = train("dr", "toy-reach", tmp_path / "short", steps=per_iter * 2, **kw)
    assert not _same(_weights(longer), _weights(short))
    train("dr", "toy-reach", short, steps=per_iter * 4, resume=True, progress=False)
    assert _same(_weights(longer), _weights(short))
    cfg = json.loads((short / "config.json").read_text())
    assert cfg["steps"] == per_iter * 4 and len(cfg["extended_from"]) == 1
    train("dr", "toy-reach", short, resume=True, progress=False)  # resumes under the new config


def test_budget_cannot_shrink_or_extend_a_budget_shaped_run(tmp_path):
    run = train("rma", "toy-reach", tmp_path / "rma", seed=0, steps=8 * 40 * 2,
                overrides=RMA_SMALL, progress=False)
    before = (run / "config.json").read_text()
    with pytest.raises(ConfigError, match="phase switch"):
        train("rma", "toy-reach", run, steps=8 * 40 * 4, resume=True, progress=False)
    with pytest.raises(ConfigError, match="only grow"):
        train("rma", "toy-reach", run, steps=8 * 40, resume=True, progress=False)
    assert (run / "config.json").read_text() == before


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="'lr'"):
        resolve_config("dr", "toy-reach", 0, 1000, overrides={"lr": "fast"})
    with pytest.raises(ConfigError, match="'num_envs'"):
        resolve_config("dr", "toy-reach", 0, 1000, overrides={"num_envs": 2.5})
    with pytest.raises(ConfigError, match="'no_such_key'"):
        resolve_config("dr", "toy-reach", 0, 1000, overrides={"no_such_key": 1})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"hidden": ["a"]}))
    with pytest.raises(ConfigError, match="hidden"):
        resolve_config("dr", "toy-reach", 0, 1000, config_file=bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        resolve_config("dr", "toy-reach", 0, 1000, config_file=bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"lr": 1e-3, "steps": 640}))
    cfg = resolve_config("dr", "toy-reach", 0, None, config_file=good)
    assert cfg["params"]["lr"] == 1e-3 and cfg["steps"] == 640 and len(cfg["digest"]) == 64


def test_cli_bad_input_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--algo", "nope", "--tasks", "toy-reach", "--out", str(out)]) == 2
    assert "unknown algorithm 'nope'" in capsys.readouterr().err
    assert main(["train", "--algo", "dr", "--tasks", "no-such-task", "--out", str(out)]) == 2
    assert "no-such-task" in capsys.readouterr().err
    assert main(["train", "--algo", "dr", "--tasks", "toy-reach", "--out", str(out),
                 "--set", "lr=\"x\""]) == 2
    assert "'lr'" in capsys.readouterr().err
    assert main(["train", "--tasks", "toy-reach", "--out", str(out)]) == 2
    assert "--algo and --tasks are required" in capsys.readouterr().err
    assert not out.exists()


def test_existing_run_is_never_overwritten_and_corrupt_checkpoint_is_refused(tmp_path, capsys):
    run = train("dr", "toy-reach", tmp_path / "r", seed=0, steps=8 * 40,
                overrides={**SMALL, "hidden": [8]}, progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(CheckpointError, match="not empty"):
        train("dr", "toy-reach", run, seed=0, steps=8 * 40, progress=False)
    (run / "checkpoint.pt").write_bytes(b"\x00corrupt")
    code = main(["train", "--algo", "dr", "--out", str(run), "--resume", "--no-progress"])
    assert code == 2 and "corrupt" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == b"\x00corrupt"
    assert main(["train", "--algo", "rma", "--out", str(run), "--resume"]) == 2
    assert "is a dr run" in capsys.readouterr().err
    for name, data in before.items():
        if name not in ("checkpoint.pt", "log.csv"):
            assert (run / name).read_bytes() == data


def test_time_budget_stops_after_one_iteration_and_the_run_resumes(tmp_path, capsys):
    steps = 8 * 40 * 4
    code = main(["train", "--algo", "dr", "--tasks", "toy-reach", "--out", str(tmp_path / "r"),
                 "--steps", str(steps), "--set", "num_envs=8", "--set", "hidden=[8]",
                 "--max-minutes", "1e-9", "--no-progress"])
    status = json.loads((tmp_path / "r" / "run.json").read_text())
    assert code == 0 and "budget" in capsys.readouterr().out
    assert status["stopped"] == "time budget" and status["finished"] is False
    assert 0 < status["env_steps"] < steps and (tmp_path / "r" / "agent.pt").is_file()
    train("dr", "toy-reach", tmp_path / "r", resume=True, progress=False)
    status = json.loads((tmp_path / "r" / "run.json").read_text())
    assert status["finished"] is True and "stopped" not in status
    with pytest.raises(ConfigError, match="max-minutes"):
        train("dr", "toy-reach", tmp_path / "s", steps=steps, max_minutes=0, progress=False)


def test_rl2_task_inference_loss_is_logged_and_shapes_the_gru(tmp_path):
    kw = dict(steps=8 * 40 * 2 * 2, seed=0, progress=False)
    plain = train("rl2", "toy-reach", tmp_path / "plain", overrides={**RL2_SMALL, "obs_skip": True},
                  **kw)
    aux = train("rl2", "toy-reach", tmp_path / "aux",
                overrides={**RL2_SMALL, "obs_skip": True, "aux_task_coef": 1.0}, **kw)
    log = (aux / "log.csv").read_text().splitlines()
    assert "aux_loss" in log[0] and "aux_loss" not in (plain / "log.csv").read_text()
    gru = "gru.weight_hh_l0"
    assert not torch.equal(_weights(plain)[gru], _weights(aux)[gru])
    with pytest.raises(ConfigError, match="aux_task_coef"):
        resolve_config("rl2", "toy-reach", 0, 1000, overrides={"aux_task_coef": -1.0})
