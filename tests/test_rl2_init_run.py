"""RL^2 with `init_run`: it starts as the trained dr policy and critic, then learns memory."""

import pytest
import torch
from test_algos_train import RL2_SMALL, SMALL

from metabot.algos.runs import load_agent
from metabot.algos.trainer import build_algorithm, resolve_config, train
from metabot.errors import ConfigError

RL2 = {**RL2_SMALL, "head": [32, 32], "obs_skip": True}  # head: the dr run's hidden


@pytest.fixture(scope="module")
def dr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("init") / "dr"
    return train("dr", "toy-reach", out, seed=0, steps=8 * 40 * 3,
                 overrides={**SMALL, "hidden": [32, 32]}, progress=False)


def _rl2(dr_run, **params):
    cfg = resolve_config("rl2", "toy-reach", 1, 8 * 40 * 4,
                         overrides={**RL2, "init_run": str(dr_run), **params})
    return build_algorithm(cfg)


def test_the_warm_started_policy_and_critic_are_dr_s(dr_run):
    dr, _ = load_agent(dr_run)
    rl2 = _rl2(dr_run).agent.eval()
    g = torch.Generator().manual_seed(0)
    B, T = 5, 7
    obs = 3 * torch.randn(T, B, dr.obs_dim, generator=g)
    priv = torch.randn(B, dr.privileged_dim, generator=g)
    first = torch.zeros(T, B, 1)
    first[0] = 1.0
    feats, _ = rl2.sequence(obs, torch.randn(T, B, dr.act_dim, generator=g),
                            torch.randn(T, B, 1, generator=g), first,
                            0.5 * torch.randn(B, rl2.hidden_size, generator=g))
    with torch.no_grad():
        for t in range(T):  # whatever the GRU holds, the heads ignore it at the start
            torch.testing.assert_close(rl2.actor(feats[t]), dr.actor_mean(obs[t], priv))
            torch.testing.assert_close(rl2.value_from_features(feats[t], priv),
                                       dr.value(obs[t], priv))
    assert torch.equal(rl2.log_std, dr.log_std)


def test_training_grows_the_use_of_memory(tmp_path, dr_run):
    run = train("rl2", "toy-reach", tmp_path / "rl2", seed=1, steps=8 * 40 * 2 * 2,
                overrides={**RL2, "init_run": str(dr_run)}, progress=False)
    rl2, info = load_agent(run)
    assert info["config"]["init_run"] == str(dr_run)
    assert rl2.actor[0].weight[:, : rl2.hidden_size].abs().max() > 0


@pytest.mark.parametrize("params, message", [
    ({"obs_skip": False}, "obs_skip"),
    ({"head": [16]}, "head"),
    ({"critic_privileged": False}, "critic_privileged"),
])
def test_an_init_run_that_does_not_fit_is_named(dr_run, params, message):
    with pytest.raises(ConfigError, match=message):
        _rl2(dr_run, **params)


def test_init_run_must_be_a_finished_dr_run(tmp_path, dr_run):
    with pytest.raises(ConfigError, match="init_run"):
        _rl2(tmp_path / "nowhere")
    oracle = train("oracle", "toy-reach", tmp_path / "oracle", seed=0, steps=8 * 40,
                   overrides={**SMALL, "hidden": [32, 32]}, progress=False)
    with pytest.raises(ConfigError, match="must be a dr run"):
        _rl2(oracle)
