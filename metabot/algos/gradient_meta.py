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

``inner_loss=model``: the inner step adapts only a context vector the policy reads, by
descent on a dynamics model's prediction loss over the task's own transitions, instead of
the policy gradient (metabot.runtime.model_context; docs/gradient_meta.md says why).

``outer_critic=true``: the outer objective's advantages come from a learned value network
that also sees the task's privileged dynamics features (metabot.algos.gradient_critic),
GAE with ``outer_gae_lambda``; the inner step keeps the linear-baseline advantages the robot
computes, and the critic is checkpointed but never part of the agent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metabot.algos import gradient_functional as gf
from metabot.algos.base import Algorithm
from metabot.algos.config import positive
from metabot.algos.envs import EnvBatch, derive_seed
from metabot.algos.gradient_agent import GradientAgent
from metabot.algos.gradient_critic import (
    OuterCritic,
    critic_advantages,
    episode_returns,
    fit_critic,
)
from metabot.algos.gradient_sampler import Episodes, collect
from metabot.algos.gradient_teacher import OracleTeacher
from metabot.algos.maml_numpy_head import advantages
from metabot.errors import ConfigError
from metabot.runtime.model_context import model_data

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

    meta_batch: int = 20  # tasks per iteration (one env each)
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
    # metasgd: Adam learning rate of the learned step sizes; 0 = outer_lr. Why separate:
    # Adam moves every entry by about its lr per step, so a step size of 1e-3 (what a
    # sharp dr init needs) under outer_lr 3e-4 swings by a third per step
    step_size_lr: float = 0.0
    ppo_epochs: int = 5
    clip_coef: float = 0.2
    max_grad_norm: float = 1.0
    reptile_steps: int = 5  # reptile: extra SGD steps per task on its post batch
    reptile_lr: float = 0.1
    reptile_epsilon: float = 1.0
    norm_obs_iterations: int = 1_000_000  # stop updating the obs normalizer after this
    # > 0: the outer objective adds this weight times the PPO-clip surrogate of the
    # un-adapted policy on the pre-adaptation episodes, so the meta-initialization learns
    # from all the data and not only from the post-adaptation 1/(adapt+post) of it
    pre_coef: float = 0.0
    # tasks are split into this many minibatches per outer epoch (PPO-style): more Adam
    # steps for the same meta-gradient compute; 1 = full batch (ProMP)
    outer_minibatches: int = 1
    # true: the OUTER objective's advantages come from a learned critic that sees the
    # task's privileged dynamics features (training only, never exported), with GAE
    # (outer_gae_lambda); the inner step keeps the linear baseline the robot runs
    outer_critic: bool = False
    critic_hidden: tuple[int, ...] = (128, 128)
    critic_lr: float = 1e-3
    critic_epochs: int = 5
    critic_minibatches: int = 4
    outer_gae_lambda: float = 0.95
    # a finished `dr` run dir (relative to the working directory): the meta-initialization
    # starts as its policy (body, head, log-std; the observation normalizer frozen at dr's),
    # so meta-training starts at dr's return and only has to learn what adaptation adds.
    # Needs hidden equal to the dr run's
    init_run: str = ""
    # the inner step's objective: "pg" (the policy gradient, ProMP's surrogate) or "model"
    # (CAVIA: only a `context_dim` vector the policy reads adapts, by descent on a
    # z-conditioned dynamics model's prediction loss over the task's own transitions, with
    # `model_history` past actions as model inputs; metabot.runtime.model_context).
    # `model_coef` weighs that model's post-adaptation loss in the outer objective
    inner_loss: str = "pg"
    context_dim: int = 8
    model_history: int = 6
    model_coef: float = 1.0
    # "model": "newton" scales the context's gradient by the loss's exact inverse
    # curvature plus `context_ridge` (a prior weight on z - z0); "gradient": plain steps
    context_step: str = "newton"
    context_ridge: float = 0.01
    # a finished `oracle` run: training only, the outer objective adds `teacher_coef` times
    # minus the squared distance of the adapted policy's mean action from the oracle's on the
    # post-adaptation episodes (the oracle sees the true dynamics), a supervised signal for
    # what adaptation should achieve; the inner step and the robot never see it
    teacher_run: str = ""
    teacher_coef: float = 1.0
    # the inner policy gradient's baseline: "linear" (ProMP's linear feature baseline,
    # fitted on the task's own episodes) or "learned" (a `baseline_hidden` value net over
    # the normalized observation whose parameters are meta-learned through the inner step,
    # second-order variants only: its TD residuals times the exploration noise carry the
    # task's dynamics into the step; docs/gradient_meta.md)
    inner_baseline: str = "linear"
    baseline_hidden: tuple[int, ...] = (64, 64)
    # set: the policy's log-std is held at this value (not learned, not adapted, not copied
    # from init_run). It is the exploration noise of the adaptation episodes; the evaluated
    # policy acts with its mean. Why: the policy gradient sees a task's dynamics only
    # through how its exploration noise correlates with what follows (information grows
    # with the noise variance), and a return-maximizing log-std shrinks that noise (dr's
    # on arm2d: exp(-3.3) = 0.04)
    explore_log_std: float | None = None

    def validate(self) -> None:
        positive(self, "meta_batch", "adapt_episodes", "post_episodes", "inner_steps",
                 "outer_lr", "ppo_epochs", "reptile_steps", "outer_minibatches",
                 "critic_lr", "critic_epochs", "critic_minibatches")
        if not self.critic_hidden or min(self.critic_hidden) <= 0:
            raise ConfigError("config key 'critic_hidden' must be a non-empty list of "
                              "positive widths")
        if not 0.0 <= self.outer_gae_lambda <= 1.0:
            raise ConfigError("config key 'outer_gae_lambda' must lie in [0, 1]")
        if self.outer_minibatches > self.meta_batch:
            raise ConfigError("config key 'outer_minibatches' must be <= meta_batch")
        if not self.pre_coef >= 0:
            raise ConfigError("config key 'pre_coef' must be >= 0")
        if not self.step_size_lr >= 0:
            raise ConfigError("config key 'step_size_lr' must be >= 0 (0: outer_lr)")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ConfigError("config keys 'gamma' and 'gae_lambda' must lie in [0, 1]")
        if not self.teacher_coef >= 0:
            raise ConfigError("config key 'teacher_coef' must be >= 0")
        if self.inner_baseline not in ("linear", "learned"):
            raise ConfigError(f"config key 'inner_baseline' must be 'linear' or 'learned', "
                              f"got {self.inner_baseline!r}")
        if self.inner_baseline == "learned" and (
                not self.baseline_hidden or min(self.baseline_hidden) <= 0):
            raise ConfigError("config key 'baseline_hidden' must be a non-empty list of "
                              "positive widths")
        if self.explore_log_std is not None and not -20.0 < self.explore_log_std < 2.0:
            raise ConfigError(f"config key 'explore_log_std' must lie in (-20, 2) (a std "
                              f"of 2e-9 to 7.4 in the policy's [-1, 1] action units), got "
                              f"{self.explore_log_std!r}")
        if self.inner_loss not in ("pg", "model"):
            raise ConfigError(f"config key 'inner_loss' must be 'pg' or 'model', "
                              f"got {self.inner_loss!r}")
        if self.inner_loss == "model":
            positive(self, "context_dim")
            if self.model_history < 0 or not self.model_coef >= 0:
                raise ConfigError("config keys 'model_history' and 'model_coef' must be >= 0")
            if self.context_step not in ("newton", "gradient"):
                raise ConfigError(f"config key 'context_step' must be 'newton' or "
                                  f"'gradient', got {self.context_step!r}")
            if not self.context_ridge > 0:
                raise ConfigError("config key 'context_ridge' must be > 0 (it keeps the "
                                  "inner solve well posed)")


def ridge_of(cfg: GradientConfig) -> float | None:
    """The context step's ridge, None for a plain gradient step."""
    return cfg.context_ridge if cfg.context_step == "newton" else None


def baseline_of(cfg: GradientConfig) -> tuple[float, float] | None:
    """(gamma, lambda) of the learned inner baseline, None for the linear one."""
    return (cfg.gamma, cfg.gae_lambda) if cfg.inner_baseline == "learned" else None


def build_agent(algo: str, obs_dim: int, act_dim: int, privileged_dim: int,
                cfg: GradientConfig) -> GradientAgent:
    head_default, learn_steps, _ = VARIANTS[algo]
    head_only = head_default if cfg.head_only is None else cfg.head_only
    return GradientAgent(obs_dim, act_dim, privileged_dim, algo=algo, hidden=cfg.hidden,
                         init_log_std=cfg.init_log_std, adapt_head_only=head_only,
                         inner_lr=cfg.inner_lr, inner_steps=cfg.inner_steps,
                         learn_step_sizes=learn_steps, gamma=cfg.gamma,
                         gae_lambda=cfg.gae_lambda, inner_loss=cfg.inner_loss,
                         context_dim=cfg.context_dim, model_history=cfg.model_history,
                         context_ridge=ridge_of(cfg), inner_baseline=cfg.inner_baseline,
                         baseline_hidden=cfg.baseline_hidden,
                         fixed_log_std=cfg.explore_log_std is not None)


def stack_batches(eps: list[Episodes], adv: list[np.ndarray],
                  model_history: int | None = None) -> gf.Batch:
    """Pad per-task episodes to one length and stack them: ``[n_tasks, N, ...]``; with a
    ``model_history``, also the context model's inputs, targets and weights."""
    n = max(len(e.rewards) for e in eps)

    def pad(a: np.ndarray) -> np.ndarray:
        width = [(0, n - len(a))] + [(0, 0)] * (a.ndim - 1)
        return np.pad(a, width)

    def stacked(arrays) -> torch.Tensor:
        return torch.as_tensor(np.stack([pad(a) for a in arrays]), dtype=torch.float32)

    batch = {
        "obs": stacked([e.obs_norm for e in eps]),
        "actions": stacked([e.actions for e in eps]),
        "adv": stacked(adv),
        "logp_old": stacked([e.logp for e in eps]),
        "weights": stacked([np.ones(len(e.rewards)) for e in eps]),
        "rewards": stacked([e.rewards for e in eps]),  # the learned baseline's inputs
        "ends": stacked([e.ends for e in eps]),
    }
    if model_history is not None:
        data = [model_data(e.obs_norm, e.actions, e.ends, model_history) for e in eps]
        for i, key in enumerate(("model_x", "model_y", "model_w")):
            batch[key] = stacked([d[i] for d in data])
    return batch


class GradientMetaLearner(Algorithm):
    """One meta-update per ``train_iteration``; subclasses (metabot.algos.maml) only set
    ``name``. Tasks and env seeds derive from (seed, iteration), the action noise from
    ``torch_gen``, so a resumed run repeats an uninterrupted one exactly."""

    Config = GradientConfig
    budget_unit = "episodes"
    default_steps = 2_000_000

    def __init__(self, dist: Any, config: GradientConfig, seed: int, total_steps: int):
        super().__init__(dist, config, seed, total_steps)
        if self.name not in VARIANTS:
            raise ConfigError(f"unknown gradient-based algorithm {self.name!r}")
        if self.name == "reptile" and (config.inner_loss != "pg" or config.teacher_run):
            raise ConfigError("reptile takes only inner_loss = 'pg' and no teacher_run (its "
                              "task solver is policy-gradient SGD; it has no outer objective)")
        if config.inner_baseline == "learned" and (VARIANTS[self.name][2]
                                                   or config.inner_loss != "pg"):
            raise ConfigError("inner_baseline = 'learned' needs a second-order variant (maml, "
                              "metasgd, anil) and inner_loss = 'pg': the baseline learns only "
                              "through the gradient of the inner step")
        self.model_history = config.model_history if config.inner_loss == "model" else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)  # weight init, without touching the global RNG
            self.agent = build_agent(self.name, dist.obs_dim, dist.act_dim,
                                     int(getattr(dist, "oracle_dim", 0)), config)
            # training only: the privileged critic of the outer advantages (not exported)
            self.critic = OuterCritic(dist.obs_dim, int(getattr(dist, "oracle_dim", 0)),
                                      config.critic_hidden) if config.outer_critic else None
        if config.init_run:
            warm_start_from_dr(self.agent, config.init_run, dist)
        if config.explore_log_std is not None:
            with torch.no_grad():
                self.agent.policy.log_std.fill_(float(config.explore_log_std))
            self.agent.policy.log_std.requires_grad_(False)
        # training only: never part of the agent or its checkpoint
        self.teacher = OracleTeacher(config.teacher_run, dist) if config.teacher_run else None
        self.first_order = VARIANTS[self.name][2]
        groups = [{"params": [p for p in self.agent.policy.parameters() if p.requires_grad]}]
        if VARIANTS[self.name][1]:
            groups.append({"params": list(self.agent.step_sizes.parameters()),
                           "lr": config.step_size_lr or config.outer_lr})
        self.optimizer = torch.optim.Adam(groups, lr=config.outer_lr)
        self.task_objective = gf.meta_objective_fn(
            self.agent.policy, keys=self.agent.adapt_keys, inner_steps=config.inner_steps,
            first_order=self.first_order, clip=config.clip_coef, inner_loss=config.inner_loss,
            model_coef=config.model_coef, context_ridge=ridge_of(config),
            teacher_coef=config.teacher_coef if config.teacher_run else 0.0,
            baseline=baseline_of(config))
        self.critic_optimizer = (
            torch.optim.Adam(self.critic.net.parameters(), lr=config.critic_lr, eps=1e-5)
            if self.critic is not None else None)

    def final_agent(self) -> GradientAgent:
        return self.agent

    def modules(self) -> dict[str, torch.nn.Module]:
        mods: dict[str, torch.nn.Module] = {"agent": self.agent}
        if self.critic is not None:  # checkpointed (exact --resume), never exported
            mods["critic"] = self.critic
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        opts = {"optimizer": self.optimizer}
        if self.critic_optimizer is not None:
            opts["critic_optimizer"] = self.critic_optimizer
        return opts

    @classmethod
    def make_evaluator(cls, agent: GradientAgent) -> Any:
        from metabot.algos.maml_eval import GradientEvaluator

        return GradientEvaluator(agent)

    # -- one meta-iteration --------------------------------------------------------------
    def _advantages(self, eps: list[Episodes]) -> list[np.ndarray]:
        return [advantages(e.obs_norm, e.rewards, e.ends, gamma=self.config.gamma,
                           lam=self.config.gae_lambda) for e in eps]

    def _critic_step(self, pre: list[Episodes], post: list[Episodes], privileged: np.ndarray,
                     episode_steps: int) -> tuple[list[np.ndarray], list[np.ndarray],
                                                  dict[str, float]]:
        """Outer advantages of the pre- and post-adaptation episodes from the critic as it
        stands, then one regression of the critic on all of this iteration's returns."""
        cfg, critic = self.config, self.critic
        assert critic is not None and self.critic_optimizer is not None
        xs, rets, out = [], [], []
        for phase, group in ((0.0, pre), (1.0, post)):
            advs = []
            for i, e in enumerate(group):
                x = critic.inputs(e, privileged[i], episode_steps, phase)
                advs.append(critic_advantages(critic.value_raw(x), e, cfg.gamma,
                                              cfg.outer_gae_lambda))
                xs.append(x)
                rets.append(episode_returns(e, cfg.gamma))
            out.append(advs)
        x_all = torch.cat(xs)
        ret_all = torch.as_tensor(np.concatenate(rets), dtype=torch.float32)
        with torch.no_grad():
            before = critic.value_raw(x_all)
        var = float(np.var(ret_all.numpy()))
        explained = 1.0 - float(np.var(ret_all.numpy() - before)) / var if var > 0 else 0.0
        critic.value_norm.update(ret_all.reshape(-1, 1))
        loss = fit_critic(critic, self.critic_optimizer, x_all, ret_all,
                          epochs=cfg.critic_epochs, minibatches=cfg.critic_minibatches,
                          max_grad_norm=cfg.max_grad_norm, generator=self.torch_gen)
        # the privileged statistics move after the fit, as the baselines' priv_norm does
        if critic.privileged_dim > 0:
            critic.priv_norm.update(torch.as_tensor(privileged, dtype=torch.float32))
        return out[0], out[1], {"critic_loss": loss, "critic_explained_var": explained}

    def train_iteration(self) -> dict[str, float]:
        cfg, agent = self.config, self.agent
        tasks = self.dist.sample(cfg.meta_batch, split="train",
                                 seed=derive_seed(self.seed, self.iteration, 1))
        envs = EnvBatch(self.dist, tasks, seed=derive_seed(self.seed, self.iteration, 2))
        t0 = time.perf_counter()
        try:
            params = {k: v.detach() for k, v in agent.params().items()}
            pre, n0 = collect(envs, agent.policy, agent.obs_norm,
                              gf.stack_params(params, len(tasks)), cfg.adapt_episodes,
                              seed=derive_seed(self.seed, self.iteration, 3),
                              generator=self.torch_gen)
            pre_b = stack_batches(pre, self._advantages(pre), self.model_history)
            steps = {k: v.detach() for k, v in agent.step_dict().items()}
            adapted = gf.adapt_tasks(agent.policy, params, pre_b, steps, keys=agent.adapt_keys,
                                     inner_steps=cfg.inner_steps, inner_loss=cfg.inner_loss,
                                     context_ridge=ridge_of(cfg), baseline=baseline_of(cfg))
            post, n1 = collect(envs, agent.policy, agent.obs_norm, adapted, cfg.post_episodes,
                               seed=derive_seed(self.seed, self.iteration, 4),
                               generator=self.torch_gen)
            privileged, episode_steps = envs.privileged, envs.episode_steps
        finally:
            envs.close()
        t_sample = time.perf_counter() - t0
        t1 = time.perf_counter()
        extra: dict[str, float] = {}
        pre_outer = pre_b  # what the pre_coef term reads; the inner step always reads pre_b
        if self.critic is None:
            post_b = stack_batches(post, self._advantages(post), self.model_history)
        else:
            pre_adv, post_adv, extra = self._critic_step(pre, post, privileged, episode_steps)
            post_b = stack_batches(post, post_adv, self.model_history)
            pre_outer = {**pre_b, "adv": stack_batches(pre, pre_adv)["adv"]}
        if self.model_history is not None:
            extra.update(self._model_losses(params, adapted, pre_b))
        if self.teacher is not None:
            post_b["teacher_mean"] = self.teacher.means(post, privileged)
            extra.update(self.teacher.gaps(agent.policy, params, adapted, post_b))
        if self.name == "reptile":
            self._reptile_update(pre_b, post_b)
            objective = float("nan")
        else:
            objective = self._ppo_update(pre_b, post_b, pre_outer)
        if self.iteration < cfg.norm_obs_iterations and not cfg.init_run:
            agent.obs_norm.update(torch.as_tensor(
                np.concatenate([e.obs for e in pre + post]), dtype=torch.float32))
        t_update = time.perf_counter() - t1
        self.iteration += 1
        self.env_steps += n0 + n1
        pre_ret = float(np.mean([e.returns().mean() for e in pre]))
        post_ret = float(np.mean([e.returns().mean() for e in post]))
        return {
            "return": post_ret,
            "pre_adapt_return": pre_ret,
            "adapt_gain": post_ret - pre_ret,
            "objective": objective,
            "sample_s": t_sample,
            "update_s": t_update,
            "log_std": float(agent.policy.log_std.detach().mean()),
            "step_size": float(torch.stack(
                [v.detach().mean() for v in agent.step_dict().values()]).mean()),
            **extra,
        }

    @staticmethod
    def _model_losses(params: gf.Params, adapted: gf.Params,
                      pre: gf.Batch) -> dict[str, float]:
        """The context model's loss on the pre-adaptation data before and after the inner
        step (mean over tasks): how much the step explains of the task's dynamics."""
        from torch.func import vmap

        with torch.no_grad():
            before = vmap(gf.context_model_loss, in_dims=(None, 0))(params, pre).mean()
            after = vmap(gf.context_model_loss)(adapted, pre).mean()
        return {"model_loss_pre": float(before), "model_loss_adapted": float(after)}

    def _ppo_update(self, pre: gf.Batch, post: gf.Batch,
                    pre_outer: gf.Batch | None = None) -> float:
        """``pre`` feeds the inner step (linear-baseline advantages, as on the robot);
        ``pre_outer`` (default ``pre``) the pre_coef term of the outer objective."""
        agent, cfg = self.agent, self.config
        pre_outer = pre if pre_outer is None else pre_outer
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        n_tasks = pre["obs"].shape[0]
        for _ in range(cfg.ppo_epochs):
            values = []  # the last epoch's are returned
            if cfg.outer_minibatches > 1:
                order = torch.randperm(n_tasks, generator=self.torch_gen)
            else:
                order = torch.arange(n_tasks)
            for idx in order.chunk(cfg.outer_minibatches):
                pre_mb = {k: v[idx] for k, v in pre.items()}
                post_mb = {k: v[idx] for k, v in post.items()}
                pre_outer_mb = {k: v[idx] for k, v in pre_outer.items()}
                value = gf.meta_objective(self.task_objective, agent.params(),
                                          agent.step_dict(), pre_mb, post_mb)
                if cfg.pre_coef > 0:
                    value = value + cfg.pre_coef * gf.initial_policy_objective(
                        agent.policy, agent.params(), pre_outer_mb, cfg.clip_coef)
                self.optimizer.zero_grad()
                (-value).backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                self.optimizer.step()
                values.append(float(value.detach()))
        return float(np.mean(values))

    def _reptile_update(self, pre: gf.Batch, post: gf.Batch) -> None:
        agent, cfg = self.agent, self.config
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


def warm_start_from_dr(agent: GradientAgent, run_dir: str, dist: Any) -> None:
    """Make the meta-initialization a trained dr policy: dr's actor is the same tanh MLP
    (body layers, then a linear mean head), so its weights, log-std and observation
    normalizer copy over one to one. ConfigError names what does not fit."""
    from metabot.algos.runs import load_baseline_run

    dr = load_baseline_run(run_dir, "init_run", "dr", dist, hidden=("hidden", agent.hidden))
    linears = [m for m in dr.actor if isinstance(m, torch.nn.Linear)]
    ours = [m for m in agent.policy.body if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for mine, theirs in zip([*ours, agent.policy.head], linears, strict=True):
            if mine.in_features > theirs.in_features:  # the context's columns start at 0
                mine.weight.zero_()
                mine.weight[:, : theirs.in_features].copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
            else:
                mine.load_state_dict(theirs.state_dict())
        agent.policy.log_std.copy_(dr.log_std)
        agent.obs_norm.load_state_dict(dr.obs_norm.state_dict())
