"""`rl2`: RL^2 (Duan et al. 2016) - a GRU policy trained with PPO over trials.

A trial is `episodes_per_rollout` consecutive episodes on one task. The hidden state is
carried across the episodes of a trial (the `first` flag marks each restart) and zeroed
between tasks; the PPO objective is the return of the whole trial, so exploring in the
first episode pays off in the later ones. Every PPO iteration is one trial per env on
freshly sampled tasks, so sequences never straddle two tasks and the GRU runs over whole
trials from a zero state (no truncated BPTT bookkeeping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metabot.algos.agents import Agent, RL2Agent
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

    def validate(self) -> None:
        super().validate()
        if self.num_minibatches > self.num_envs:
            raise ConfigError("config key 'num_minibatches' must be <= num_envs for rl2")
        if not self.aux_task_coef >= 0:
            raise ConfigError("config key 'aux_task_coef' must be >= 0")
        if self.init_run and not self.obs_skip:
            raise ConfigError("config key 'init_run' needs obs_skip=true (the heads must see "
                              "the observation, as dr's do)")


@register
class RL2(Algorithm):
    name = "rl2"
    Config = RL2Config
    budget_unit = "episodes"

    def __init__(self, dist: Any, config: RL2Config, seed: int, total_steps: int):
        super().__init__(dist, config, seed, total_steps)
        torch.manual_seed(self.seed)
        self.agent = RL2Agent(
            dist.obs_dim, dist.act_dim, dist.oracle_dim, hidden_size=config.hidden_size,
            head=list(config.head), critic_privileged=config.critic_privileged,
            init_log_std=config.init_log_std, obs_skip=config.obs_skip,
            task_head=config.aux_task_coef > 0 and dist.oracle_dim > 0,
        )
        if config.init_run:
            warm_start_from_dr(self.agent, config.init_run, dist)
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=config.lr, eps=1e-5)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

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
            target = agent.priv_norm(priv[:, idx])
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
        agent.obs_norm.update(torch.as_tensor(rollout.obs))
        agent.rew_norm.update(torch.as_tensor(rollout.rewards).reshape(-1, 1))
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


def warm_start_from_dr(agent: RL2Agent, run_dir: str, dist: Any) -> None:
    """Make `agent` act and judge exactly as a trained dr agent: copy dr's normalizers,
    log-std, actor and critic into the heads, with zero weights on the GRU's part of the
    heads' input. The GRU still gets gradients through those weights, so PPO can grow the
    use of memory from there. ConfigError names what does not fit."""
    from metabot.algos.runs import load_baseline_run

    dr = load_baseline_run(run_dir, "init_run", "dr", dist)
    where = f"config key 'init_run' ({run_dir!r})"
    dr_hidden = list(dr.spec()["kwargs"]["hidden"])
    rl2_head = list(agent.spec()["kwargs"]["head"])
    if dr_hidden != rl2_head:
        raise ConfigError(f"{where}: head {rl2_head} must equal the dr run's hidden {dr_hidden}")
    if dr.critic_privileged != agent.critic_privileged:
        raise ConfigError(f"{where}: critic_privileged must match the dr run's "
                          f"({dr.critic_privileged})")
    H = agent.hidden_size
    with torch.no_grad():
        for name in ("obs_norm", "priv_norm", "value_norm"):
            getattr(agent, name).load_state_dict(getattr(dr, name).state_dict())
        agent.log_std.copy_(dr.log_std)
        for ours, theirs in ((agent.actor, dr.actor), (agent.critic, dr.critic)):
            ours.load_state_dict({k: v for k, v in theirs.state_dict().items()
                                  if k != "0.weight"}, strict=False)
            ours[0].weight.zero_()
            ours[0].weight[:, H:].copy_(theirs[0].weight)
