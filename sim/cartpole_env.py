"""Batched cart-pole (cartpole-dyn) on mujoco.rollout: discrete push left/right.

Same physics and rules as `gym_tasks.CartPoleEnv` (the per-env reference the tests compare
against): action 0 pushes -10 N, 1 pushes +10 N for 10 x 2 ms; obs [x, theta, x_dot,
theta_dot] (float32); +1 per step; terminated at |theta| > 12 deg or |x| > 2.4 m.
"""

from __future__ import annotations

import math
import os

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np

from metabot.errors import TaskError

from .batchvec import BatchEnv, BatchVecEnv
from .task import Task

THETA_LIMIT = 12 * math.pi / 180
X_LIMIT = 2.4
INIT_NOISE = 0.05


class CartPoleBatch:
    def __init__(self, dist, tasks: list[Task], seed: int | None, nthread: int):
        if not tasks:
            raise TaskError("need at least one task")
        for t in tasks:
            if t.dist != dist.name:
                raise TaskError(f"task of {t.dist!r} given to {dist.name!r}")
        self._dist = dist
        self.n = len(tasks)
        self.models = [dist.build_model(t) for t in tasks]
        m0 = self.models[0]
        self.substeps = dist.substeps
        self.dt = m0.opt.timestep * self.substeps
        self.horizon = dist.spec.episode_steps
        self.spec_state = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self.template = np.empty(mujoco.mj_stateSize(m0, self.spec_state))
        mujoco.mj_getState(m0, mujoco.MjData(m0), self.template, self.spec_state)
        self.state = np.tile(self.template, (self.n, 1))
        self.out_state = np.empty((self.n, self.substeps, self.template.size))
        self.ctrl = np.empty((self.n, self.substeps, 1))
        self.pool = mujoco.rollout.Rollout(nthread=nthread) if nthread > 1 else None
        self.datas = [mujoco.MjData(m0) for _ in range(max(nthread, 1))]
        self.t = np.zeros(self.n, dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    def set_tasks(self, tasks: list[Task]) -> None:
        """New dynamics from the next step on; the physical state is kept."""
        if len(tasks) != self.n:
            raise TaskError(f"set_tasks needs {self.n} tasks")
        self.models = [self._dist.build_model(t) for t in tasks]

    def seed(self, seed) -> None:
        self.rng = np.random.default_rng(seed)

    def obs(self, idx=slice(None)) -> np.ndarray:
        return self.state[idx, 1:5].astype(np.float32)  # qpos (x, theta), qvel (x_dot, theta_dot)

    def set_state(self, idx: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.state[idx] = self.template
        self.state[idx, 1:3] = qpos
        self.state[idx, 3:5] = qvel

    def reset(self, mask: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(mask)
        qpos = self.rng.uniform(-INIT_NOISE, INIT_NOISE, (len(idx), 2))
        qvel = self.rng.uniform(-INIT_NOISE, INIT_NOISE, (len(idx), 2))
        self.set_state(idx, qpos, qvel)
        self.t[idx] = 0
        return self.obs(idx)

    def step(self, actions: np.ndarray):
        a = np.asarray(actions).reshape(self.n)
        self.ctrl[:] = np.where(a == 1, 1.0, -1.0)[:, None, None]
        kw = dict(nstep=self.substeps, state=self.out_state, skip_checks=True)
        if self.pool is not None:
            self.pool.rollout(self.models, self.datas, self.state, self.ctrl, **kw)
        else:
            mujoco.rollout.rollout(self.models, self.datas[0], self.state, self.ctrl, **kw)
        self.state[:] = self.out_state[:, -1]
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
