"""The learned inner baseline (``inner_baseline = "learned"``): a value net that shapes the
inner policy gradient's advantages and learns only through the meta-gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_maml_context import HiddenGain
from test_maml_train import full_and_resumed

from metabot.algos import gradient_functional as gf
from metabot.algos import registry
from metabot.algos.gradient_agent import GradientAgent
from metabot.algos.gradient_meta import GradientConfig
from metabot.algos.maml_adapt import adapt
from metabot.errors import ConfigError
from metabot.runtime.head import learned_advantages

OBS, ACT = 5, 2


def _agent(algo: str = "maml", head_only: bool = False) -> GradientAgent:
    torch.manual_seed(0)
    agent = GradientAgent(OBS, ACT, 0, algo=algo, hidden=(8,), inner_lr=0.05,
                          adapt_head_only=head_only, gae_lambda=0.8,
                          inner_baseline="learned", baseline_hidden=(6, 6))
    with torch.no_grad():  # a baseline that is not zero, as after meta-training
        for k, v in agent.params().items():
            if k.startswith("baseline."):
                v.normal_(0.0, 0.5)
    return agent.double()


def _batch(agent: GradientAgent, n: int = 3, steps: int = 9, seed: int = 0):
    rng = np.random.default_rng(seed)
    ends = np.zeros(n * steps)
    ends[steps - 1::steps] = 1.0
    tr = {"obs": rng.standard_normal((n * steps, OBS)),
          "actions": 0.5 * rng.standard_normal((n * steps, ACT)),
          "rewards": rng.standard_normal(n * steps), "ends": ends}
    obs = torch.from_numpy(tr["obs"])  # the agent's normalizer is the identity at init
    acts = torch.from_numpy(tr["actions"])
    with torch.no_grad():
        logp = gf.log_prob(agent.policy, agent.params(), obs, acts)
    batch = {"obs": obs, "actions": acts, "adv": torch.zeros(len(ends), dtype=torch.float64),
             "logp_old": logp, "weights": torch.ones(len(ends), dtype=torch.float64),
             "rewards": torch.from_numpy(tr["rewards"]), "ends": torch.from_numpy(ends)}
    return tr, batch


def test_torch_advantages_equal_the_runtimes_and_ignore_padding():
    agent = _agent()
    params = {k: v.detach() for k, v in agent.params().items()}
    tr, batch = _batch(agent)
    ours = gf.learned_advantages(agent.policy, params, batch, 0.99, 0.8).numpy()
    theirs = learned_advantages(tr["obs"], tr["rewards"], tr["ends"],
                                {k: v.numpy() for k, v in params.items()}, 0.99, 0.8)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    padded = {k: torch.cat([v, torch.ones(4, *v.shape[1:], dtype=v.dtype)])
              for k, v in batch.items()}
    padded["weights"][-4:] = 0.0
    cut = gf.learned_advantages(agent.policy, params, padded, 0.99, 0.8)[:-4].numpy()
    np.testing.assert_allclose(cut, theirs, rtol=0, atol=1e-12)
    # the baseline matters: a different value net gives different advantages
    linear = gf.learned_advantages(agent.policy, {**params, "baseline.4.weight":
                                                  0 * params["baseline.4.weight"]},
                                   batch, 0.99, 0.8).numpy()
    assert np.abs(linear - theirs).max() > 1e-3


@pytest.mark.parametrize("head_only", [False, True])
def test_the_robots_step_equals_the_trainers(head_only):
    """maml_adapt (numpy advantages; numpy head step for anil) == the trainer's torch step."""
    agent = _agent("anil" if head_only else "maml", head_only)
    tr, batch = _batch(agent)
    params = {k: v.detach() for k, v in agent.params().items()}
    ref = gf.adapt(agent.policy, params, batch, agent.step_dict(), keys=agent.adapt_keys,
                   first_order=True, baseline=(agent.gamma, agent.gae_lambda))
    package, spec = agent.adapt_package()
    ours = adapt(package, tr, spec)
    assert not any(k.startswith("baseline.") for k in agent.adapt_keys)
    for k in params:
        np.testing.assert_allclose(ours[k], ref[k].detach().numpy(), rtol=0, atol=1e-10)
    assert np.abs(ours["head.weight"] - params["head.weight"].numpy()).max() > 1e-6


def test_the_baseline_learns_only_through_the_inner_step():
    agent = _agent()
    _, batch = _batch(agent)
    post = {**batch, "adv": torch.linspace(-1, 1, len(batch["adv"]), dtype=torch.float64)}
    grads = {}
    for first_order in (False, True):
        f = gf.meta_objective_fn(agent.policy, keys=agent.adapt_keys, inner_steps=1,
                                 first_order=first_order, clip=0.2,
                                 baseline=(agent.gamma, agent.gae_lambda))
        w = agent.params()["baseline.0.weight"]
        (grads[first_order],) = torch.autograd.grad(
            f(agent.params(), agent.step_dict(), batch, post), w, allow_unused=True)
    assert grads[False].abs().max() > 1e-8
    assert grads[True] is None


def test_bad_baseline_settings_are_named():
    with pytest.raises(ConfigError, match="inner_baseline"):
        GradientConfig(inner_baseline="critic").validate()
    with pytest.raises(ConfigError, match="baseline_hidden"):
        GradientConfig(inner_baseline="learned", baseline_hidden=()).validate()
    with pytest.raises(ConfigError, match="explore_log_std"):
        GradientConfig(explore_log_std=float("nan")).validate()
    for algo, extra in (("fomaml", {}), ("reptile", {}), ("maml", {"inner_loss": "model"})):
        cfg = GradientConfig(inner_baseline="learned", **extra)
        with pytest.raises(ConfigError, match="second-order"):
            registry.get(algo)(HiddenGain(), cfg, seed=0, total_steps=10**4)


def test_learned_baseline_runs_resume_exactly(tmp_path):
    overrides = {"meta_batch": 4, "hidden": [16], "inner_baseline": "learned",
                 "baseline_hidden": [8], "adapt_episodes": 1}
    full, info, _ = full_and_resumed(tmp_path, "anil", overrides)
    assert full.inner_baseline == "learned"
    assert info["agent"]["adaptation"]["kind"] == "head"
    # meta-training moved the baseline away from its zero output layer
    assert full.policy.baseline[-1].weight.detach().abs().max() > 0


def test_a_fixed_exploration_log_std_is_neither_learned_nor_adapted():
    cfg = GradientConfig(meta_batch=4, adapt_episodes=1, hidden=(16,), ppo_epochs=2,
                         inner_baseline="learned", baseline_hidden=(8,), explore_log_std=-1.0)
    algo = registry.get("maml")(HiddenGain(), cfg, seed=0, total_steps=10**4)
    assert "log_std" not in algo.agent.adapt_keys and "head.weight" in algo.agent.adapt_keys
    before = {k: v.detach().clone() for k, v in algo.agent.params().items()}
    algo.train_iteration()
    after = algo.agent.params()
    torch.testing.assert_close(after["log_std"], torch.full((1,), -1.0), rtol=0, atol=0)
    assert not torch.equal(after["head.weight"], before["head.weight"])
    # a reloaded agent keeps log_std out of its adaptation (its constructor records it)
    clone = GradientAgent(**algo.agent.spec()["kwargs"])
    assert clone.adapt_keys == algo.agent.adapt_keys
