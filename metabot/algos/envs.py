"""Lockstep batches of task environments, as the algorithms and the evaluator use them.

`EnvBatch` wraps the task library's vectorized env (`dist.make_vec_env(tasks, seed)`) or,
where the library has none, one `dist.make_env(task)` per task, behind one small API:
explicit per-env reset seeds and same-step auto-reset. Every rollout starts with a reset
from seeds derived from (run seed, iteration), which makes a training iteration a pure
function of the weights and the RNG state: that is what makes `--resume` exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def derive_seed(*parts: int) -> int:
    """A 31-bit seed from integer parts (stable across runs and platforms)."""
    seq = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts])
    return int(seq.generate_state(1)[0] & 0x7FFFFFFF)


def max_episode_steps(dist: Any, env: Any | None = None) -> int:
    """Episode length of a distribution (time limit), from the distribution or its env."""
    for attr in ("max_episode_steps", "episode_steps", "horizon"):
        value = getattr(dist, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    if env is not None:
        spec = getattr(env, "spec", None)
        if spec is not None and getattr(spec, "max_episode_steps", None):
            return int(spec.max_episode_steps)
        for attr in ("max_episode_steps", "episode_steps", "horizon"):
            value = getattr(env, attr, None) or getattr(getattr(env, "unwrapped", None), attr, None)
            if isinstance(value, int) and value > 0:
                return value
    raise AttributeError(f"cannot tell the episode length of {getattr(dist, 'name', dist)!r}")


class EnvBatch:
    """N single-task envs stepped in lockstep with same-step auto-reset.

    `step` returns the next observation (the first observation of a new episode where one
    ended), the reward, `terminated`, `truncated`, the final observation of an ended episode
    (else the next observation) and the per-env info dicts. After an episode ends, env i is
    reset with the next seed of its own seed stream.
    """

    def __init__(self, dist: Any, tasks: list[Any], seed: int):
        self.dist = dist
        self.tasks = list(tasks)
        self.n = len(self.tasks)
        self.envs = [dist.make_env(task, seed=derive_seed(seed, i)) for i, task in enumerate(tasks)]
        self.privileged = np.stack(
            [np.asarray(dist.oracle_features(t), dtype=np.float32).reshape(-1) for t in tasks]
        ) if getattr(dist, "oracle_dim", 0) else np.zeros((self.n, 0), np.float32)
        self.episode_steps = max_episode_steps(dist, self.envs[0])
        self._seeds: list[int] = [0] * self.n
        self._resets: list[int] = [0] * self.n

    def reset(self, seeds: list[int]) -> tuple[np.ndarray, list[dict]]:
        """Reset every env with its own seed; later auto-resets derive from that seed."""
        self._seeds = [int(s) for s in seeds]
        self._resets = [0] * self.n
        out = [env.reset(seed=s) for env, s in zip(self.envs, self._seeds, strict=True)]
        return np.stack([o for o, _ in out]).astype(np.float32), [i for _, i in out]

    def reset_one(self, i: int, seed: int) -> tuple[np.ndarray, dict]:
        obs, info = self.envs[i].reset(seed=int(seed))
        return np.asarray(obs, np.float32), info

    def step(self, actions: np.ndarray):
        obs, rew, term, trunc, final, infos = [], [], [], [], [], []
        for i, env in enumerate(self.envs):
            o, r, te, tr, info = env.step(actions[i])
            o = np.asarray(o, np.float32)
            final.append(o)
            if te or tr:
                self._resets[i] += 1
                o, _ = env.reset(seed=derive_seed(self._seeds[i], self._resets[i]))
                o = np.asarray(o, np.float32)
            obs.append(o)
            rew.append(r)
            term.append(te)
            trunc.append(tr)
            infos.append(info)
        return (
            np.stack(obs),
            np.asarray(rew, np.float32),
            np.asarray(term, bool),
            np.asarray(trunc, bool),
            np.stack(final),
            infos,
        )

    def close(self) -> None:
        for env in self.envs:
            env.close()
