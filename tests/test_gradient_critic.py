"""The learned privileged critic of the outer advantages (GradientConfig.outer_critic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_maml_train import CFG, HiddenGoal, full_and_resumed

from metabot.algos import gradient_meta, registry
from metabot.algos.config import build_config
from metabot.algos.gradient_critic import OuterCritic, episode_returns, fit_critic
from metabot.algos.gradient_meta import GradientConfig
from metabot.algos.gradient_sampler import Episodes
from metabot.errors import ConfigError


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class PrivilegedGoal(HiddenGoal):
    """HiddenGoal whose critic may see the goal (the task's privileged features)."""

    oracle_dim = 2

    def oracle_features(self, task):
        return np.asarray(task, np.float32)


def _one_iteration(monkeypatch, critic_scale=None, **overrides):
    """One maml iteration; records the inner step's adapted parameters (sampler) and the
    batches handed to the outer update."""
    seen: dict = {}
    adapt_tasks = gradient_meta.gf.adapt_tasks

    def spy_adapt(*args, **kwargs):
        out = adapt_tasks(*args, **kwargs)
        seen["adapted"] = {k: v.clone() for k, v in out.items()}
        return out

    monkeypatch.setattr(gradient_meta.gf, "adapt_tasks", spy_adapt)
    algo = registry.get("maml")(PrivilegedGoal(), GradientConfig(**{**CFG, **overrides}),
                                seed=0, total_steps=10**6)
    if critic_scale is not None:
        with torch.no_grad():
            for p in algo.critic.net.parameters():
                p.mul_(critic_scale)
    ppo_update = algo._ppo_update

    def spy_update(pre, post, pre_outer=None):
        seen["pre"], seen["post"] = pre, post
        seen["pre_outer"] = pre if pre_outer is None else pre_outer
        return ppo_update(pre, post, pre_outer)

    algo._ppo_update = spy_update
    metrics = algo.train_iteration()
    seen["params"] = {k: v.detach().clone() for k, v in algo.agent.params().items()}
    return algo, metrics, seen


def test_critic_feeds_the_outer_objective_not_the_inner_step(monkeypatch):
    _, m_off, off = _one_iteration(monkeypatch, pre_coef=1.0)
    algo, m_on, on = _one_iteration(monkeypatch, pre_coef=1.0, outer_critic=True)
    _, _, other = _one_iteration(monkeypatch, critic_scale=3.0, pre_coef=1.0,
                                 outer_critic=True)
    # the inner step (sampler and meta-objective alike) reads the same linear-baseline
    # advantages, so the adapted parameters are identical whatever the critic
    for run in (on, other):
        for k in off["adapted"]:
            assert torch.equal(off["adapted"][k], run["adapted"][k]), k
        assert torch.equal(off["pre"]["adv"], run["pre"]["adv"])
        assert torch.equal(off["post"]["actions"], run["post"]["actions"])
    # the outer objective reads the critic's advantages (post and, with pre_coef, pre)
    assert not torch.allclose(off["post"]["adv"], on["post"]["adv"])
    assert not torch.allclose(on["pre_outer"]["adv"], on["pre"]["adv"])
    assert not torch.allclose(on["post"]["adv"], other["post"]["adv"])
    assert any(not torch.equal(on["params"][k], other["params"][k]) for k in on["params"])
    assert "critic_loss" in m_on and "critic_loss" not in m_off
    assert np.isfinite(m_on["critic_loss"])
    # training only: nothing of the critic is in the agent that is saved and exported
    assert not any("critic" in k for k in algo.final_agent().state_dict())
    assert set(algo.state_dict()["modules"]) == {"agent", "critic"}


def test_critic_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_ep, length = 8, 20
    # each episode sits at one random state: its returns-to-go are a function of (obs, t)
    obs = np.repeat(rng.normal(size=(n_ep, 3)), length, axis=0)
    ends = np.zeros(n_ep * length)
    ends[length - 1::length] = 1.0
    goal = np.array([0.5, -1.0])
    eps = Episodes(obs=obs, obs_norm=obs, actions=np.zeros((len(obs), 2)),
                   logp=np.zeros(len(obs)), rewards=obs[:, 0] - obs[:, 1] ** 2 + goal[0],
                   ends=ends)
    critic = OuterCritic(3, 2, hidden=(32, 32))
    critic.priv_norm.update(torch.as_tensor(goal, dtype=torch.float32).reshape(1, -1))
    x = critic.inputs(eps, goal, length, 1.0)
    assert x.shape == (len(obs), 3 + 2 + 2)
    ret = torch.as_tensor(episode_returns(eps, 0.9), dtype=torch.float32)
    critic.value_norm.update(ret.reshape(-1, 1))
    opt = torch.optim.Adam(critic.net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    first = fit_critic(critic, opt, x, ret, epochs=1, minibatches=4, max_grad_norm=10.0,
                       generator=gen)
    last = fit_critic(critic, opt, x, ret, epochs=150, minibatches=4, max_grad_norm=10.0,
                      generator=gen)
    assert last < 0.1 * first, (first, last)


def test_critic_resume_equals_uninterrupted(tmp_path):
    from metabot.algos.runs import CHECKPOINT_FORMAT, torch_load

    overrides = {"meta_batch": 4, "hidden": [16, 16], "outer_critic": True, "pre_coef": 1.0,
                 "critic_hidden": [16, 16], "outer_minibatches": 2}
    full, _, _ = full_and_resumed(tmp_path, "maml", overrides)
    states = [torch_load(tmp_path / d / "checkpoint.pt", CHECKPOINT_FORMAT)["state"]
              for d in ("full", "cut")]
    assert states[0]["iteration"] == states[1]["iteration"] > 2
    critic_full, critic_cut = (s["modules"]["critic"] for s in states)
    for k, v in critic_full.items():
        torch.testing.assert_close(critic_cut[k], v, rtol=0, atol=0)
    assert float(critic_full["priv_norm.count"]) > 1  # the privileged features reached it
    assert not any("critic" in k for k in full.state_dict())


@pytest.mark.parametrize("key, value", [
    ("outer_gae_lambda", 1.5), ("critic_lr", 0.0), ("critic_epochs", 0),
    ("critic_minibatches", 0), ("critic_hidden", []), ("critic_hidden", [64, 0]),
    ("outer_critic", "yes"),
])
def test_bad_critic_config_names_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        build_config(GradientConfig, {key: value})
