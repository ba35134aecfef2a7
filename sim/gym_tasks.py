"""Distributions on gymnasium / gymnasium-robotics robots and our own cart-pole.

Each is a TOML spec (sim/*.toml) plus a few lines here: which base env to build, how the
task's goal enters the reward, and (cart-pole) the parameters that rewrite geometry. The
randomized dynamics are written into the env's own MjModel once, at construction, so a
sub-env is one task for its whole life. Goal tasks (cheetah-vel/dir, ant-dir) do NOT put the
goal in the observation: inferring it is the meta-learning problem (as in PEARL / VariBAD).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np

from metabot.errors import ConfigError, TaskError

from .procvec import ProcVectorEnv
from .randomize import ModelRandomizer
from .spec import load_spec
from .task import SpecSampler, Task

HERE = Path(__file__).resolve().parent


def _register_robotics() -> None:
    """Register gymnasium-robotics envs, silencing the Adroit notice it prints on import."""
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)


class TaskEnv(gym.Wrapper):
    """One task on a base env: dynamics written into the model, delay/scale, goal reward.

    Truncates after `episode_steps` (the base env's TimeLimit is set to that). The first
    `reset()` without a seed uses the seed given at construction, so make_env(task, seed)
    is reproducible.
    """

    def __init__(self, dist: GymDistribution, task: Task, seed: int | None):
        dist._sampler.validate(task)
        env = dist._make_base()
        super().__init__(env)
        self.dist, self.task = dist, task
        model = env.unwrapped.model
        dist._rand.apply(model, task)
        if dist._custom is not None:
            dist._custom(model, task)
        self._delay = int(dist._value(task, "action_delay", 0))
        self._scale = float(dist._value(task, "action_scale", 1.0))
        self._goal = task.goal
        self._seed = seed
        self._hist: list[np.ndarray] = []

    @property
    def spec(self):
        """None: a TaskEnv is rebuilt through its distribution, not from a registry id."""
        return None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._seed is not None:
            seed, self._seed = self._seed, None
        obs, info = self.env.reset(seed=seed, options=options)
        self._hist = []
        return obs, info

    def step(self, action):
        if isinstance(self.action_space, gym.spaces.Box):
            action = np.asarray(action, dtype=self.action_space.dtype) * self._scale
            action = np.clip(action, self.action_space.low, self.action_space.high)
            if self._delay:
                self._hist.append(action)
                if len(self._hist) <= self._delay:
                    action = np.zeros_like(action)  # nothing has arrived yet: hold still
                else:
                    action = self._hist.pop(0)
        obs, rew, term, trunc, info = self.env.step(action)
        if self.dist._reward is not None:
            rew = self.dist._reward(info, self._goal, rew)
        return obs, float(rew), term, trunc, info


class GymDistribution:
    """A spec-defined distribution on a gymnasium base env."""

    kind = "gym"

    def __init__(
        self,
        spec_file: str,
        make_base: Callable[[int], gym.Env],
        *,
        reward: Callable[[dict, tuple | None, float], float] | None = None,
        goal: Callable[[Task], tuple[float, ...]] | None = None,
        custom: Callable[[mujoco.MjModel, Task], None] | None = None,
        action_type: str = "continuous",
    ):
        self.spec = load_spec(HERE / spec_file)
        self.name = self.spec.name
        self._make_base_fn = make_base
        self._reward, self._goal_fn, self._custom = reward, goal, custom
        self.action_type = action_type
        proto = self._make_base()
        dt = float(proto.unwrapped.dt)
        if not math.isclose(dt, self.spec.control_dt, rel_tol=1e-6):
            raise ConfigError(f"{self.spec.path}: control_dt {self.spec.control_dt} != env dt {dt}")
        self._nominal = copy.copy(proto.unwrapped.model)
        self._rand = ModelRandomizer(self.spec, self._nominal)
        self._sampler = SpecSampler(self.spec, self._rand.counts())
        self.obs_dim = int(np.prod(proto.observation_space.shape))
        space = proto.action_space
        self.act_dim = (
            int(space.n) if isinstance(space, gym.spaces.Discrete) else int(space.shape[0])
        )
        proto.close()

    def _make_base(self) -> gym.Env:
        return self._make_base_fn(self.spec.episode_steps)

    def _value(self, task: Task, target: str, default: float) -> float:
        p = next((q for q in self.spec.params if q.target == target), None)
        return default if p is None else task.value(p.name)

    # -- the TaskDistribution contract ----------------------------------------------------
    @property
    def dt(self) -> float:
        return self.spec.control_dt

    @property
    def substeps(self) -> int:
        return self.spec.substeps

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

    def sample(self, n: int, *, split: str = "train", seed: int = 0) -> list[Task]:
        tasks = self._sampler.sample(n, split, seed)
        if self._goal_fn is not None:
            tasks = [dataclasses.replace(t, goal=self._goal_fn(t)) for t in tasks]
        return tasks

    def oracle_features(self, task: Task) -> np.ndarray:
        return self._sampler.oracle_features(task)

    def ranges(self) -> dict:
        return {
            "control_dt": self.spec.control_dt,
            "physics_dt": self.spec.physics_dt,
            "episode_steps": self.spec.episode_steps,
            "params": self._sampler.ranges(),
        }

    def build_model(self, task: Task) -> mujoco.MjModel:
        self._sampler.validate(task)
        m = self._rand.build(task)
        if self._custom is not None:
            self._custom(m, task)
        return m

    def make_env(self, task: Task, seed: int | None = None) -> TaskEnv:
        return TaskEnv(self, task, seed)

    def make_vec_env(self, tasks: list[Task], seed: int | None = None) -> ProcVectorEnv:
        if not tasks:
            raise TaskError("need at least one task")
        proto = self.make_env(tasks[0])
        try:
            return ProcVectorEnv(self.name, [t.to_dict() for t in tasks], proto, seed=seed)
        finally:
            proto.close()


class CheetahDistribution(GymDistribution):
    """HalfCheetah families and ant-dir on the batched rollout env (sim/cheetah_env.py).

    `make_gym_env` keeps the gymnasium-wrapped reference env (same model, same reward) that the
    tests compare the batched env against.
    """

    def __init__(self, spec_file: str, reward_kind: str, make_base, **kw):
        super().__init__(spec_file, make_base, **kw)
        self.reward_kind = reward_kind

    def make_gym_env(self, task: Task, seed: int | None = None) -> TaskEnv:
        return TaskEnv(self, task, seed)

    def make_env(self, task: Task, seed: int | None = None):
        from . import cheetah_env

        return cheetah_env.make_env(self, task, seed)

    def make_vec_env(self, tasks: list[Task], seed: int | None = None):
        from . import cheetah_env

        if not tasks:
            raise TaskError("need at least one task")
        return cheetah_env.make_vec_env(self, tasks, seed)


class CartPoleDistribution(GymDistribution):
    """cartpole-dyn on the batched rollout env; `make_gym_env` is the per-env reference."""

    def make_gym_env(self, task: Task, seed: int | None = None) -> TaskEnv:
        return TaskEnv(self, task, seed)

    def make_env(self, task: Task, seed: int | None = None):
        from . import cartpole_env

        return cartpole_env.make_env(self, task, seed)

    def make_vec_env(self, tasks: list[Task], seed: int | None = None):
        from . import cartpole_env

        if not tasks:
            raise TaskError("need at least one task")
        return cartpole_env.make_vec_env(self, tasks, seed)


# -- goal rewards (PEARL / VariBAD definitions) ----------------------------------------------
def _cheetah_vel_reward(info: dict, goal: tuple | None, _: float) -> float:
    return -abs(info["x_velocity"] - goal[0]) + info["reward_ctrl"]


def _cheetah_dir_reward(info: dict, goal: tuple | None, _: float) -> float:
    return goal[0] * info["x_velocity"] + info["reward_ctrl"]


def _ant_dir_reward(info: dict, goal: tuple | None, _: float) -> float:
    forward = math.cos(goal[0]) * info["x_velocity"] + math.sin(goal[0]) * info["y_velocity"]
    return forward + info["reward_ctrl"] + info["reward_survive"] + info.get("reward_contact", 0.0)


def _cheetah(ctrl_cost: float) -> Callable[[int], gym.Env]:
    def make(steps: int) -> gym.Env:
        return gym.make("HalfCheetah-v5", max_episode_steps=steps, ctrl_cost_weight=ctrl_cost)

    return make


def _ant(steps: int) -> gym.Env:
    return gym.make("Ant-v5", max_episode_steps=steps, include_cfrc_ext_in_observation=False)


def _fetch(env_id: str) -> Callable[[int], gym.Env]:
    def make(steps: int) -> gym.Env:
        _register_robotics()
        env = gym.make(env_id, max_episode_steps=steps)
        return gym.wrappers.FlattenObservation(env)  # [achieved_goal, desired_goal, observation]

    return make


# -- our own cart-pole ------------------------------------------------------------------------
class CartPoleEnv(gym.Env):
    """MuJoCo cart-pole with discrete push left/right (+-10 N), balance from near upright."""

    metadata = {"render_modes": []}
    THETA_LIMIT = 12 * math.pi / 180
    X_LIMIT = 2.4

    def __init__(self, max_episode_steps: int):
        self.model = mujoco.MjModel.from_xml_path(str(HERE / "cartpole.xml"))
        self.data = mujoco.MjData(self.model)
        self.substeps = 10
        self.dt = self.model.opt.timestep * self.substeps
        self.max_episode_steps = max_episode_steps
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._t = 0

    def _obs(self) -> np.ndarray:
        d = self.data
        return np.array([d.qpos[0], d.qpos[1], d.qvel[0], d.qvel[1]], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = self.np_random.uniform(-0.05, 0.05, 2)
        self.data.qvel[:] = self.np_random.uniform(-0.05, 0.05, 2)
        mujoco.mj_forward(self.model, self.data)
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self.data.ctrl[0] = 1.0 if int(action) == 1 else -1.0
        for _ in range(self.substeps):
            mujoco.mj_step(self.model, self.data)
        self._t += 1
        obs = self._obs()
        terminated = bool(abs(obs[1]) > self.THETA_LIMIT or abs(obs[0]) > self.X_LIMIT)
        truncated = self._t >= self.max_episode_steps and not terminated
        return obs, 1.0, terminated, truncated, {}


def _cartpole_custom(m: mujoco.MjModel, task: Task) -> None:
    """Uniform rod of length L and mass mp on the hinge; cart of mass mc."""
    length, mp, mc = task.value("pole_length"), task.value("pole_mass"), task.value("cart_mass")
    pole = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "pole")
    cart = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "cart")
    geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "pole")
    m.body_mass[pole] = mp
    m.body_ipos[pole] = (0.0, 0.0, length / 2)
    m.body_inertia[pole] = (mp * length**2 / 12, mp * length**2 / 12, 1e-5)
    m.geom_size[geom, 1] = length / 2
    m.geom_pos[geom] = (0.0, 0.0, length / 2)
    m.body_mass[cart] = mc
    mujoco.mj_setConst(m, mujoco.MjData(m))


def cheetah_vel() -> GymDistribution:
    return CheetahDistribution(
        "cheetah_vel.toml",
        "vel",
        _cheetah(0.05),
        reward=_cheetah_vel_reward,
        goal=lambda t: (t.value("goal_velocity"),),
    )


def cheetah_dir() -> GymDistribution:
    return CheetahDistribution(
        "cheetah_dir.toml",
        "dir",
        _cheetah(0.05),
        reward=_cheetah_dir_reward,
        goal=lambda t: (2.0 * t.value("direction") - 1.0,),
    )


def ant_dir() -> GymDistribution:
    return CheetahDistribution(
        "ant_dir.toml",
        "ant-dir",
        _ant,
        reward=_ant_dir_reward,
        goal=lambda t: (t.value("direction_angle"),),
    )


def cheetah_dyn() -> GymDistribution:
    return CheetahDistribution("cheetah_dyn.toml", "dyn", _cheetah(0.1))


def cartpole_dyn() -> GymDistribution:
    return CartPoleDistribution(
        "cartpole.toml", CartPoleEnv, custom=_cartpole_custom, action_type="discrete"
    )


def fetch_reach_dyn() -> GymDistribution:
    return GymDistribution("fetch_reach.toml", _fetch("FetchReachDense-v4"))


def fetch_push_dyn() -> GymDistribution:
    return GymDistribution("fetch_push.toml", _fetch("FetchPushDense-v4"))
