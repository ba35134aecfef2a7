"""The gradient family's `init_run`: the meta-initialization starts as a trained dr policy."""

import numpy as np
import pytest
import torch
from test_algos_train import SMALL

from metabot.algos.runs import load_agent
from metabot.algos.trainer import build_algorithm, resolve_config, train
from metabot.errors import ConfigError

HIDDEN = [16, 16]


@pytest.fixture(scope="module")
def dr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "dr"
    return train("dr", "toy-reach", out, seed=0, steps=8 * 40 * 3,
                 overrides={**SMALL, "hidden": HIDDEN}, progress=False)


def _learner(algo, run, **params):
    cfg = resolve_config(algo, "toy-reach", 1, 10**5,
                         overrides={"meta_batch": 4, "hidden": HIDDEN, "init_run": str(run),
                                    **params})
    return build_algorithm(cfg)


@pytest.mark.parametrize(("algo", "params"), [("maml", {}), ("anil", {}),
                                              ("maml", {"inner_loss": "model"})])
def test_the_meta_initialization_acts_exactly_as_dr(dr_run, algo, params):
    """With the model inner loss the policy also reads a context; its columns start at 0."""
    dr, _ = load_agent(dr_run)
    agent = _learner(algo, dr_run, **params).agent.eval()
    g = torch.Generator().manual_seed(0)
    obs = 3 * torch.randn(64, dr.obs_dim, generator=g)
    extra = (torch.zeros(64, dr.act_dim), torch.zeros(64, 1), torch.zeros(64, 1),
             torch.zeros(64, dr.privileged_dim))
    with torch.no_grad():
        torch.testing.assert_close(agent(obs, *extra)[0], dr(obs, *extra)[0])
    assert torch.equal(agent.policy.log_std, dr.log_std)


def test_training_keeps_dr_s_observation_normalizer(tmp_path, dr_run):
    run = train("anil", "toy-reach", tmp_path / "anil", seed=1, steps=4 * 40 * 3 * 2,
                overrides={"meta_batch": 4, "hidden": HIDDEN, "init_run": str(dr_run)},
                progress=False)
    agent, _ = load_agent(run)
    dr, _ = load_agent(dr_run)
    assert torch.equal(agent.obs_norm.mean, dr.obs_norm.mean)
    assert not torch.equal(agent.policy.head.weight, dr.actor[-1].weight)  # it trained


def test_an_init_run_that_does_not_fit_is_named(tmp_path, dr_run):
    with pytest.raises(ConfigError, match="hidden"):
        _learner("maml", dr_run, hidden=[8])
    with pytest.raises(ConfigError, match="init_run"):
        _learner("maml", tmp_path / "nowhere")
    oracle = train("oracle", "toy-reach", tmp_path / "oracle", seed=0, steps=8 * 40,
                   overrides={**SMALL, "hidden": HIDDEN}, progress=False)
    with pytest.raises(ConfigError, match="must be a dr run"):
        _learner("anil", oracle)


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "oracle"
    return train("oracle", "toy-reach", out, seed=0, steps=8 * 40 * 3,
                 overrides={**SMALL, "hidden": HIDDEN}, progress=False)


def test_a_teacher_pulls_the_adapted_policy_toward_the_oracle(dr_run, oracle_run):
    """teacher_run: the outer objective's supervised term; training only."""
    gaps = {}
    for coef in (0.0, 50.0):  # with coef 0 the oracle is loaded and measured, not followed
        algo = _learner("maml", dr_run, inner_loss="model", teacher_run=str(oracle_run),
                        teacher_coef=coef, outer_lr=3e-3, adapt_episodes=1)
        gaps[coef] = [algo.train_iteration()["teacher_gap_adapted"] for _ in range(8)]
    assert np.mean(gaps[50.0][4:]) < 0.5 * np.mean(gaps[0.0][4:]), gaps
    assert "teacher" not in dict(algo.modules())  # never checkpointed or exported
    with pytest.raises(ConfigError, match="teacher_run"):
        _learner("maml", dr_run, teacher_run=str(dr_run))
    with pytest.raises(ConfigError, match="teacher_coef"):
        _learner("maml", dr_run, teacher_coef=-1.0)
