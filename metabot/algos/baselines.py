"""The baselines every result is measured against, trained with PPO on the same
distribution and budget: `dr` (non-adaptive MLP under domain randomization) and `oracle`
(the same MLP also given the task's true, normalized dynamics features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from metabot.algos.agents import Agent, MLPAgent
from metabot.algos.base import Algorithm
from metabot.algos.envs import EnvBatch, derive_seed
from metabot.algos.ppo import (
    PPOConfig,
    anneal_lr,
    gae,
    gaussian_entropy,
    gaussian_log_prob,
    ppo_update,
)
from metabot.algos.registry import register
from metabot.algos.rollout import Rollout, collect
from metabot.errors import ConfigError


@dataclass(frozen=True)
class MLPConfig(PPOConfig):
    hidden: tuple[int, ...] = (128, 128)
    critic_privileged: bool = True


@dataclass(frozen=True)
class PartialOracleConfig(MLPConfig):
    # Dynamics parameters the oracle is not told: "servo_gain" (every element) or
    # "servo_gain[1]". Their features are held at the distribution's mean, in the actor and
    # the critic. Why: an oracle blind to X bounds what a policy that cannot infer X can
    # score, which prices each parameter (docs/algorithms.md, "What each parameter is worth").
    hide: tuple[str, ...] = ()

    def validate(self) -> None:
        super().validate()
        if not self.hide:
            raise ConfigError("config key 'hide' must name at least one dynamics parameter "
                              "(hiding none is the `oracle` algorithm)")


def privileged_indices(dist: Any, hide: tuple[str, ...]) -> list[int]:
    """Indices into ``dist.oracle_features`` of the names in ``hide`` (ConfigError naming
    the unknown ones and the known ones)."""
    if not hide:
        return []
    names = getattr(dist, "oracle_names", None)
    if names is None:
        raise ConfigError(f"config key 'hide': {dist.name} does not name its oracle features")
    out: list[int] = []
    for h in hide:
        match = [i for i, n in enumerate(names) if n == h or n.split("[")[0] == h]
        if not match:
            raise ConfigError(f"config key 'hide': {h!r} is not a dynamics parameter of "
                              f"{dist.name} (known: {', '.join(names)})")
        out.extend(i for i in match if i not in out)
    return sorted(out)


def sample_batch(algo: Algorithm, n: int) -> EnvBatch:
    """Fresh training tasks and envs for this iteration (seeded by seed and iteration)."""
    tasks = algo.dist.sample(n, split="train", seed=derive_seed(algo.seed, algo.iteration, 1))
    return EnvBatch(algo.dist, tasks, seed=derive_seed(algo.seed, algo.iteration, 2))


def reset_seed(algo: Algorithm) -> int:
    return derive_seed(algo.seed, algo.iteration, 3)


def bootstrap_truncation(
    rollout: Rollout, value_fn, gamma: float
) -> np.ndarray:
    """Rewards with gamma * V(final obs) added where an episode was cut by the time limit."""
    rewards = rollout.rewards.copy()
    cut = rollout.truncated & ~rollout.terminated
    if cut.any():
        t_idx, n_idx = np.nonzero(cut)
        with torch.no_grad():
            v = value_fn(
                torch.as_tensor(rollout.final_obs[t_idx, n_idx]),
                torch.as_tensor(rollout.privileged[t_idx, n_idx]),
            ).numpy()
        rewards[t_idx, n_idx] += gamma * v
    return rewards


class FeedForwardPPO(Algorithm):
    """PPO for agents whose action depends on the current step only (given priv/latent).

    Subclasses provide the agent and `actor_mean(obs, privileged)`/`value(obs, privileged)`
    (raw-unit value = denormalized critic output); RMA's teacher phase reuses this class.
    """

    agent: Any

    def setup_optimizer(self, params: list[torch.nn.Parameter]) -> None:
        self.params = params
        self.optimizer = torch.optim.Adam(params, lr=self.config.lr, eps=1e-5)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optimizer": self.optimizer}

    # -- policy interface used by the PPO step (overridden by RMA's teacher) -------------
    def actor_mean(self, obs: torch.Tensor, privileged: torch.Tensor) -> torch.Tensor:
        return self.agent.actor_mean(obs, privileged)

    def value_norm(self, obs: torch.Tensor, privileged: torch.Tensor) -> torch.Tensor:
        return self.agent.value(obs, privileged)

    def value_raw(self, obs, privileged):
        v = self.value_norm(obs, privileged).unsqueeze(-1)
        return self.agent.value_norm.denormalize(v)[..., 0]

    def _policy_step(self, obs, prev_action, prev_reward, first, privileged, state):
        mean = self.actor_mean(obs, privileged)
        std = self.agent.log_std.exp()
        noise = torch.randn(mean.shape, generator=self.torch_gen)
        action = mean + std * noise
        logp = gaussian_log_prob(mean, self.agent.log_std, action)
        return action, logp, self.value_raw(obs, privileged), state, {}

    def ppo_iteration(self) -> dict[str, float]:
        cfg = self.config
        envs = sample_batch(self, cfg.num_envs)
        steps = cfg.episodes_per_rollout * envs.episode_steps
        rollout, _ = collect(
            envs, self._policy_step, steps, reset_seed(self), self.agent.act_dim
        )
        envs.close()
        agent = self.agent
        rewards = bootstrap_truncation(rollout, self.value_raw, cfg.gamma)
        with torch.no_grad():
            last_v = self.value_raw(
                torch.as_tensor(rollout.final_obs[-1]), torch.as_tensor(rollout.privileged[-1])
            ).numpy()
        adv, returns = gae(
            rewards, rollout.values, rollout.dones, last_v, cfg.gamma, cfg.gae_lambda
        )
        agent.value_norm.update(torch.as_tensor(returns).reshape(-1, 1))

        flat = lambda x: torch.as_tensor(x).reshape(-1, *x.shape[2:])  # noqa: E731
        obs, priv, actions = flat(rollout.obs), flat(rollout.privileged), flat(rollout.actions)
        ret_t = flat(returns)
        vn = agent.value_norm
        with torch.no_grad():
            old_value = self.value_norm(obs, priv)  # normalized with the updated statistics
        batch = {
            "old_log_prob": flat(rollout.log_prob),
            "advantages": flat(adv),
            "old_value": old_value,
            "returns": ((ret_t.unsqueeze(-1) - vn.mean) / torch.sqrt(vn.var + vn.eps))[:, 0],
        }

        def evaluate(idx):
            mean = self.actor_mean(obs[idx], priv[idx])
            logp = gaussian_log_prob(mean, agent.log_std, actions[idx])
            ent = gaussian_entropy(agent.log_std, logp.shape)
            return logp, ent, self.value_norm(obs[idx], priv[idx])

        anneal_lr(self.optimizer, cfg, self.env_steps, self.total_steps)
        stats = ppo_update(self.params, self.optimizer, obs.shape[0], evaluate, batch, cfg,
                           self.torch_gen)
        # Input statistics move after the update, so the log-probabilities recomputed in the
        # update match those of the rollout (the ratio starts at exactly 1).
        agent.obs_norm.update(torch.as_tensor(rollout.obs))
        if agent.privileged_dim > 0:
            agent.priv_norm.update(torch.as_tensor(envs.privileged))
        self.iteration += 1
        self.env_steps += steps * cfg.num_envs
        stats["return"] = float(np.mean(rollout.episode_returns)) if rollout.episode_returns \
            else float("nan")
        stats["std"] = float(agent.log_std.detach().exp().mean())
        return stats


class _MLPBaseline(FeedForwardPPO):
    Config = MLPConfig
    use_privileged = False

    def __init__(self, dist: Any, config: MLPConfig, seed: int, total_steps: int):
        super().__init__(dist, config, seed, total_steps)
        torch.manual_seed(self.seed)  # weight init
        self.agent = MLPAgent(
            dist.obs_dim, dist.act_dim, dist.oracle_dim, algo=self.name,
            use_privileged=self.use_privileged, critic_privileged=config.critic_privileged,
            hidden=list(config.hidden), init_log_std=config.init_log_std,
            hide_privileged=self.hidden_privileged(dist, config),
        )
        self.setup_optimizer(list(self.agent.parameters()))

    def hidden_privileged(self, dist: Any, config: MLPConfig) -> list[int]:
        """Oracle features the agent is not shown (partial-oracle's `hide`)."""
        return []

    def train_iteration(self) -> dict[str, float]:
        return self.ppo_iteration()

    def budget_shapes_training(self) -> bool:
        return self.config.anneal_lr

    def final_agent(self) -> Agent:
        return self.agent


@register
class DomainRandomization(_MLPBaseline):
    """`dr`: one non-adaptive policy for the whole distribution."""

    name = "dr"


@register
class Oracle(_MLPBaseline):
    """`oracle`: the same policy given the true dynamics features (upper reference)."""

    name = "oracle"
    use_privileged = True


@register
class PartialOracle(Oracle):
    """`partial-oracle`: the oracle not told the dynamics parameters in `hide`. A separate
    algorithm, not an oracle option, so the oracle's config (and every digest of a shipped
    oracle) stays as it was."""

    name = "partial-oracle"
    Config = PartialOracleConfig

    def hidden_privileged(self, dist: Any, config: PartialOracleConfig) -> list[int]:
        return privileged_indices(dist, config.hide)
