"""`toy-reach`: a tiny numpy task distribution for fast tests of the algorithms.

A 2-D point mass driven through an unknown per-axis actuator gain (log-uniform
0.5x-2x, ood 0.25x-4x) against an unknown constant force (a payload, a slope: uniform
+-1.5 m/s^2 per axis). A non-adaptive policy holds a steady-state offset that a policy
knowing (or inferring) the force cancels, so adaptation measurably helps; a step costs
microseconds.
It follows the `metabot.tasks` distribution contract (sample, make_env, oracle_features,
dims) and
reports `info["tip_error"]` in metres like the arms. Not a benchmark: a test fixture
that ships so `metabot train --tasks toy-reach` works without MuJoCo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metabot.errors import TaskError

_SPLIT_CODE = {"train": 0, "test": 1, "ood": 2, "fault": 3}


@dataclass(frozen=True)
class ToyTask:
    distribution: str
    split: str
    index: int
    gain: tuple[float, float]
    goal: tuple[float, float]
    bias: tuple[float, float] = (0.0, 0.0)
    switch_step: int = -1  # fault split: the gain changes at this step (-1: never)
    gain_after: tuple[float, float] = (1.0, 1.0)
    params: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.distribution, "split": self.split, "index": self.index,
                "gain": list(self.gain), "goal": list(self.goal), "bias": list(self.bias),
                "switch_step": self.switch_step, "gain_after": list(self.gain_after)}


class ToyEnv:
    """Point mass: x'' = gain * a * 4 - 2 x', dt 0.05 s, 40 steps, reward -|x - goal|."""

    dt = 0.05

    def __init__(self, task: ToyTask, episode_steps: int):
        self.task = task
        self.episode_steps = episode_steps
        self.rng = np.random.default_rng(0)
        self.x = np.zeros(2)
        self.v = np.zeros(2)
        self.t = 0

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.x = self.rng.uniform(-0.1, 0.1, 2)
        self.v = np.zeros(2)
        self.t = 0
        return self._obs(), {}

    def set_task(self, task: ToyTask) -> None:
        """Swap the dynamics mid-episode (the state is kept)."""
        self.task = task

    def _gain(self) -> np.ndarray:
        if 0 <= self.task.switch_step <= self.t:
            return np.asarray(self.task.gain_after)
        return np.asarray(self.task.gain)

    def _obs(self) -> np.ndarray:
        goal = np.asarray(self.task.goal)
        return np.concatenate([self.x, self.v, goal - self.x]).astype(np.float32)

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=float), -1.0, 1.0)
        acc = self._gain() * a * 4.0 - 2.0 * self.v + np.asarray(self.task.bias)
        self.v = self.v + acc * self.dt
        self.x = self.x + self.v * self.dt
        self.t += 1
        err = float(np.linalg.norm(self.x - np.asarray(self.task.goal)))
        reward = -err - 0.01 * float(np.sum(a**2))
        info = {"tip_error": err, "switched": 0 <= self.task.switch_step <= self.t}
        return self._obs(), reward, False, self.t >= self.episode_steps, info

    def close(self) -> None:
        pass


class ToyDistribution:
    name = "toy-reach"
    obs_dim = 6
    act_dim = 2
    oracle_dim = 4
    dt = ToyEnv.dt
    episode_steps = 40
    gain_range = (0.5, 2.0)
    ood_range = (0.25, 4.0)
    bias_max = 1.5

    def ranges(self) -> dict[str, Any]:
        return {"gain": {"range": list(self.gain_range), "ood_range": list(self.ood_range),
                         "unit": "x nominal", "sampling": "log"},
                "bias": {"range": [-self.bias_max, self.bias_max], "unit": "m/s^2"}}

    def sample(self, n: int, *, split: str = "train", seed: int = 0) -> list[ToyTask]:
        if split not in _SPLIT_CODE:
            raise TaskError(f"unknown split {split!r} (train, test, ood, fault)")
        rng = np.random.default_rng([seed, _SPLIT_CODE[split]])
        lo, hi = self.ood_range if split == "ood" else self.gain_range
        tasks = []
        for i in range(n):
            gain = np.exp(rng.uniform(math.log(lo), math.log(hi), 2))
            bias = rng.uniform(-self.bias_max, self.bias_max, 2)
            goal = rng.uniform(-0.5, 0.5, 2)
            switch, after = -1, (1.0, 1.0)
            if split == "fault":
                switch = self.episode_steps // 2
                after = tuple(float(g) for g in gain * rng.uniform(0.3, 0.5, 2))
            tasks.append(ToyTask(self.name, split, i, tuple(float(g) for g in gain),
                                 tuple(float(g) for g in goal), tuple(float(b) for b in bias),
                                 switch, after))
        return tasks

    def make_env(self, task: ToyTask, seed: int | None = None) -> ToyEnv:
        env = ToyEnv(task, self.episode_steps)
        if seed is not None:
            env.reset(seed=seed)
        return env

    def oracle_features(self, task: ToyTask) -> np.ndarray:
        lo, hi = self.gain_range
        mag = 2 * (np.log(np.asarray(task.gain)) - math.log(lo)) / math.log(hi / lo) - 1
        return np.concatenate([mag, np.asarray(task.bias) / self.bias_max]).astype(np.float32)


DISTRIBUTIONS = {"toy-reach": ToyDistribution}


def get(name: str) -> ToyDistribution:
    return DISTRIBUTIONS[name]()
