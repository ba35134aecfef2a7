"""Batched cart-pole (cartpole-dyn) on mujoco.rollout: discrete push left/right.

Same physics and rules as `gym_tasks.CartPoleEnv` (the per-env reference the tests compare
against): action 0 pushes -10 N, 1 pushes +10 N for 10 x 2 ms; obs [x, theta, x_dot,
theta_dot] (float32); +1 per step; terminated at |theta| > 12 deg or |x| > 2.4 m.
"""

from __future__ import annotations

import math
import os

import gymnasium as gym
import numpy as np

from .batchvec import BatchEnv, BatchVecEnv
from .rollout_batch import RolloutBatch
from .task import Task

THETA_LIMIT = 12 * math.pi / 180
X_LIMIT = 2.4
INIT_NOISE = 0.05


class CartPoleBatch(RolloutBatch):
    """N cart-poles (one randomized model each), stepped together."""

    def obs(self, idx=slice(None)) -> np.ndarray:
        return self.state[idx, 1:5].astype(np.float32)  # qpos (x, theta), qvel (x_dot, theta_dot)

    def reset(self, mask: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(mask)
        qpos = self.rng.uniform(-INIT_NOISE, INIT_NOISE, (len(idx), 2))
        qvel = self.rng.uniform(-INIT_NOISE, INIT_NOISE, (len(idx), 2))
        self.set_state(idx, qpos, qvel)
        self.t[idx] = 0
        return self.obs(idx)

    def step(self, actions: np.ndarray):
        a = np.asarray(actions).reshape(self.n)
        self.physics(np.where(a == 1, 1.0, -1.0)[:, None])
        self.t += 1
        obs = self.obs()
        term = (np.abs(obs[:, 1]) > THETA_LIMIT) | (np.abs(obs[:, 0]) > X_LIMIT)
        trunc = (self.t >= self.horizon) & ~term
        return obs, np.ones(self.n), term, trunc, {}


def _spaces():
    return gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32), gym.spaces.Discrete(2)


def make_env(dist, task: Task, seed: int | None = None) -> BatchEnv:
    return BatchEnv(CartPoleBatch(dist, [task], seed, nthread=0), *_spaces())


def make_vec_env(dist, tasks: list[Task], seed: int | None = None) -> BatchVecEnv:
    batch = CartPoleBatch(dist, list(tasks), seed, nthread=min(2, os.cpu_count() or 1))
    return BatchVecEnv(batch, *_spaces())
