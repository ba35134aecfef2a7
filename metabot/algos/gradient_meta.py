"""The gradient-based meta-learner: MAML and its variants in one loop.

One iteration: sample ``meta_batch`` training tasks; with the meta-parameters theta collect
``adapt_episodes`` episodes per task (one sub-env per task); adapt per task
(theta'_i = theta + alpha * grad J_inner); collect ``post_episodes`` episodes with each
theta'_i; then update theta on the post-adaptation episodes.

Outer update (all but reptile): PPO-clip over the post-adaptation trajectories, the
adapted policy recomputed from theta at every epoch so the gradient flows through the
inner step (ProMP, Rothfuss et al. 2019), with ProMP's low-variance inner surrogate.
Variants differ only in what adapts and how the gradient flows:

    maml     all parameters, second-order          fomaml   all, first-order
    metasgd  all, learned per-entry step sizes     anil     head only, second-order
    reptile  theta += eps * mean_i(phi_i - theta), phi_i = inner step + SGD on the task
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from metabot.algos import gradient_functional as gf
from metabot.algos.config import positive
from metabot.algos.gradient_agent import GradientAgent
from metabot.algos.gradient_sampler import Episodes, collect
from metabot.algos.maml_numpy_head import advantages
from metabot.errors import ConfigError

# algo -> (adapt head only, learn step sizes, first order)
VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    "maml": (False, False, False),
    "fomaml": (False, False, True),
    "reptile": (False, False, True),
    "metasgd": (False, True, False),
    "anil": (True, False, False),
}


@dataclass(frozen=True)
class GradientConfig:
    """Hyper-parameters of the gradient-based family (defaults after ProMP)."""

    meta_batch: int = 20  # tasks per iteration (one sub-env each)
    adapt_episodes: int = 2  # episodes per task feeding the inner step
    post_episodes: int = 1  # episodes per task with the adapted policy (outer data)
    hidden: tuple[int, ...] = (64, 64)
    init_log_std: float = -0.5
    inner_lr: float = 0.1
    inner_steps: int = 1
    head_only: bool | None = None  # None: the algorithm's default (anil: head only)
    gamma: float = 0.99
    gae_lambda: float = 1.0
    outer_lr: float = 1e-3
    ppo_epochs: int = 5
    clip_coef: float = 0.2
    max_grad_norm: float = 1.0
    reptile_steps: int = 5  # reptile: extra SGD steps per task on its post batch
    reptile_lr: float = 0.1
    reptile_epsilon: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        positive(self, "meta_batch", "adapt_episodes", "post_episodes", "inner_steps",
                 "outer_lr", "ppo_epochs", "reptile_steps")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ConfigError("config keys 'gamma' and 'gae_lambda' must lie in [0, 1]")


def build_agent(algo: str, obs_dim: int, act_dim: int, privileged_dim: int,
                cfg: GradientConfig) -> GradientAgent:
    head_default, learn_steps, _ = VARIANTS[algo]
    head_only = head_default if cfg.head_only is None else cfg.head_only
    return GradientAgent(obs_dim, act_dim, privileged_dim, algo=algo, hidden=cfg.hidden,
                         init_log_std=cfg.init_log_std, adapt_head_only=head_only,
                         inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps,
                         learn_step_sizes=learn_steps, gamma=cfg.gamma,
                         gae_lambda=cfg.gae_lambda)


def stack_batches(eps: list[Episodes], adv: list[np.ndarray]) -> gf.Batch:
    """Pad per-task episodes to one length and stack them: ``[n_tasks, N, ...]``."""
    n = max(len(e.rewards) for e in eps)

    def pad(a: np.ndarray) -> np.ndarray:
        width = [(0, n - len(a))] + [(0, 0)] * (a.ndim - 1)
        return np.pad(a, width)

    def stacked(arrays) -> torch.Tensor:
        return torch.as_tensor(np.stack([pad(a) for a in arrays]), dtype=torch.float32)

    return {
        "obs": stacked([e.obs_norm for e in eps]),
        "actions": stacked([e.actions for e in eps]),
        "adv": stacked(adv),
        "logp_old": stacked([e.logp for e in eps]),
        "weights": stacked([np.ones(len(e.rewards)) for e in eps]),
    }


class MetaLearner:
    """Owns the agent, its outer optimizer and the sampling RNG; ``iteration()`` is one
    meta-update. ``make_env(tasks, seed)`` gives a vector env with one sub-env per task;
    ``sample_tasks(n, seed)`` draws training tasks."""

    def __init__(self, algo: str, agent: GradientAgent, cfg: GradientConfig, *, seed: int,
                 make_env, sample_tasks):
        if algo not in VARIANTS:
            raise ConfigError(f"unknown gradient-based algorithm {algo!r}")
        self.algo, self.agent, self.cfg, self.seed = algo, agent, cfg, int(seed)
        self.make_env, self.sample_tasks = make_env, sample_tasks
        self.first_order = VARIANTS[algo][2]
        trainable = list(agent.policy.parameters())
        if VARIANTS[algo][1]:
            trainable += list(agent.step_sizes.parameters())
        self.optimizer = torch.optim.Adam(trainable, lr=cfg.outer_lr)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.iteration_count = 0
        self.env_steps = 0
        self.task_objective = gf.meta_objective_fn(
            agent.policy, keys=agent.adapt_keys, inner_steps=cfg.inner_steps,
            first_order=self.first_order, clip=cfg.clip_coef)

    # -- state (checkpoints, resume) -----------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(), "iteration": self.iteration_count,
                "env_steps": self.env_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.agent.load_state_dict(state["agent"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.iteration_count = int(state["iteration"])
        self.env_steps = int(state["env_steps"])

    # -- one meta-iteration --------------------------------------------------------------
    def _advantages(self, eps: list[Episodes]) -> list[np.ndarray]:
        return [advantages(e.obs_norm, e.rewards, e.ends, gamma=self.cfg.gamma,
                           lam=self.cfg.gae_lambda) for e in eps]

    def iteration(self) -> dict[str, float]:
        cfg, agent = self.cfg, self.agent
        it_seed = self.seed * 1_000_003 + self.iteration_count
        tasks = self.sample_tasks(cfg.meta_batch, it_seed)
        env = self.make_env(tasks, it_seed)
        t0 = time.perf_counter()
        try:
            params = {k: v.detach() for k, v in agent.params().items()}
            stacked0 = gf.stack_params(params, len(tasks))
            pre, n0 = collect(env, agent.policy, agent.obs_norm, stacked0, cfg.adapt_episodes,
                              seed=it_seed, generator=self.generator)
            pre_b = stack_batches(pre, self._advantages(pre))
            steps = {k: v.detach() for k, v in agent.step_dict().items()}
            adapted = gf.adapt_tasks(agent.policy, params, pre_b, steps, keys=agent.adapt_keys,
                                     inner_steps=cfg.inner_steps)
            post, n1 = collect(env, agent.policy, agent.obs_norm, adapted, cfg.post_episodes,
                               seed=it_seed + 1, generator=self.generator)
        finally:
            env.close()
        t_sample = time.perf_counter() - t0
        post_b = stack_batches(post, self._advantages(post))
        t1 = time.perf_counter()
        if self.algo == "reptile":
            self._reptile_update(pre_b, post_b)
            objective = float("nan")
        else:
            objective = self._ppo_update(pre_b, post_b)
        t_update = time.perf_counter() - t1
        with torch.no_grad():
            agent.obs_norm.update(torch.as_tensor(
                np.concatenate([e.obs for e in pre + post]), dtype=torch.float32))
        self.iteration_count += 1
        used = sum(len(e.rewards) for e in pre + post)
        self.env_steps += used
        return {
            "iteration": self.iteration_count,
            "env_steps": self.env_steps,
            "pre_return": float(np.mean([e.returns().mean() for e in pre])),
            "post_return": float(np.mean([e.returns().mean() for e in post])),
            "objective": objective,
            "sample_s": t_sample,
            "update_s": t_update,
            "steps_taken": n0 + n1,
            "log_std": float(agent.policy.log_std.detach().mean()),
        }

    def _ppo_update(self, pre: gf.Batch, post: gf.Batch) -> float:
        agent = self.agent
        value = torch.tensor(0.0)
        for _ in range(self.cfg.ppo_epochs):
            value = gf.meta_objective(self.task_objective, agent.params(), agent.step_dict(),
                                      pre, post)
            self.optimizer.zero_grad()
            (-value).backward()
            torch.nn.utils.clip_grad_norm_(
                [p for g in self.optimizer.param_groups for p in g["params"]],
                self.cfg.max_grad_norm)
            self.optimizer.step()
        return float(value.detach())

    def _reptile_update(self, pre: gf.Batch, post: gf.Batch) -> None:
        agent, cfg = self.agent, self.cfg
        params = {k: v.detach() for k, v in agent.params().items()}
        steps = {k: v.detach() for k, v in agent.step_dict().items()}
        n = pre["obs"].shape[0]
        phis = [
            gf.reptile_adapt(agent.policy, params, {k: v[i] for k, v in pre.items()},
                             {k: v[i] for k, v in post.items()}, steps,
                             keys=agent.adapt_keys, extra_steps=cfg.reptile_steps,
                             lr=cfg.reptile_lr, clip=cfg.clip_coef)
            for i in range(n)
        ]
        agent.load_params(gf.reptile_update(params, phis, cfg.reptile_epsilon))


def evaluate_adaptation(
    agent: GradientAgent, env, budgets: tuple[int, ...] = (0, 1, 2, 5, 10), *, seed: int,
    eval_seed: int | None = None,
) -> dict[str, Any]:
    """R_k for every task of ``env`` (one sub-env per task): explore max(budgets) episodes
    with the meta-parameters (stochastic, what the inner step was trained on), adapt on the
    first k, then run one deterministic evaluation episode with the adapted policy.

    Returns ``{"returns": {k: [per-task R_k]}, "env_steps": {k: steps used to adapt},
    "adapt_ms": mean adaptation time}``.
    """
    generator = torch.Generator().manual_seed(seed)
    n = env.num_envs
    params = {k: v.detach() for k, v in agent.params().items()}
    explore: list[Episodes] = []
    k_max = max(budgets)
    if k_max > 0:
        explore, _ = collect(env, agent.policy, agent.obs_norm, gf.stack_params(params, n),
                             k_max, seed=seed, generator=generator)
    out: dict[str, Any] = {"returns": {}, "env_steps": {}, "adapt_ms": 0.0}
    base, spec = agent.adapt_package()
    from metabot.algos.maml_adapt import adapt

    times = []
    for k in budgets:
        per_task = []
        for i in range(n):
            if k == 0:
                per_task.append(params)
                continue
            t0 = time.perf_counter()
            new = adapt(base, explore[i].first(k).transitions(), spec)
            times.append(time.perf_counter() - t0)
            per_task.append({kk: torch.as_tensor(v, dtype=torch.float32) for kk, v in new.items()})
        stacked = {kk: torch.stack([p[kk] for p in per_task]) for kk in params}
        final, _ = collect(env, agent.policy, agent.obs_norm, stacked, 1,
                           seed=seed + 7 if eval_seed is None else eval_seed,
                           generator=generator, deterministic=True)
        out["returns"][k] = [float(e.returns()[0]) for e in final]
        out["env_steps"][k] = int(np.mean([len(explore[i].first(k).rewards) if k else 0
                                           for i in range(n)]))
    out["adapt_ms"] = 1000.0 * float(np.mean(times)) if times else 0.0
    return out
