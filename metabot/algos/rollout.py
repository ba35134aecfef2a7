"""Lockstep rollout collection shared by the PPO-trained algorithms.

One rollout is `steps` control steps of every env in an `EnvBatch`; the agent is driven
through a `policy_step` callback so feed-forward, recurrent and history agents share the
same loop and the same bookkeeping of the contract inputs (previous applied command,
previous reward, first flag), exactly as the evaluator and the robot runtime feed them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from metabot.algos.envs import EnvBatch

# policy_step(obs, prev_action, prev_reward, first, privileged, state)
#   -> (action [N,A] sampled, log_prob [N], value [N] (raw units), new_state, extras dict)
PolicyStep = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any, dict]]


@dataclass
class Rollout:
    obs: np.ndarray  # [T,N,O]
    prev_action: np.ndarray  # [T,N,A] applied command of the previous step (0 on first)
    prev_reward: np.ndarray  # [T,N,1] (0 on first)
    first: np.ndarray  # [T,N,1]
    privileged: np.ndarray  # [T,N,P]
    actions: np.ndarray  # [T,N,A] sampled (pre-clip) actions, for the log-probabilities
    log_prob: np.ndarray  # [T,N]
    values: np.ndarray  # [T,N] raw units
    rewards: np.ndarray  # [T,N]
    terminated: np.ndarray  # [T,N]
    truncated: np.ndarray  # [T,N]
    final_obs: np.ndarray  # [T,N,O] observation after each step (pre auto-reset)
    episode_returns: list[float] = field(default_factory=list)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def dones(self) -> np.ndarray:
        return np.logical_or(self.terminated, self.truncated).astype(np.float32)


@torch.no_grad()
def collect(
    envs: EnvBatch,
    policy_step: PolicyStep,
    steps: int,
    reset_seed: int,
    act_dim: int,
    state: Any = None,
) -> tuple[Rollout, Any]:
    """Reset `envs` with `reset_seed` and run `steps` lockstep steps."""
    obs = envs.reset(reset_seed)
    n = envs.n
    priv = torch.as_tensor(envs.privileged)
    first = np.ones((n, 1), np.float32)
    prev_reward = np.zeros((n, 1), np.float32)
    prev_action = np.zeros((n, act_dim), np.float32)
    buf: dict[str, list] = {k: [] for k in (
        "obs", "prev_action", "prev_reward", "first", "actions", "log_prob", "values",
        "rewards", "terminated", "truncated", "final_obs",
    )}
    extras: dict[str, list] = {}
    ep_ret = np.zeros(n)
    episode_returns: list[float] = []
    for _ in range(steps):
        action, logp, value, state_next, extra = policy_step(
            torch.as_tensor(obs), torch.as_tensor(prev_action), torch.as_tensor(prev_reward),
            torch.as_tensor(first), priv, state,
        )
        state = state_next
        a = action.numpy().astype(np.float32)
        applied = np.clip(a, -1.0, 1.0)
        nxt, rew, term, trunc, final, _ = envs.step(applied)
        for k, v in (("obs", obs), ("prev_action", prev_action), ("prev_reward", prev_reward),
                     ("first", first), ("actions", a), ("log_prob", logp.numpy()),
                     ("values", value.numpy()), ("rewards", rew), ("terminated", term),
                     ("truncated", trunc), ("final_obs", final)):
            buf[k].append(np.array(v, copy=True))
        for k, v in extra.items():
            extras.setdefault(k, []).append(v.numpy() if torch.is_tensor(v) else np.asarray(v))
        ep_ret += rew
        done = np.logical_or(term, trunc)
        for i in np.flatnonzero(done):
            episode_returns.append(float(ep_ret[i]))
            ep_ret[i] = 0.0
        obs = nxt
        first = done.astype(np.float32)[:, None]
        prev_action = applied * (1.0 - first)
        prev_reward = (rew[:, None] * (1.0 - first)).astype(np.float32)
    stacked = {k: np.stack(v) for k, v in buf.items()}
    rollout = Rollout(
        privileged=np.broadcast_to(envs.privileged, (steps, *envs.privileged.shape)).copy(),
        episode_returns=episode_returns,
        extras={k: np.stack(v) for k, v in extras.items()},
        **stacked,
    )
    return rollout, state
