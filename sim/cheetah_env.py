"""Batched HalfCheetah envs (cheetah-vel, cheetah-dir, cheetah-dyn) and Ant (ant-dir) on
mujoco.rollout.

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
import numpy as np

from .batchvec import BatchEnv, BatchVecEnv
from .rollout_batch import RolloutBatch
from .task import Task

RESET_NOISE = 0.1


class CheetahBatch(RolloutBatch):
    """N HalfCheetahs (one randomized model each), stepped together."""

    OBS_SKIP = 1  # leading qpos entries left out of the obs (x: position-invariant policy)

    def __init__(self, dist, tasks: list[Task], seed: int | None, nthread: int):
        super().__init__(dist, tasks, seed, nthread)
        self.kind = dist.reward_kind
        self.goal = np.array([t.goal[0] if t.goal else 0.0 for t in tasks])

    def set_tasks(self, tasks: list[Task]) -> None:
        """New dynamics (and goals) from the next step on; the physical state is kept."""
        super().set_tasks(tasks)
        self.goal = np.array([t.goal[0] if t.goal else 0.0 for t in tasks])

    def obs(self, idx=slice(None)) -> np.ndarray:
        s = self.state[idx]
        q0 = 1 + self.OBS_SKIP
        return np.concatenate(
            [s[:, q0 : 1 + self.nq], s[:, 1 + self.nq : 1 + self.nq + self.nv]], 1
        )

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
        x_before = self.state[:, 1].copy()
        self.physics(a)
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


class AntBatch(CheetahBatch):
    """Ant-v5 (no contact forces in the obs) for ant-dir: obs [qpos[2:], qvel] (27-d).

    Reward = v_xy . (cos th, sin th) + 1 (healthy) - 0.5 |a|^2; terminated when the torso
    height leaves [0.2, 1.0] m or the state is not finite (gymnasium's rule). gymnasium's
    contact cost (5e-4 * sum of clipped contact forces^2, at most 0.04 per step) is left out:
    rollout does not return contact forces. The velocity is the torso's qpos change over the
    control step; gymnasium reads the body xpos left by mj_step instead, which differs by a
    fraction of a substep, so per-step rewards differ by ~0.02 while observations match.
    """

    OBS_SKIP = 2

    def step(self, actions: np.ndarray):
        a = np.asarray(actions, dtype=np.float64).reshape(self.n, self.nu)
        xy_before = self.state[:, 1:3].copy()
        self.physics(a)
        v = (self.state[:, 1:3] - xy_before) / self.dt
        z = self.state[:, 3]
        healthy = np.isfinite(self.state).all(axis=1) & (z >= 0.2) & (z <= 1.0)
        forward = np.cos(self.goal) * v[:, 0] + np.sin(self.goal) * v[:, 1]
        rew = forward + healthy.astype(np.float64) - 0.5 * np.sum(a * a, axis=1)
        self.t += 1
        term = ~healthy
        trunc = (self.t >= self.horizon) & ~term
        return self.obs(), rew, term, trunc, {"x_velocity": v[:, 0], "y_velocity": v[:, 1]}


def _spaces(nu: int, obs_dim: int):
    obs = gym.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float64)
    act = gym.spaces.Box(-1.0, 1.0, shape=(nu,), dtype=np.float32)
    return obs, act


def _batch_cls(dist):
    return AntBatch if dist.reward_kind == "ant-dir" else CheetahBatch


def make_env(dist, task: Task, seed: int | None = None) -> BatchEnv:
    batch = _batch_cls(dist)(dist, [task], seed, nthread=0)
    return BatchEnv(batch, *_spaces(batch.nu, dist.obs_dim))


def make_vec_env(dist, tasks: list[Task], seed: int | None = None) -> BatchVecEnv:
    batch = _batch_cls(dist)(dist, list(tasks), seed, nthread=min(2, os.cpu_count() or 1))
    return BatchVecEnv(batch, *_spaces(batch.nu, dist.obs_dim))
