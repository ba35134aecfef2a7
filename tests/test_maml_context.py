"""The model inner loss (``inner_loss = "model"``): context adaptation by a dynamics loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_maml_train import full_and_resumed

from metabot.algos import gradient_functional as gf
from metabot.algos import registry
from metabot.algos.gradient_agent import GradientAgent
from metabot.algos.gradient_meta import GradientConfig
from metabot.algos.maml_adapt import adapt
from metabot.algos.maml_eval import GradientEvaluator
from metabot.errors import ConfigError
from metabot.evaluation.protocol import run_budget
from metabot.runtime.model_context import (
    MODEL_KEYS,
    context_gradient,
    model_data,
    model_loss,
)

OBS, ACT, HIST, CTX = 5, 2, 3, 4


def _agent(**kw) -> GradientAgent:
    torch.manual_seed(0)
    agent = GradientAgent(OBS, ACT, 0, algo="metasgd", hidden=(8,), inner_lr=0.3,
                          context_ridge=0.1, inner_steps=2, learn_step_sizes=True,
                          inner_loss="model", context_dim=CTX, model_history=HIST, **kw)
    with torch.no_grad():  # a model that is not all zeros, and a context away from 0
        for k in MODEL_KEYS:
            agent.params()[k].normal_(0.0, 0.3)
        agent.policy.context.normal_()
        agent.step_sizes["context"].uniform_(0.1, 0.5)
    return agent.double()


def _episodes(n=3, steps=7, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ends = np.zeros(n * steps)
    ends[steps - 1::steps] = 1.0
    return {"obs": rng.standard_normal((n * steps, OBS)),
            "actions": 1.3 * rng.standard_normal((n * steps, ACT)),
            "rewards": rng.standard_normal(n * steps), "ends": ends}


def test_model_data_keeps_episodes_apart():
    tr = _episodes(n=2, steps=4)
    x, y, w = model_data(tr["obs"], tr["actions"], tr["ends"], HIST)
    assert x.shape == (8, OBS + ACT * (HIST + 1)) and y.shape == (8, OBS)
    np.testing.assert_array_equal(w, [1, 1, 1, 0, 1, 1, 1, 0])
    np.testing.assert_allclose(y[0], tr["obs"][1] - tr["obs"][0])
    clipped = np.clip(tr["actions"], -1, 1)
    lag1 = x[:, OBS + ACT: OBS + 2 * ACT]
    np.testing.assert_allclose(lag1[1], clipped[0])
    np.testing.assert_array_equal(lag1[4], 0.0)  # no action of the previous episode leaks in
    np.testing.assert_allclose(x[7, OBS + 3 * ACT:], clipped[4])


def test_closed_form_context_gradient_equals_autograd():
    agent = _agent()
    params = {k: v.detach() for k, v in agent.params().items()}
    tr = _episodes()
    x, y, w = model_data(tr["obs"], tr["actions"], tr["ends"], HIST)
    batch = {"model_x": torch.from_numpy(x), "model_y": torch.from_numpy(y),
             "model_w": torch.from_numpy(w)}
    z = params["context"].clone().requires_grad_(True)
    loss = gf.context_model_loss({**params, "context": z}, batch)
    (g_torch,) = torch.autograd.grad(loss, z)
    numpy_params = {k: v.numpy() for k, v in params.items()}
    value = model_loss(numpy_params, z.detach().numpy(), x, y, w)
    assert value == pytest.approx(float(loss.detach()))
    np.testing.assert_allclose(context_gradient(numpy_params, z.detach().numpy(), x, y, w),
                               g_torch.numpy(), rtol=1e-10, atol=1e-12)


def test_the_numpy_step_equals_the_trainers_and_lowers_the_loss():
    agent = _agent()
    tr = _episodes()
    params, spec = agent.adapt_package()
    assert spec["adapt"] == "model" and agent.describe()["adaptation"]["needs_extra"] is None
    ours = adapt(params, tr, spec)
    # the trainer's differentiable step on the same data
    obs_n = agent.obs_norm(torch.from_numpy(tr["obs"])).numpy()
    x, y, w = model_data(obs_n, tr["actions"], tr["ends"], HIST)
    batch = {"model_x": torch.from_numpy(x), "model_y": torch.from_numpy(y),
             "model_w": torch.from_numpy(w)}
    ref = gf.adapt(agent.policy, agent.params(), batch, agent.step_dict(),
                   keys=agent.adapt_keys, inner_steps=2, inner_loss="model",
                   context_ridge=0.1)
    np.testing.assert_allclose(ours["context"], ref["context"].detach().numpy(), rtol=1e-10)
    assert all(np.array_equal(ours[k], params[k]) for k in params if k != "context")
    before = model_loss(params, params["context"], x, y, w)
    assert model_loss(params, ours["context"], x, y, w) < before
    # and the adapted agent acts on its new context
    o = torch.from_numpy(tr["obs"][:3])
    extra = (torch.zeros(3, ACT), torch.zeros(3, 1), torch.zeros(3, 1), torch.zeros(3, 0))
    assert not torch.allclose(agent.adapted(tr)(o, *extra)[0], agent(o, *extra)[0])


def test_the_outer_gradient_reaches_the_model_through_the_context_step():
    """Second order: with no model term in the outer objective, the model still gets a
    gradient, because the adapted context (a function of the model) feeds the policy."""
    agent = _agent()
    tr = _episodes()
    obs_n = agent.obs_norm(torch.from_numpy(tr["obs"]))
    x, y, w = model_data(obs_n.numpy(), tr["actions"], tr["ends"], HIST)
    acts = torch.from_numpy(tr["actions"])
    with torch.no_grad():
        logp = gf.log_prob(agent.policy, agent.params(), obs_n, acts)
    batch = {"obs": obs_n, "actions": acts, "adv": torch.from_numpy(tr["rewards"]),
             "logp_old": logp, "weights": torch.ones(len(acts), dtype=torch.float64),
             "model_x": torch.from_numpy(x), "model_y": torch.from_numpy(y),
             "model_w": torch.from_numpy(w)}
    grads = {}
    for first_order in (False, True):
        f = gf.meta_objective_fn(agent.policy, keys=agent.adapt_keys, inner_steps=2,
                                 first_order=first_order, clip=0.2, inner_loss="model",
                                 model_coef=0.0)
        mix = agent.params()["model.mix"]
        (grads[first_order],) = torch.autograd.grad(
            f(agent.params(), agent.step_dict(), batch, batch), mix, allow_unused=True)
    assert grads[False].abs().max() > 1e-6
    assert grads[True] is None  # first order: the context step is a constant


def test_bad_model_settings_are_named():
    with pytest.raises(ConfigError, match="inner_loss"):
        GradientConfig(inner_loss="value").validate()
    with pytest.raises(ConfigError, match="context_dim"):
        GradientConfig(inner_loss="model", context_dim=0).validate()
    with pytest.raises(ConfigError, match="model_history"):
        GradientConfig(inner_loss="model", model_history=-1).validate()
    with pytest.raises(ConfigError, match="reptile"):
        registry.get("reptile")(HiddenGain(), GradientConfig(inner_loss="model"), seed=0,
                                total_steps=10**4)


class _GainEnv:
    """1-D point mass whose actuator sign is hidden; the goal is fixed. Only the sign, which
    the dynamics reveal, tells which way to push."""

    def __init__(self, gain):
        self.gain = float(gain)

    def reset(self, seed=None, options=None):
        self.pos, self.goal, self.t = 0.0, 0.5, 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.pos, self.goal], np.float32)

    def step(self, action):
        self.pos += 0.1 * self.gain * float(np.clip(action, -1.0, 1.0)[0])
        self.t += 1
        return self._obs(), -abs(self.pos - self.goal), False, self.t >= 15, {}

    def close(self):
        pass


class HiddenGain:
    name, obs_dim, act_dim, oracle_dim, episode_steps = "hidden-gain", 2, 1, 0, 15

    def sample(self, n, *, split="train", seed=0):
        rng = np.random.default_rng([seed, ("train", "test").index(split)])
        return [float(g) for g in rng.choice([-1.0, 1.0], n)]

    def make_env(self, task, seed=None):
        return _GainEnv(task)


def test_meta_training_learns_to_adapt_from_the_dynamics():
    torch.set_num_threads(1)
    cfg = GradientConfig(meta_batch=20, adapt_episodes=1, hidden=(32, 32), inner_lr=1.0,
                         outer_lr=1e-3, ppo_epochs=3, inner_loss="model", context_dim=2,
                         model_history=0, context_ridge=0.001)
    algo = registry.get("maml")(HiddenGain(), cfg, seed=0, total_steps=10**6)
    for _ in range(60):
        metrics = algo.train_iteration()
    assert metrics["model_loss_adapted"] < metrics["model_loss_pre"]
    tasks = HiddenGain().sample(16, split="test", seed=1)
    ev = GradientEvaluator(algo.final_agent())
    r = {k: float(run_budget(HiddenGain(), tasks, ev, k, "episodes", 3, 1).returns.mean())
         for k in (0, 1)}
    # without the sign the best memoryless policy stands still (return -7.5); one
    # exploration episode gives it away (the optimum is about -1)
    assert r[1] > r[0] + 3.0, r


def test_context_runs_resume_exactly(tmp_path):
    overrides = {"meta_batch": 4, "hidden": [16], "inner_loss": "model", "context_dim": 3,
                 "model_history": 2, "adapt_episodes": 1}
    full, info, _ = full_and_resumed(tmp_path, "metasgd", overrides)
    assert full.inner_loss == "model" and full.policy.context.shape == (3,)


def test_under_the_model_loss_anil_is_maml():
    """Only the context adapts under this loss, so anil's head restriction changes nothing:
    one meta-iteration leaves bit-identical parameters."""
    cfg = GradientConfig(meta_batch=4, adapt_episodes=1, hidden=(16,), inner_lr=1.0,
                         ppo_epochs=2, inner_loss="model", context_dim=2, model_history=0)
    out = {}
    for name in ("maml", "anil"):
        algo = registry.get(name)(HiddenGain(), cfg, seed=0, total_steps=10**4)
        assert algo.agent.adapt_keys == ("context",)
        algo.train_iteration()
        out[name] = {k: v.detach().clone() for k, v in algo.agent.params().items()}
    assert all(torch.equal(out["maml"][k], out["anil"][k]) for k in out["maml"])
