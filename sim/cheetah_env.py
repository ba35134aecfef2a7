"""Batched HalfCheetah envs (cheetah-vel, cheetah-dir, cheetah-dyn) on mujoco.rollout.

gymnasium's HalfCheetah-v5 logic, re-expressed for a batch: obs = [qpos[1:], qvel] (17-d,
float64), x velocity = (x_after - x_before) / dt over frame_skip = 5 steps of 10 ms, reset
to qpos0 + U(-0.1, 0.1) and qvel ~ 0.1 N(0, 1). Rewards:

- cheetah-dyn: v_x - 0.1 |a|^2 (gymnasium's defaults)
- cheetah-vel: -|v_x - v_goal| - 0.05 |a|^2 (PEARL / VariBAD)
- cheetah-dir: dir * v_x - 0.05 |a|^2

Why not wrap gymnasium's env: per-env Python wrappers cost more than the physics of 5 cheetah
steps, and a process pool does not help on a 2-core machine shared with other jobs (measured:
2 workers were no faster than 1 under load). One rollout call per control step for the whole
batch runs in C on a 2-thread pool, as for the arms. `tests/test_tasks_envs.py` checks this
env against gymnasium's HalfCheetah-v5 with the same randomized model and initial state.
Differences: MuJoCo's solver warm start is not carried across control steps by rollout, so
contact-rich steps match gymnasium to ~1e-6, not bit for bit.
"""

from __future__ import annotations

import os

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np

from metabot.errors import TaskError

from .batchvec import BatchEnv, BatchVecEnv
from .task import Task

RESET_NOISE = 0.1


class CheetahBatch:
    """N HalfCheetahs (one randomized model each), stepped together."""

    def __init__(self, dist, tasks: list[Task], seed: int | None, nthread: int):
        if not tasks:
            raise TaskError("need at least one task")
        for t in tasks:
            if t.dist != dist.name:
                raise TaskError(f"task of {t.dist!r} given to {dist.name!r}")
        self._dist = dist
        self.kind = dist.reward_kind
        self.n = len(tasks)
        self.models = [dist.build_model(t) for t in tasks]
        m0 = self.models[0]
        self.nq, self.nv, self.nu = m0.nq, m0.nv, m0.nu
        self.frame_skip = dist.substeps
        self.dt = m0.opt.timestep * self.frame_skip
        self.horizon = dist.spec.episode_steps
        self.goal = np.array([t.goal[0] if t.goal else 0.0 for t in tasks])
        self.spec_state = mujoco.mjtState.mjSTATE_FULLPHYSICS
        d = mujoco.MjData(m0)
        self.qpos0 = d.qpos.copy()
        self.template = np.empty(mujoco.mj_stateSize(m0, self.spec_state))
        mujoco.mj_getState(m0, d, self.template, self.spec_state)
        self.state = np.tile(self.template, (self.n, 1))
        self.out_state = np.empty((self.n, self.frame_skip, self.template.size))
        self.ctrl = np.empty((self.n, self.frame_skip, self.nu))
        self.pool = mujoco.rollout.Rollout(nthread=nthread) if nthread > 1 else None
        self.datas = [mujoco.MjData(m0) for _ in range(max(nthread, 1))]
        self.t = np.zeros(self.n, dtype=np.int64)
        self.rng = np.random.default_rng(seed)

    def set_tasks(self, tasks: list[Task]) -> None:
        """New dynamics (and goals) from the next step on; the physical state is kept."""
        if len(tasks) != self.n:
            raise TaskError(f"set_tasks needs {self.n} tasks")
        self.models = [self._dist.build_model(t) for t in tasks]
        self.goal = np.array([t.goal[0] if t.goal else 0.0 for t in tasks])

    def seed(self, seed) -> None:
        self.rng = np.random.default_rng(seed)

    def obs(self, idx=slice(None)) -> np.ndarray:
        s = self.state[idx]
        return np.concatenate([s[:, 2 : 1 + self.nq], s[:, 1 + self.nq : 1 + self.nq + self.nv]], 1)

    def set_state(self, idx: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.state[idx] = self.template
        self.state[idx, 1 : 1 + self.nq] = qpos
        self.state[idx, 1 + self.nq : 1 + self.nq + self.nv] = qvel

    def reset(self, mask: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(mask)
        k = len(idx)
        qpos = self.qpos0 + self.rng.uniform(-RESET_NOISE, RESET_NOISE, (k, self.nq))
        qvel = RESET_NOISE * self.rng.standard_normal((k, self.nv))
        self.set_state(idx, qpos, qvel)
        self.t[idx] = 0
        return self.obs(idx)

    def step(self, actions: np.ndarray):
        a = np.asarray(actions, dtype=np.float64).reshape(self.n, self.nu)
        self.ctrl[:] = a[:, None, :]
        x_before = self.state[:, 1].copy()
        kw = dict(nstep=self.frame_skip, state=self.out_state, skip_checks=True)
        if self.pool is not None:
            self.pool.rollout(self.models, self.datas, self.state, self.ctrl, **kw)
        else:
            mujoco.rollout.rollout(self.models, self.datas[0], self.state, self.ctrl, **kw)
        self.state[:] = self.out_state[:, -1]
        vx = (self.state[:, 1] - x_before) / self.dt
        act2 = np.sum(a * a, axis=1)
        if self.kind == "vel":
            rew = -np.abs(vx - self.goal) - 0.05 * act2
        elif self.kind == "dir":
            rew = self.goal * vx - 0.05 * act2
        else:
            rew = vx - 0.1 * act2
        self.t += 1
        term = np.zeros(self.n, dtype=bool)
        return self.obs(), rew, term, self.t >= self.horizon, {"x_velocity": vx}


def _spaces(nu: int, obs_dim: int):
    obs = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float64)
    act = gym.spaces.Box(-1.0, 1.0, shape=(nu,), dtype=np.float32)
    return obs, act


def make_env(dist, task: Task, seed: int | None = None) -> BatchEnv:
    batch = CheetahBatch(dist, [task], seed, nthread=0)
    return BatchEnv(batch, *_spaces(batch.nu, dist.obs_dim))


def make_vec_env(dist, tasks: list[Task], seed: int | None = None) -> BatchVecEnv:
    batch = CheetahBatch(dist, list(tasks), seed, nthread=min(2, os.cpu_count() or 1))
    return BatchVecEnv(batch, *_spaces(batch.nu, dist.obs_dim))
