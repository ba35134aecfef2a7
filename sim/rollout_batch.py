"""The shared core of the batched gym-robot envs: N randomized models stepped by mujoco.rollout.

Cart-pole, HalfCheetah and Ant differ only in observation, reset and reward; the state
template, the 2-thread rollout pool, task swaps and the physics call are the same, so they
live here once. (The arm batch in arm_env.py also reads sensors per substep and keeps its
own loop.)
"""

from __future__ import annotations

import mujoco
import mujoco.rollout
import numpy as np

from metabot.errors import TaskError

from .task import Task


class RolloutBatch:
    """N models of one distribution's robot, one per task, advanced together per control step.

    Subclasses implement `obs`, `reset` and `step`, calling `physics` for the substeps.
    """

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
        self.nq, self.nv, self.nu = m0.nq, m0.nv, m0.nu
        self.substeps = dist.substeps
        self.dt = m0.opt.timestep * self.substeps
        self.horizon = dist.spec.episode_steps
        self.spec_state = mujoco.mjtState.mjSTATE_FULLPHYSICS
        d = mujoco.MjData(m0)
        self.qpos0 = d.qpos.copy()
        self.template = np.empty(mujoco.mj_stateSize(m0, self.spec_state))
        mujoco.mj_getState(m0, d, self.template, self.spec_state)
        self.state = np.tile(self.template, (self.n, 1))
        self.out_state = np.empty((self.n, self.substeps, self.template.size))
        self.ctrl = np.empty((self.n, self.substeps, self.nu))
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

    def set_state(self, idx: np.ndarray, qpos: np.ndarray, qvel: np.ndarray) -> None:
        self.state[idx] = self.template
        self.state[idx, 1 : 1 + self.nq] = qpos
        self.state[idx, 1 + self.nq : 1 + self.nq + self.nv] = qvel

    def physics(self, ctrl: np.ndarray) -> None:
        """`substeps` physics steps of every env with ctrl[n, nu] held, in one rollout call."""
        self.ctrl[:] = ctrl[:, None, :]
        kw = dict(nstep=self.substeps, state=self.out_state, skip_checks=True)
        if self.pool is not None:
            self.pool.rollout(self.models, self.datas, self.state, self.ctrl, **kw)
        else:
            mujoco.rollout.rollout(self.models, self.datas[0], self.state, self.ctrl, **kw)
        self.state[:] = self.out_state[:, -1]
