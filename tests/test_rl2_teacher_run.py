"""RL^2 with `teacher_run`: the heads are a trained oracle's or RMA teacher's, fed the GRU's
estimate of what that teacher reads."""

import json

import pytest
import torch
from test_algos_train import RL2_SMALL, RMA_SMALL, SMALL, _same, _weights

from metabot.algos.runs import load_agent
from metabot.algos.trainer import build_algorithm, resolve_config, train
from metabot.errors import ConfigError

RL2 = {**RL2_SMALL, "head": [32, 32], "aux_task_coef": 1.0}  # head: the oracle's hidden


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "oracle"
    return train("oracle", "toy-reach", out, seed=0, steps=8 * 40 * 3,
                 overrides={**SMALL, "hidden": [32, 32]}, progress=False)


@pytest.fixture(scope="module")
def rma_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "rma"
    return train("rma", "toy-reach", out, seed=0, steps=8 * 40 * 4,
                 overrides={**RMA_SMALL, "latent_dim": 3}, progress=False)


@pytest.fixture(params=["oracle", "rma"])
def teacher_run(request):
    return request.getfixturevalue(f"{request.param}_run")


def _teacher_latent(teacher, priv):
    if teacher.algo == "rma":
        return teacher.teacher_latent(priv)
    return teacher.priv_norm(priv)


def _rl2(run, **params):
    cfg = resolve_config("rl2", "toy-reach", 1, 8 * 40 * 4,
                         overrides={**RL2, "teacher_run": str(run), **params})
    return build_algorithm(cfg)


def _inputs(agent, B=5, T=7):
    g = torch.Generator().manual_seed(0)
    obs = 3 * torch.randn(T, B, agent.obs_dim, generator=g)
    first = torch.zeros(T, B, 1)
    first[0] = 1.0
    return (obs, torch.randn(T, B, agent.act_dim, generator=g),
            torch.randn(T, B, 1, generator=g), first,
            0.5 * torch.randn(B, agent.hidden_size, generator=g),
            torch.randn(B, agent.privileged_dim, generator=g))


def test_the_critic_is_the_teacher_s_whatever_the_estimate(teacher_run):
    teacher, _ = load_agent(teacher_run)
    rl2 = _rl2(teacher_run).agent.eval()
    obs, pa, pr, first, h0, priv = _inputs(rl2)
    feats, _ = rl2.sequence(obs, pa, pr, first, h0)
    with torch.no_grad():
        for t in range(obs.shape[0]):
            torch.testing.assert_close(rl2.value_from_features(feats[t], priv),
                                       teacher.value(obs[t], priv))
    assert torch.equal(rl2.log_std, teacher.log_std)


def test_a_perfect_estimate_acts_exactly_as_the_teacher(teacher_run):
    """Inference (the exported forward) feeds the task head's output to the teacher's policy:
    with a task head that outputs what the teacher reads, it is the teacher."""
    teacher, _ = load_agent(teacher_run)
    rl2 = _rl2(teacher_run).agent.eval()
    obs, pa, pr, first, h0, priv = _inputs(rl2, B=1)
    with torch.no_grad():
        z = _teacher_latent(teacher, priv)
        assert rl2.task_dim == z.shape[-1]
        rl2.task_head.weight.zero_()
        rl2.task_head.bias.copy_(z[0])
        h = h0
        for t in range(obs.shape[0]):
            action, h = rl2(obs[t], pa[t], pr[t], first[t], priv, h)
            if teacher.algo == "rma":
                mean = teacher.actor_mean(obs[t], z)
            else:
                mean = teacher.actor_mean(obs[t], priv)
            torch.testing.assert_close(action, torch.clamp(mean, -1.0, 1.0))


def test_training_fits_the_task_head_that_feeds_the_policy(tmp_path, oracle_run):
    run = train("rl2", "toy-reach", tmp_path / "rl2", seed=1, steps=8 * 40 * 2 * 2,
                overrides={**RL2, "teacher_run": str(oracle_run)}, progress=False)
    rl2, info = load_agent(run)
    assert info["config"]["teacher_run"] == str(oracle_run)
    assert rl2.task_input and rl2.spec()["kwargs"]["task_input"] is True
    fresh = _rl2(oracle_run).agent
    assert not torch.equal(rl2.task_head.weight, fresh.task_head.weight)


def test_task_epochs_fit_the_estimate_and_leave_the_policy_alone(teacher_run):
    algo = _rl2(teacher_run, task_epochs=3, task_action_coef=1.0)
    agent = algo.agent
    obs, pa, pr, first, h0, priv = _inputs(agent)
    priv_seq = priv.expand(obs.shape[0], -1, -1)
    actor = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    losses = [algo._fit_task_head(obs, pa, pr, first, priv_seq, h0)["task_loss"]
              for _ in range(3)]
    assert losses[2] < losses[0]
    assert all(torch.equal(v, agent.actor.state_dict()[k]) for k, v in actor.items())


def test_a_killed_run_with_task_epochs_resumes_to_identical_weights(tmp_path, oracle_run):
    over = {**RL2, "teacher_run": str(oracle_run), "task_epochs": 2, "task_action_coef": 1.0}
    steps = 8 * 40 * 2 * 4
    full = train("rl2", "toy-reach", tmp_path / "full", seed=1, steps=steps, overrides=over,
                 progress=False)
    part = train("rl2", "toy-reach", tmp_path / "part", seed=1, steps=steps, overrides=over,
                 progress=False, stop_after_iterations=2)
    assert not json.loads((part / "run.json").read_text())["finished"]
    train("rl2", "toy-reach", part, resume=True, progress=False)
    assert _same(_weights(full), _weights(part))
    assert "task_loss" in (full / "log.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("params, message", [
    ({"aux_task_coef": 0.0}, "aux_task_coef"),
    ({"head": [16]}, "head"),
    ({"critic_privileged": False}, "critic_privileged"),
    ({"init_run": "runs/dr"}, "exclude"),
    ({"task_lr": 0.0}, "task_lr"),
])
def test_a_teacher_run_that_does_not_fit_is_named(oracle_run, params, message):
    with pytest.raises(ConfigError, match=message):
        _rl2(oracle_run, **params)


def test_teacher_run_must_be_a_finished_oracle_or_rma_run(tmp_path):
    dr = train("dr", "toy-reach", tmp_path / "dr", seed=0, steps=8 * 40,
               overrides={**SMALL, "hidden": [32, 32]}, progress=False)
    with pytest.raises(ConfigError, match="must be an oracle or rma run"):
        _rl2(dr)
    with pytest.raises(ConfigError, match="teacher_run"):
        _rl2(tmp_path / "nowhere")


@pytest.mark.parametrize("params, message", [
    ({"task_epochs": 2}, "aux_task_coef"),
    ({"aux_task_coef": 1.0, "task_action_coef": 1.0}, "teacher_run"),
])
def test_task_keys_without_what_they_need_are_named(params, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config("rl2", "toy-reach", 1, 8 * 40 * 4, overrides={**RL2_SMALL, **params})
