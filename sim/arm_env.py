"""Arm reaching distributions (arm2d-reach, arm6-reach): spec-defined, batched, servo-realistic.

One `ArmBatch` simulates N arms (one randomized MjModel each) at the control rate:

  action in [-1,1]^n --arm.action_to_target (absolute, or a step from the last target)-->
  joint targets --delay line (the task's latency, in control steps)-->
  sub-step command delay (the new target acts `command_delay` s into the step)-->
  servo dead band (backlash) on the encoder reading --> position actuators (kp, kv, stall
  torque) --10 x 2 ms physics--> encoder quantization + noise --arm.observe--> obs

Physics for the whole batch runs in ONE `mujoco.rollout` call per control step (the substeps of
that step, control held constant as a servo does between bus writes), on a persistent 2-thread
pool; everything at control rate (delay, dead band, noise, quantization, FK, reward) is
vectorized numpy over the batch. Measured on arm6-reach (bench/sim.json, docs/tasks.md): a
rollout call runs faster than a Python mj_step loop even on one thread and ~1.8x on two, and
the whole env beats gymnasium's SyncVectorEnv ~9x. Two worker processes (the other design) were
not built for arms: each would still need this batched numpy path, plus a pipe round trip per
step, to do the same physics. The single env
(`make_env`) is the same ArmBatch with N=1 and no thread pool, so both share one code path.

Episodes: `episode_steps` control steps (100 = 2 s), truncation only (no termination). The
goal is redrawn at every reset from the env's seeded rng: a reachable point (FK of a random
joint configuration around home, above the table); the Task fixes the dynamics, not the goal.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from xml.etree.ElementTree import ParseError as ET_ParseError

import gymnasium as gym
import mujoco
import mujoco.rollout
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from metabot.errors import ConfigError, TaskError

from . import arm as armlib
from .randomize import ModelRandomizer
from .spec import DistSpec, load_spec
from .task import SpecSampler, Task

GOAL_SPREAD = armlib.GOAL_SPREAD  # goal region: defined (numpy-only) in metabot.sim.arm
GOAL_MIN_Z = armlib.GOAL_MIN_Z
GOAL_MIN_RADIUS = armlib.GOAL_MIN_RADIUS
INIT_NOISE = 0.02  # rad of initial joint perturbation about home
VEL_NOISE_PER_RAD = 25.0  # velocity noise std per rad of position noise (rad/s)
EFFORT_NOISE_PER_RAD = 10.0  # effort noise std (fraction of stall) per rad of position noise


def _param_values(spec: DistSpec, tasks: list[Task], target: str, default: float) -> np.ndarray:
    p = next((q for q in spec.params if q.target == target), None)
    if p is None:
        return np.full(len(tasks), default)
    return np.array([t.value(p.name) for t in tasks])


class ArmBatch:
    """N randomized arms stepped together at the control rate (see module docstring)."""

    def __init__(
        self, dist: ArmReachDistribution, tasks: list[Task], seed: int | None, nthread: int
    ):
        if not tasks:
            raise TaskError("need at least one task")
        for t in tasks:
            if t.dist != dist.name:
                raise TaskError(f"task of {t.dist!r} given to {dist.name!r}")
        self.dist, self.desc, spec = dist, dist.arm, dist.spec
        self.n = len(tasks)
        self._set_task_arrays(tasks)
        m0 = self.models[0]
        self.nq, self.nv, self.nu = m0.nq, m0.nv, m0.nu
        self.substeps = spec.substeps
        self.horizon = spec.episode_steps
        self.resolution = 2 * np.pi / spec.encoder_counts if spec.encoder_counts else 0.0
        self.qadr = np.array([m0.jnt_qposadr[m0.actuator_trnid[i, 0]] for i in range(self.nu)])
        self.vadr = np.array([m0.jnt_dofadr[m0.actuator_trnid[i, 0]] for i in range(self.nu)])
        frc = [
            m0.sensor_adr[s] for a in range(self.nu) for s in range(m0.nsensor)
            if m0.sensor_type[s] == mujoco.mjtSensor.mjSENS_ACTUATORFRC and m0.sensor_objid[s] == a
        ]  # fmt: skip
        if len(frc) != self.nu:
            raise ConfigError(
                f"{spec.model}: need one actuatorfrc sensor per actuator (the servo's load)"
            )
        self.frc_adr = np.array(frc)
        # rollout state layout (mjSTATE_FULLPHYSICS): [time, qpos, qvel, act, ...]
        self.spec_state = mujoco.mjtState.mjSTATE_FULLPHYSICS
        d = mujoco.MjData(m0)
        key = mujoco.mj_name2id(m0, mujoco.mjtObj.mjOBJ_KEY, "home")
        if key >= 0:
            mujoco.mj_resetDataKeyframe(m0, d, key)
        self.template = np.empty(mujoco.mj_stateSize(m0, self.spec_state))
        mujoco.mj_getState(m0, d, self.template, self.spec_state)
        self.state = np.tile(self.template, (self.n, 1))
        self.out_state = np.empty((self.n, self.substeps, self.template.size))
        self.out_sens = np.empty((self.n, self.substeps, m0.nsensordata))
        self.ctrl = np.empty((self.n, self.substeps, self.nu))
        self.nthread = nthread
        self.pool = mujoco.rollout.Rollout(nthread=nthread) if nthread > 1 else None
        self.datas = [mujoco.MjData(m0) for _ in range(max(nthread, 1))]
        self.home = np.asarray(self.desc.home)
        # sent targets, newest first: the delay line, and the observation's command history
        self.hist = np.empty((self.n, self._hist_width(), self.nu))
        self.goal = np.zeros((self.n, 3))
        self.prev_action = np.zeros((self.n, self.nu))
        self.prev_cmd = np.tile(self.home, (self.n, 1))  # the servo command acting now
        self.q = np.zeros((self.n, self.nu))
        self.qd = np.zeros((self.n, self.nu))
        self.effort = np.zeros((self.n, self.nu))
        self.t = np.zeros(self.n, dtype=np.int64)
        self.err_sum = np.zeros(self.n)
        self.rng = np.random.default_rng(seed)

    def _set_task_arrays(self, tasks: list[Task]) -> None:
        spec = self.dist.spec
        self.tasks = list(tasks)
        self.models = [self.dist.build_model(t) for t in tasks]
        self.delay = _param_values(spec, tasks, "action_delay", 0).astype(np.int64)
        self.noise = _param_values(spec, tasks, "obs_noise", 0.0)[:, None]
        self.deadband = _param_values(spec, tasks, "deadband", 0.0)[:, None]
        # Physics substeps into a control step before a new command acts: a real link's
        # transport and the host's compute, a fraction of a control step (whole steps are
        # action_delay). The previous command holds until then.
        sub = np.rint(_param_values(spec, tasks, "command_delay", 0.0) / spec.physics_dt)
        self.cmd_delay = np.clip(sub, 0, spec.substeps - 1).astype(np.int64)
        self.kp = np.stack([m.actuator_gainprm[:, 0] for m in self.models])
        self.stall = np.stack([m.actuator_forcerange[:, 1] for m in self.models])

    def set_tasks(self, tasks: list[Task]) -> None:
        """Swap every env's dynamics mid-episode, keeping the physical state, goal and time
        (a payload grabbed or a servo overheating while the arm moves)."""
        if len(tasks) != self.n or any(t.dist != self.dist.name for t in tasks):
            raise TaskError(f"set_tasks needs {self.n} tasks of {self.dist.name!r}")
        self._set_task_arrays(tasks)
        width = self._hist_width()
        if self.hist.shape[1] < width:  # longer latency: older commands repeat the oldest
            pad = np.repeat(self.hist[:, -1:], width - self.hist.shape[1], axis=1)
            self.hist = np.concatenate([self.hist, pad], axis=1)

    # -- helpers -------------------------------------------------------------------------
    def _hist_width(self) -> int:
        return max(int(self.delay.max()) + 1, self.desc.command_history)

    def seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def _encoder(self, q: np.ndarray) -> np.ndarray:
        if self.resolution:
            return np.round(q / self.resolution) * self.resolution
        return q

    def _sample_goals(self, k: int) -> np.ndarray:
        return armlib.sample_goals(self.desc, self.rng, k)

    def observe(self, idx: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Measured (noisy, quantized) joint state -> arm.observe, for envs idx."""
        q, qd, eff = self.q[idx], self.qd[idx], self.effort[idx]
        noise = self.noise[idx]
        z = self.rng.standard_normal((3, *q.shape))
        q_meas = self._encoder(q + noise * z[0])
        qd_meas = qd + VEL_NOISE_PER_RAD * noise * z[1]
        eff_meas = eff + EFFORT_NOISE_PER_RAD * noise * self.stall[idx] * z[2]
        return armlib.observe(self.desc, q_meas, qd_meas, eff_meas, self.goal[idx],
                              self.hist[idx])

    # -- episode control -----------------------------------------------------------------
    def reset(self, mask: np.ndarray) -> np.ndarray:
        """Reset the envs in mask (bool, N) and return their observations."""
        idx = np.flatnonzero(mask)
        k = len(idx)
        if k == 0:
            return np.empty((0, self.desc.obs_dim), dtype=np.float32)
        q0 = self.home + self.rng.uniform(-INIT_NOISE, INIT_NOISE, size=(k, self.nu))
        q0 = np.clip(q0, self.desc.lower, self.desc.upper)
        self.state[idx] = self.template
        self.state[np.ix_(idx, 1 + self.qadr)] = q0
        self.state[np.ix_(idx, 1 + self.nq + self.vadr)] = 0.0
        self.goal[idx] = self._sample_goals(k)
        self.hist[idx] = self.home
        self.prev_action[idx] = 0.0
        self.prev_cmd[idx] = self.home
        self.q[idx], self.qd[idx] = q0, 0.0
        # the servo starts pushing toward home at once: kp (home - q), clipped to stall
        self.effort[idx] = np.clip(
            self.kp[idx] * (self.home - q0), -self.stall[idx], self.stall[idx]
        )
        self.t[idx] = 0
        self.err_sum[idx] = 0.0
        return self.observe(idx)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One control step for all envs: (obs, reward, truncated, tip_error); no autoreset."""
        a = np.clip(np.asarray(actions, dtype=np.float64).reshape(self.n, self.nu), -1.0, 1.0)
        target = armlib.action_to_target(self.desc, a, self.hist[:, 0])
        self.hist[:, 1:] = self.hist[:, :-1]
        self.hist[:, 0] = target
        applied = self.hist[np.arange(self.n), self.delay]
        # servo dead band: the servo ignores the first `deadband` rad of position error
        err = applied - self._encoder(self.q)
        cmd = applied - np.sign(err) * np.minimum(np.abs(err), self.deadband)
        if self.cmd_delay.any():
            late = np.arange(self.substeps)[None, :] < self.cmd_delay[:, None]  # [N, substeps]
            self.ctrl[:] = np.where(late[:, :, None], self.prev_cmd[:, None, :], cmd[:, None, :])
        else:
            self.ctrl[:] = cmd[:, None, :]
        self.prev_cmd = cmd
        kw = dict(
            control_spec=mujoco.mjtState.mjSTATE_CTRL,
            nstep=self.substeps,
            state=self.out_state,
            sensordata=self.out_sens,
            skip_checks=True,
        )
        if self.pool is not None:
            self.pool.rollout(self.models, self.datas, self.state, self.ctrl, **kw)
        else:
            mujoco.rollout.rollout(self.models, self.datas[0], self.state, self.ctrl, **kw)
        self.state[:] = self.out_state[:, -1]
        self.q = self.state[:, 1 + self.qadr]
        self.qd = self.state[:, 1 + self.nq + self.vadr]
        self.effort = self.out_sens[:, -1, self.frc_adr]
        tip_err = armlib.tip_error(self.desc, self.q, self.goal)
        rew = armlib.reward_from_error(tip_err, a, self.prev_action)
        self.prev_action = a
        self.t += 1
        self.err_sum += tip_err
        obs = self.observe()
        return obs, rew, self.t >= self.horizon, tip_err


def _spaces(desc: armlib.ArmDescription) -> tuple[gym.spaces.Box, gym.spaces.Box]:
    obs = gym.spaces.Box(-np.inf, np.inf, shape=(desc.obs_dim,), dtype=np.float32)
    act = gym.spaces.Box(-1.0, 1.0, shape=(desc.n_joints,), dtype=np.float32)
    return obs, act


class ArmReachEnv(gym.Env):
    """One arm, one task (gymnasium.Env); truncates after episode_steps, never terminates."""

    metadata = {"render_modes": []}

    def __init__(self, dist: ArmReachDistribution, task: Task, seed: int | None = None):
        self.batch = ArmBatch(dist, [task], seed, nthread=0)
        self.task = task
        self.observation_space, self.action_space = _spaces(dist.arm)
        self.dt = dist.dt
        self._seed = seed

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.batch.seed(seed)
        obs = self.batch.reset(np.ones(1, dtype=bool))[0]
        return obs, {"goal": self.batch.goal[0].copy()}

    def set_task(self, task: Task) -> None:
        """New dynamics from the next step on, state kept."""
        self.batch.set_tasks([task])
        self.task = task

    def step(self, action):
        obs, rew, trunc, err = self.batch.step(np.asarray(action)[None])
        info = {"tip_error": float(err[0]), "goal": self.batch.goal[0].copy()}
        if trunc[0]:
            info["episode_tip_error"] = float(self.batch.err_sum[0] / self.batch.t[0])
        return obs[0], float(rew[0]), False, bool(trunc[0]), info


class ArmReachVecEnv(VectorEnv):
    """N arms, one task each, physics on a 2-thread mujoco.rollout pool.

    Autoreset: SAME_STEP (gymnasium AutoresetMode.SAME_STEP). When an episode ends at step t,
    `step` returns truncated=True, the reward of that last step and ALREADY the first
    observation of the next episode; the last observation of the finished episode is in
    info["final_obs"][i] (float array (N, obs_dim), valid where info["_final_obs"][i]), and
    info["episode_tip_error"][i] is that episode's mean tip error (m). info["tip_error"] (N,)
    is every step's tip error from FK of the true joint positions.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, dist: ArmReachDistribution, tasks: list[Task], seed: int | None = None,
                 nthread: int | None = None):  # fmt: skip
        nthread = min(2, os.cpu_count() or 1) if nthread is None else nthread
        self.batch = ArmBatch(dist, list(tasks), seed, nthread=nthread)
        self.tasks = list(tasks)
        self.num_envs = len(tasks)
        self.single_observation_space, self.single_action_space = _spaces(dist.arm)
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.dt = dist.dt
        self.render_mode = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.batch.seed(seed)
        obs = self.batch.reset(np.ones(self.num_envs, dtype=bool))
        return obs, {}

    def step(self, actions):
        obs, rew, trunc, err = self.batch.step(actions)
        info: dict = {"tip_error": err}
        if trunc.any():
            info["final_obs"] = obs.copy()
            info["_final_obs"] = trunc.copy()
            info["episode_tip_error"] = np.where(
                trunc, self.batch.err_sum / np.maximum(self.batch.t, 1), 0.0
            )
            info["_episode_tip_error"] = trunc.copy()
            obs[trunc] = self.batch.reset(trunc)
        term = np.zeros(self.num_envs, dtype=bool)
        return obs, rew.astype(np.float64), term, trunc.copy(), info

    def set_tasks(self, tasks: list[Task]) -> None:
        """New dynamics for every sub-env, effective from the next step (state kept)."""
        self.batch.set_tasks(list(tasks))
        self.tasks = list(tasks)

    def close_extras(self, **kwargs) -> None:
        if self.batch.pool is not None:
            self.batch.pool.close()
            self.batch.pool = None


class ArmReachDistribution:
    """A reaching distribution defined by an arm MJCF plus a TOML randomization spec."""

    kind = "arm"

    def __init__(self, spec_path: str | Path):
        self.spec = load_spec(spec_path)
        self.name = self.spec.name
        if self.spec.physics_dt > 0.002 + 1e-12:
            raise ConfigError(
                f"{self.spec.path}: distribution.physics_dt must be <= 0.002 s for an arm "
                f"(servo dynamics), got {self.spec.physics_dt}"
            )
        try:
            self.arm = dataclasses.replace(
                armlib.ArmDescription.from_mjcf(self.spec.model),
                action_step=self.spec.action_step,
                command_history=self.spec.command_history,
                observe_effort=self.spec.observe_effort,
            )
            nominal = mujoco.MjModel.from_xml_path(self.spec.model)
        except (ValueError, ET_ParseError) as exc:
            raise ConfigError(f"{self.spec.model}: {exc}") from None
        nominal.opt.timestep = self.spec.physics_dt
        for i in range(nominal.nu):
            if nominal.actuator_biasprm[i, 1] != -nominal.actuator_gainprm[i, 0]:
                raise ConfigError(f"{self.spec.model}: actuator {i} is not a position actuator")
        self._rand = ModelRandomizer(self.spec, nominal)
        kp = next((p for p in self.spec.params if p.target == "actuator_kp"), None)
        weak = None
        if kp is not None and kp.per == "each":
            ids = self._rand.elements[kp.name]
            # the weak servo of the `fault` split is one that moves the tool (FK Jacobian at
            # home is non-zero): a weak wrist roll or gripper would be no fault at all
            home = np.asarray(self.arm.home)
            tip0 = armlib.forward_kinematics(self.arm, home)
            moves = [
                j
                for j in range(self.arm.n_joints)
                if np.linalg.norm(
                    armlib.forward_kinematics(self.arm, home + 1e-3 * np.eye(len(home))[j]) - tip0
                )
                > 1e-6
            ]
            weak = [ids.index(a) for a in moves if a in ids] or None
        self._sampler = SpecSampler(self.spec, self._rand.counts(), fault_weak=weak)

    # -- the TaskDistribution contract ----------------------------------------------------
    @property
    def dt(self) -> float:
        return self.spec.control_dt

    @property
    def substeps(self) -> int:
        return self.spec.substeps

    @property
    def obs_dim(self) -> int:
        return self.arm.obs_dim

    @property
    def act_dim(self) -> int:
        return self.arm.n_joints

    @property
    def oracle_dim(self) -> int:
        return self._sampler.oracle_dim

    @property
    def oracle_names(self) -> list[str]:
        return self._sampler.oracle_names

    @property
    def robot(self) -> str:
        return self.spec.robot

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def action_type(self) -> str:
        return "continuous"

    def sample(self, n: int, *, split: str = "train", seed: int = 0) -> list[Task]:
        return self._sampler.sample(n, split, seed)

    def oracle_features(self, task: Task) -> np.ndarray:
        return self._sampler.oracle_features(task)

    def ranges(self) -> dict:
        return {
            "control_dt": self.spec.control_dt,
            "physics_dt": self.spec.physics_dt,
            "episode_steps": self.spec.episode_steps,
            "encoder_counts": self.spec.encoder_counts,
            "params": self._sampler.ranges(),
        }

    def build_model(self, task: Task) -> mujoco.MjModel:
        """The randomized MjModel of a task.

        Actuators stay position actuators: kp in gainprm[0] and -kp in biasprm[1].
        """
        self._sampler.validate(task)
        return self._rand.build(task)

    def make_env(self, task: Task, seed: int | None = None) -> ArmReachEnv:
        return ArmReachEnv(self, task, seed)

    def make_vec_env(self, tasks: list[Task], seed: int | None = None) -> ArmReachVecEnv:
        return ArmReachVecEnv(self, tasks, seed)
