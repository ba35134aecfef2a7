"""A gymnasium VectorEnv over a batch simulator (one rollout call per control step).

The batch object provides `n`, `dt`, `seed(s)`, `reset(mask) -> obs[mask]` and
`step(actions) -> (obs, reward, terminated, truncated, info)` with info a dict of (N,) arrays.
Autoreset is SAME_STEP (docs/tasks.md): an ending sub-env is reset inside the same `step`, its
last observation goes to info["final_obs"] (mask info["_final_obs"]).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv


class BatchVecEnv(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, batch, single_observation_space, single_action_space):
        self.batch = batch
        self.num_envs = batch.n
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.observation_space = gym.vector.utils.batch_space(single_observation_space, batch.n)
        self.action_space = gym.vector.utils.batch_space(single_action_space, batch.n)
        self.dt = batch.dt
        self.render_mode = None

    def reset(self, *, seed=None, options: dict | None = None):
        if seed is not None:
            self.batch.seed(seed)
        return self.batch.reset(np.ones(self.num_envs, dtype=bool)), {}

    def step(self, actions):
        obs, rew, term, trunc, extra = self.batch.step(actions)
        info: dict = {}
        for k, v in extra.items():
            info[k] = v
            info["_" + k] = np.ones(self.num_envs, dtype=bool)
        done = term | trunc
        if done.any():
            info["final_obs"] = obs.copy()
            info["_final_obs"] = done.copy()
            obs[done] = self.batch.reset(done)
        return obs, rew, term, trunc, info

    def set_tasks(self, tasks) -> None:
        """New dynamics for every sub-env from the next step on (physical state kept)."""
        self.batch.set_tasks(list(tasks))

    def close_extras(self, **kwargs) -> None:
        if getattr(self.batch, "pool", None) is not None:
            self.batch.pool.close()
            self.batch.pool = None


class BatchEnv(gym.Env):
    """A single env = the batch simulator with N = 1 (same code as the vector env)."""

    metadata = {"render_modes": []}

    def __init__(self, batch, observation_space, action_space):
        self.batch = batch
        self.observation_space, self.action_space = observation_space, action_space
        self.dt = batch.dt

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.batch.seed(seed)
        return self.batch.reset(np.ones(1, dtype=bool))[0], {}

    def set_task(self, task) -> None:
        self.batch.set_tasks([task])

    def step(self, action):
        a = np.asarray(action)[None]
        obs, rew, term, trunc, extra = self.batch.step(a)
        info = {k: v[0].item() for k, v in extra.items()}
        return obs[0], float(rew[0]), bool(term[0]), bool(trunc[0]), info
