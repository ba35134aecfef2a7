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
    spec = getattr(dist, "spec", None)  # arm distributions: their randomization spec
    if isinstance(getattr(spec, "episode_steps", None), int):
        return int(spec.episode_steps)
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

    Uses the distribution's vectorized env (`dist.make_vec_env`, SAME_STEP autoreset,
    physics of the whole batch in one call) where it has one, else one `dist.make_env`
    per task. `reset(seed)` reseeds everything (goals, initial states, sensor noise), so
    two agents driven through the same sequence of `reset`/`step` calls meet the same
    tasks, initial states and noise. `step` returns the next observation (the first of a
    new episode where one ended), reward, terminated, truncated, the observation after the
    step before any auto-reset (`final_obs`) and a dict of per-env arrays (`tip_error`
    where the env reports one).
    """

    def __init__(self, dist: Any, tasks: list[Any], seed: int):
        self.dist = dist
        self.tasks = list(tasks)
        self.n = len(self.tasks)
        if getattr(dist, "oracle_dim", 0):
            feats = [np.asarray(dist.oracle_features(t), np.float32).reshape(-1) for t in tasks]
            self.privileged = np.stack(feats)
        else:
            self.privileged = np.zeros((self.n, 0), np.float32)
        self.vec = None
        self.envs: list[Any] = []
        if hasattr(dist, "make_vec_env"):
            self.vec = dist.make_vec_env(self.tasks, seed=int(seed))
            self.episode_steps = max_episode_steps(dist, self.vec)
        else:
            self.envs = [dist.make_env(t, seed=derive_seed(seed, i)) for i, t in enumerate(tasks)]
            self.episode_steps = max_episode_steps(dist, self.envs[0])
        self._seeds: list[int] = [0] * self.n
        self._resets: list[int] = [0] * self.n

    def reset(self, seed: int) -> np.ndarray:
        """Reset every env; everything random from here on derives from `seed`."""
        if self.vec is not None:
            obs, _ = self.vec.reset(seed=int(seed))
            return np.asarray(obs, np.float32)
        self._seeds = [derive_seed(seed, i) for i in range(self.n)]
        self._resets = [0] * self.n
        out = [env.reset(seed=s)[0] for env, s in zip(self.envs, self._seeds, strict=True)]
        return np.stack(out).astype(np.float32)

    def step(self, actions: np.ndarray):
        if self.vec is not None:
            obs, rew, term, trunc, info = self.vec.step(actions)
            obs = np.asarray(obs, np.float32)
            final = obs.copy()
            if "_final_obs" in info:
                mask = np.asarray(info["_final_obs"], bool)
                final[mask] = np.stack([info["final_obs"][i] for i in np.flatnonzero(mask)])
            extra = {"tip_error": np.asarray(info["tip_error"])} if "tip_error" in info else {}
            return (obs, np.asarray(rew, np.float32), np.asarray(term, bool),
                    np.asarray(trunc, bool), final, extra)
        obs, rew, term, trunc, final, tip = [], [], [], [], [], []
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
            tip.append(info.get("tip_error", np.nan))
        extra = {"tip_error": np.asarray(tip, float)} if not np.isnan(tip).all() else {}
        return (np.stack(obs), np.asarray(rew, np.float32), np.asarray(term, bool),
                np.asarray(trunc, bool), np.stack(final), extra)

    def close(self) -> None:
        if self.vec is not None:
            self.vec.close()
        for env in self.envs:
            env.close()
