"""RMA with `teacher_run`: an oracle run's policy is the teacher, every step trains the student."""

import json

import pytest
import torch
from test_algos_train import _same, _weights

from metabot.algos.runs import load_agent
from metabot.algos.trainer import build_algorithm, resolve_config, train
from metabot.errors import ConfigError

SMALL = {"num_envs": 8, "update_epochs": 2, "num_minibatches": 2, "hidden": [32, 32]}
STUDENT = {**SMALL, "history_len": 16, "adapt_channels": 8, "student_epochs": 1,
           "student_episodes": 2}
PER_ITER = 8 * 40  # toy-reach: 8 envs x 40-step episodes


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "oracle"
    return train("oracle", "toy-reach", out, seed=0, steps=PER_ITER * 3, overrides=SMALL,
                 progress=False)


def _student(tmp_path, oracle_run, name="rma", extra=None, **kw):
    overrides = {**STUDENT, "teacher_run": str(oracle_run), **(extra or {})}
    return train("rma", "toy-reach", tmp_path / name, seed=1, steps=PER_ITER * 2 * 4,
                 overrides=overrides, progress=False, **kw)


def test_the_teacher_is_the_oracle_and_only_the_student_learns(tmp_path, oracle_run):
    run = _student(tmp_path, oracle_run)
    rma, _ = load_agent(run)
    oracle, _ = load_agent(oracle_run)
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(64, oracle.obs_dim, generator=gen)
    priv = torch.randn(64, oracle.privileged_dim, generator=gen)
    with torch.no_grad():
        teacher = rma.actor_mean(obs, rma.teacher_latent(priv))
        assert torch.allclose(teacher, oracle.actor_mean(obs, priv), atol=1e-6)
        assert torch.equal(rma.log_std, oracle.log_std)
    phases = [line.split(",") for line in (run / "log.csv").read_text().splitlines()]
    col = phases[0].index("phase")
    assert {row[col] for row in phases[1:]} == {"1.0"}  # no teacher phase at all
    fresh = build_algorithm(resolve_config(
        "rma", "toy-reach", 1, PER_ITER, None, {**STUDENT, "teacher_run": str(oracle_run)}))
    trained, untrained = rma.adapt.state_dict(), fresh.agent.adapt.state_dict()
    assert any(not torch.equal(trained[k], untrained[k]) for k in trained)  # the student learns


def test_killed_and_resumed_student_ends_with_identical_weights(tmp_path, oracle_run):
    full = _student(tmp_path, oracle_run, "full")
    part = _student(tmp_path, oracle_run, "part", stop_after_iterations=2)
    assert not json.loads((part / "run.json").read_text())["finished"]
    train("rma", "toy-reach", part, resume=True, progress=False)
    assert _same(_weights(full), _weights(part))


def test_a_teacher_run_that_does_not_fit_is_named(tmp_path, oracle_run):
    dr = train("dr", "toy-reach", tmp_path / "dr", seed=0, steps=PER_ITER, overrides=SMALL,
               progress=False)
    unfinished = train("oracle", "toy-reach", tmp_path / "part", seed=0, steps=PER_ITER * 3,
                       overrides=SMALL, progress=False, stop_after_iterations=1)
    for where, message in ((tmp_path / "nowhere", "no trained run there"),
                           (dr, "must be an oracle run"),
                           (unfinished, "has not finished")):
        with pytest.raises(ConfigError, match=message) as err:
            _student(tmp_path, where, name=f"rma-{where.name}")
        assert "teacher_run" in str(err.value)
        assert not (tmp_path / f"rma-{where.name}").exists()  # nothing written


def test_the_action_loss_trains_the_student_only(tmp_path, oracle_run):
    """student_action_coef > 0: the estimate is also pulled toward the true z's action; the
    frozen policy stays the oracle's and the module ends elsewhere than without the term."""
    plain = _student(tmp_path, oracle_run, "plain")
    run = _student(tmp_path, oracle_run, "act", extra={"student_action_coef": 5.0})
    rma, _ = load_agent(run)
    oracle, _ = load_agent(oracle_run)
    a, o = rma.actor.state_dict(), oracle.actor.state_dict()
    assert all(torch.equal(a[k], o[k]) for k in o)
    header, *rows = (run / "log.csv").read_text().splitlines()
    col = header.split(",").index("action_mse")
    assert all(float(r.split(",")[col]) >= 0 for r in rows)
    other = load_agent(plain)[0].adapt.state_dict()
    assert any(not torch.equal(v, other[k]) for k, v in rma.adapt.state_dict().items())
    with pytest.raises(ConfigError, match="student_action_coef"):
        _student(tmp_path, oracle_run, "bad", extra={"student_action_coef": -1.0})


def test_latent_smoothing_changes_inference_only(tmp_path, oracle_run):
    """The key reaches the deployed agent (a second state tensor) and nothing else: the same
    seed trains bit-identical weights with and without it."""
    runs = [_student(tmp_path, oracle_run, "plain"),
            _student(tmp_path, oracle_run, "smooth", extra={"latent_smoothing": 0.01})]
    (plain, _), (smooth, info) = map(load_agent, runs)
    assert info["config"]["latent_smoothing"] == 0.01
    assert len(smooth.state_shapes) == 2 and len(plain.state_shapes) == 1
    assert _same(*map(_weights, runs))
    with pytest.raises(ConfigError, match="latent_smoothing"):
        _student(tmp_path, oracle_run, "bad", extra={"latent_smoothing": 1.0})
