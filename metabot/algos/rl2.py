"""`rl2`: RL^2 (Duan et al. 2016) - a GRU policy trained with PPO over trials.

A trial is `episodes_per_rollout` consecutive episodes on one task. The hidden state is
carried across the episodes of a trial (the `first` flag marks each restart) and zeroed
between tasks; the PPO objective is the return of the whole trial, so exploring in the
first episode pays off in the later ones. Every PPO iteration is one trial per env on
freshly sampled tasks, so sequences never straddle two tasks and the GRU runs over whole
trials from a zero state (no truncated BPTT bookkeeping).

With `teacher_run` (a finished `rma` or `oracle` run) the heads are that teacher's policy
and critic, reading [observation, the GRU's estimate of what the teacher reads]; a
regression loss (and, with `task_epochs`, supervised epochs of its own) teaches the GRU that
estimate, while PPO keeps training the whole agent on the trial return. Why: RL^2 alone
learned no use of its memory on arm2d-reach in 30 minutes (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metabot.algos.agents import Agent, RL2Agent, RMAAgent
from metabot.algos.base import Algorithm
from metabot.algos.baselines import reset_seed, sample_batch
from metabot.algos.ppo import (
    PPOConfig,
    anneal_lr,
    gae,
    gaussian_entropy,
    gaussian_log_prob,
    ppo_update,
)
from metabot.algos.registry import register
from metabot.algos.rollout import collect
from metabot.algos.runs import load_baseline_run
from metabot.errors import ConfigError


@dataclass(frozen=True)
class RL2Config(PPOConfig):
    episodes_per_rollout: int = 3  # episodes per trial
    hidden_size: int = 128
    head: tuple[int, ...] = (128,)
    critic_privileged: bool = True
    lr: float = 5e-4
    num_minibatches: int = 4
    obs_skip: bool = False  # heads see the current observation beside the GRU state
    # > 0: auxiliary loss regressing the task's normalized dynamics features from the GRU
    # state (task-inference supervision, Humplik et al. 2019); training only
    aux_task_coef: float = 0.0
    # a finished `dr` run dir (relative to the working directory): start from its policy and
    # critic, the GRU's read-out weights zero, so training begins at dr's return and only
    # has to learn what memory adds. Needs obs_skip=true and head equal to dr's hidden
    init_run: str = ""
    # a finished `oracle` or `rma` run dir: the heads take [observation, the task head's
    # estimate] and start as that run's (teacher) policy and critic; the task head regresses
    # what the teacher's policy reads (the oracle's normalized dynamics features, or the RMA
    # teacher's latent z), so the GRU has only to infer it. Needs aux_task_coef > 0 and head
    # equal to the teacher's hidden
    teacher_run: str = ""
    # > 0: after each PPO update, this many epochs of supervised updates of the GRU and task
    # head alone on the same trials, with their own optimizer (RMA's student phase inside
    # RL^2): PPO's KL stop, which a small policy std trips early, no longer caps how fast
    # the memory learns the dynamics. Needs aux_task_coef > 0
    task_epochs: int = 0
    task_lr: float = 1e-3
    # with teacher_run: the supervised loss adds this weight times the squared difference
    # between the actions under the estimate and under the teacher's target, so the
    # estimate is fitted hardest where the policy is sensitive to it
    task_action_coef: float = 0.0

    def validate(self) -> None:
        super().validate()
        if self.num_minibatches > self.num_envs:
            raise ConfigError("config key 'num_minibatches' must be <= num_envs for rl2")
        if not self.aux_task_coef >= 0:
            raise ConfigError("config key 'aux_task_coef' must be >= 0")
        if self.task_epochs and not self.aux_task_coef > 0:
            raise ConfigError("config key 'task_epochs' needs aux_task_coef > 0 (the task "
                              "head it trains)")
        if self.task_action_coef and not self.teacher_run:
            raise ConfigError("config key 'task_action_coef' needs teacher_run (the policy "
                              "must read the estimate)")
        if not (self.task_epochs >= 0 and self.task_lr > 0 and self.task_action_coef >= 0):
            raise ConfigError("config keys 'task_epochs', 'task_action_coef' must be >= 0 "
                              "and 'task_lr' > 0")
        if self.teacher_run and self.init_run:
            raise ConfigError("config keys 'teacher_run' and 'init_run' exclude each other")
        if self.init_run and not self.obs_skip:
            raise ConfigError("config key 'init_run' needs obs_skip=true (the heads must see "
                              "the observation, as dr's do)")
        if self.teacher_run and not self.aux_task_coef > 0:
            raise ConfigError("config key 'teacher_run' needs aux_task_coef > 0 (the task "
                              "head that feeds the teacher's policy learns by regression)")


@register
class RL2(Algorithm):
    name = "rl2"
    Config = RL2Config
    budget_unit = "episodes"

    def __init__(self, dist: Any, config: RL2Config, seed: int, total_steps: int):
        super().__init__(dist, config, seed, total_steps)
        torch.manual_seed(self.seed)
        teacher = None
        if config.teacher_run:
            teacher = load_baseline_run(config.teacher_run, "teacher_run", ("oracle", "rma"),
                                        dist, hidden=("head", config.head))
        self.agent = RL2Agent(
            dist.obs_dim, dist.act_dim, dist.oracle_dim, hidden_size=config.hidden_size,
            head=list(config.head), critic_privileged=config.critic_privileged,
            init_log_std=config.init_log_std, obs_skip=config.obs_skip,
            task_head=config.aux_task_coef > 0 and dist.oracle_dim > 0,
            task_input=teacher is not None,
            task_dim=teacher.latent_dim if isinstance(teacher, RMAAgent) else 0,
        )
        # what the task head regresses from the normalized dynamics features
        self.task_target = self.agent.priv_norm
        if config.init_run:
            warm_start_from_dr(self.agent, config.init_run, dist)
        if teacher is not None:
            self.task_target = warm_start_from_teacher(self.agent, teacher, config.teacher_run)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=config.lr, eps=1e-5)
        self.task_optimizer = None
        if config.task_epochs:
            memory = [*self.agent.gru.parameters(), *self.agent.task_head.parameters()]
            self.task_optimizer = torch.optim.Adam(memory, lr=config.task_lr)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        if self.task_optimizer is None:
            return {"optimizer": self.optimizer}
        return {"optimizer": self.optimizer, "task": self.task_optimizer}

    def budget_shapes_training(self) -> bool:
        return self.config.anneal_lr

    def final_agent(self) -> Agent:
        return self.agent

    def _value_raw(self, features, privileged):
        v = self.agent.value_from_features(features, privileged).unsqueeze(-1)
        return self.agent.value_norm.denormalize(v)[..., 0]

    def _policy_step(self, obs, prev_action, prev_reward, first, privileged, hidden):
        agent = self.agent
        if hidden is None:
            hidden = agent.initial_state(obs.shape[0])[0]
        feats, hidden = agent.sequence(
            obs[None], prev_action[None], prev_reward[None], first[None], hidden
        )
        feats = feats[0]
        mean = agent.actor(feats)
        action = mean + agent.log_std.exp() * torch.randn(mean.shape, generator=self.torch_gen)
        logp = gaussian_log_prob(mean, agent.log_std, action)
        return action, logp, self._value_raw(feats, privileged), hidden, {}

    def train_iteration(self) -> dict[str, float]:
        cfg, agent = self.config, self.agent
        envs = sample_batch(self, cfg.num_envs)
        steps = cfg.episodes_per_rollout * envs.episode_steps
        rollout, _ = collect(
            envs, self._policy_step, steps, reset_seed(self), agent.act_dim
        )
        envs.close()
        # The trial is the unit: only its end (or a true termination) stops the return.
        dones = rollout.terminated.astype(np.float32)
        dones[-1] = 1.0
        adv, returns = gae(
            rollout.rewards, rollout.values, dones, np.zeros(envs.n), cfg.gamma, cfg.gae_lambda
        )
        agent.value_norm.update(torch.as_tensor(returns).reshape(-1, 1))
        vn = agent.value_norm

        seq = lambda x: torch.as_tensor(np.ascontiguousarray(x))  # noqa: E731  [T,N,...]
        obs, pa, pr, first = seq(rollout.obs), seq(rollout.prev_action), seq(
            rollout.prev_reward), seq(rollout.first)
        priv, actions = seq(rollout.privileged), seq(rollout.actions)
        h0 = agent.initial_state(envs.n)[0]

        def forward(idx):
            feats, _ = agent.sequence(obs[:, idx], pa[:, idx], pr[:, idx], first[:, idx], h0[idx])
            mean = agent.actor(feats)
            logp = gaussian_log_prob(mean, agent.log_std, actions[:, idx])
            value = agent.value_from_features(feats, priv[:, idx])
            out = (logp.T, gaussian_entropy(agent.log_std, logp.T.shape), value.T)
            if agent.task_head is None:
                return out
            target = self.task_target(priv[:, idx])
            task_loss = (agent.task_prediction(feats) - target).pow(2).mean()
            return (*out, cfg.aux_task_coef * task_loss)

        with torch.no_grad():
            old_value = forward(torch.arange(envs.n))[2]
        ret_t = torch.as_tensor(returns).T
        batch = {  # items are envs (whole trials): tensors [N, T]
            "old_log_prob": torch.as_tensor(rollout.log_prob).T,
            "advantages": torch.as_tensor(adv).T,
            "old_value": old_value,
            "returns": (ret_t - vn.mean) / torch.sqrt(vn.var + vn.eps),
        }
        anneal_lr(self.optimizer, cfg, self.env_steps, self.total_steps)
        stats = ppo_update(list(agent.parameters()), self.optimizer, envs.n, forward, batch, cfg,
                           self.torch_gen)
        if self.task_optimizer is not None:
            stats.update(self._fit_task_head(obs, pa, pr, first, priv, h0))
        agent.rew_norm.update(torch.as_tensor(rollout.rewards).reshape(-1, 1))
        if not cfg.teacher_run:  # a teacher's heads keep the normalization they learned with
            agent.obs_norm.update(torch.as_tensor(rollout.obs))
            if agent.privileged_dim > 0:
                agent.priv_norm.update(torch.as_tensor(envs.privileged))
        self.iteration += 1
        self.env_steps += steps * cfg.num_envs
        # per-episode returns within the trial show whether the agent adapts
        stats["return"] = float(np.mean(rollout.episode_returns or [np.nan]))
        if not rollout.terminated.any():  # fixed-length episodes: returns per trial position
            per_ep = rollout.rewards.reshape(cfg.episodes_per_rollout, -1, envs.n).sum(1).mean(1)
            stats["return_first_episode"] = float(per_ep[0])
            stats["return_last_episode"] = float(per_ep[-1])
        stats["std"] = float(agent.log_std.detach().exp().mean())
        return stats

    def _fit_task_head(self, obs, pa, pr, first, priv, h0) -> dict[str, float]:
        """Supervised epochs over whole trials ([T, N, ...] tensors): the GRU and task head
        regress the task target (and, with task_action_coef, the actions the policy takes
        under it). Returns the last epoch's mean loss."""
        cfg, agent = self.config, self.agent
        n = obs.shape[1]
        mb = max(1, n // cfg.num_minibatches)
        with torch.no_grad():
            target = self.task_target(priv)  # [T, N, Z]
            if cfg.task_action_coef > 0:
                teacher_action = agent.actor(torch.cat([agent.obs_norm(obs), target], -1))
        losses: list[float] = []
        for _ in range(cfg.task_epochs):
            perm = torch.randperm(n, generator=self.torch_gen)
            for start in range(0, n, mb):
                idx = perm[start : start + mb]
                feats, _ = agent.sequence(obs[:, idx], pa[:, idx], pr[:, idx], first[:, idx],
                                          h0[idx])
                loss = (agent.task_prediction(feats) - target[:, idx]).pow(2).mean()
                if cfg.task_action_coef > 0:
                    act_err = (agent.actor(feats) - teacher_action[:, idx]).pow(2).mean()
                    loss = loss + cfg.task_action_coef * act_err
                self.task_optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(
                    [p for g in self.task_optimizer.param_groups for p in g["params"]], 1.0)
                self.task_optimizer.step()
                losses.append(loss.item())
        return {"task_loss": float(np.mean(losses[-max(1, len(losses) // cfg.task_epochs):]))}


def _copy_heads_setup(agent: RL2Agent, base: Any, key: str, run_dir: str) -> None:
    """Check that a baseline's critic fits ours; copy its normalizers and log-std."""
    base_critic_privileged = getattr(base, "critic_privileged", True)  # RMA's always is
    if base_critic_privileged != agent.critic_privileged:
        raise ConfigError(f"config key {key!r} ({run_dir!r}): critic_privileged must match "
                          f"the {base.algo} run's ({base_critic_privileged})")
    with torch.no_grad():
        for name in ("obs_norm", "priv_norm", "value_norm"):
            getattr(agent, name).load_state_dict(getattr(base, name).state_dict())
        agent.log_std.copy_(base.log_std)


def warm_start_from_teacher(agent: RL2Agent, teacher: Any, run_dir: str) -> Any:
    """Make `agent`'s heads a trained oracle's or RMA teacher's: the actor as is (it reads
    [obs, estimate] where the teacher's read [obs, true features or z]); the critic with
    zero weights on the estimate, so it judges exactly as the teacher's did. Returns the
    frozen map from dynamics features to what the task head must estimate. Until the task
    head has learned, the policy acts on a wrong estimate: that is what training removes."""
    _copy_heads_setup(agent, teacher, "teacher_run", run_dir)
    O, Z = agent.obs_dim, agent.task_dim
    with torch.no_grad():
        agent.actor.load_state_dict(teacher.actor.state_dict())
        agent.critic.load_state_dict({k: v for k, v in teacher.critic.state_dict().items()
                                      if k != "0.weight"}, strict=False)
        weight = agent.critic[0].weight
        weight.zero_()
        weight[:, :O].copy_(teacher.critic[0].weight[:, :O])
        weight[:, O + Z :].copy_(teacher.critic[0].weight[:, O:])
    teacher.requires_grad_(False)
    return teacher.teacher_latent if isinstance(teacher, RMAAgent) else teacher.priv_norm


def warm_start_from_dr(agent: RL2Agent, run_dir: str, dist: Any) -> None:
    """Make `agent` act and judge exactly as a trained dr agent: copy dr's normalizers,
    log-std, actor and critic into the heads, with zero weights on the GRU's part of the
    heads' input. The GRU still gets gradients through those weights, so PPO can grow the
    use of memory from there. ConfigError names what does not fit."""
    dr = load_baseline_run(run_dir, "init_run", "dr", dist,
                           hidden=("head", agent.spec()["kwargs"]["head"]))
    _copy_heads_setup(agent, dr, "init_run", run_dir)
    H = agent.hidden_size
    with torch.no_grad():
        for ours, theirs in ((agent.actor, dr.actor), (agent.critic, dr.critic)):
            ours.load_state_dict({k: v for k, v in theirs.state_dict().items()
                                  if k != "0.weight"}, strict=False)
            ours[0].weight.zero_()
            ours[0].weight[:, H:].copy_(theirs[0].weight)
