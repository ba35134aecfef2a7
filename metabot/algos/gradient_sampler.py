"""Episode collection for the gradient-based meta-learners: one sub-env per task.

Each task's sub-env acts with that task's own (possibly adapted) parameters: the
parameter dicts are stacked on a leading task axis and evaluated with ``vmap``. Exactly
``episodes`` whole episodes are recorded per task; a sub-env that finishes early keeps
stepping (its extra steps are not recorded or counted as used).
Hand-written rather than metabot.algos.rollout.collect: that one runs a fixed step count
with one policy, this one needs per-task parameters and exact episode counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metabot.algos.gradient_functional import Params, sample_actions


@dataclass
class Episodes:
    """One task's recorded episodes, back to back (what adaptation consumes)."""

    obs: np.ndarray  # raw observations [N, O]
    obs_norm: np.ndarray  # normalized as the policy saw them [N, O]
    actions: np.ndarray  # sampled, pre-clip [N, A]
    logp: np.ndarray  # log-prob under the sampling parameters [N]
    rewards: np.ndarray  # [N]
    ends: np.ndarray  # 1.0 on each episode's last step [N]

    def returns(self) -> np.ndarray:
        """Undiscounted return of each episode."""
        idx = np.flatnonzero(self.ends)
        sums = np.add.reduceat(self.rewards, np.r_[0, idx[:-1] + 1]) if len(idx) else []
        return np.asarray(sums, dtype=np.float64)

    def first(self, k: int) -> Episodes:
        """The first k episodes."""
        if k <= 0:
            return Episodes(*(a[:0] for a in self._arrays()))
        stop = int(np.flatnonzero(self.ends)[k - 1]) + 1
        return Episodes(*(a[:stop] for a in self._arrays()))

    def _arrays(self):
        return (self.obs, self.obs_norm, self.actions, self.logp, self.rewards, self.ends)

    def transitions(self) -> dict[str, np.ndarray]:
        """The dict metabot.algos.maml_adapt.adapt takes."""
        return {"obs": self.obs, "actions": self.actions, "rewards": self.rewards,
                "ends": self.ends}


def collect(
    envs,
    model: torch.nn.Module,
    normalize,
    task_params: Params,
    episodes: int,
    *,
    seed: int,
    generator: torch.Generator,
    deterministic: bool = False,
) -> tuple[list[Episodes], int]:
    """Run ``episodes`` episodes in every env of ``envs`` (a metabot.algos.envs.EnvBatch:
    lockstep, same-step auto-reset) after resetting it with ``seed``.

    Returns per-task Episodes and the env steps taken in all (recorded or not)."""
    n = envs.n
    obs = envs.reset(seed)
    buf: list[list[tuple]] = [[] for _ in range(n)]
    done_count = np.zeros(n, dtype=np.int64)
    steps = 0
    while (done_count < episodes).any():
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        with torch.no_grad():
            obs_n = normalize(obs_t)
        actions, logp = sample_actions(model, task_params, obs_n, generator, deterministic)
        a = actions.numpy()
        next_obs, rewards, term, trunc, _, _ = envs.step(np.clip(a, -1.0, 1.0))
        steps += n
        end = np.logical_or(term, trunc)
        on_n = obs_n.numpy()
        for i in np.flatnonzero(done_count < episodes):
            buf[i].append((obs[i], on_n[i], a[i], float(logp[i]), float(rewards[i]),
                           float(end[i])))
            if end[i]:
                done_count[i] += 1
        obs = next_obs
    out = []
    for rows in buf:
        cols = list(zip(*rows, strict=True))
        out.append(Episodes(*(np.asarray(c, dtype=np.float64) for c in cols)))
    return out, steps
