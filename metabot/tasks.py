"""The public task API: names(), get(name), Task, TaskDistribution.

Thin facade over metabot.sim (importing this module is cheap; MuJoCo loads on first `get`).
See docs/tasks.md for every distribution's parameters, observation layout, action semantics
and the vector env's autoreset convention.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from metabot.sim.registry import from_spec, names
from metabot.sim.registry import get as _get
from metabot.sim.task import SPLITS, Task

if TYPE_CHECKING:
    import gymnasium


class TaskDistribution(Protocol):
    """What every distribution offers (arms also have `arm` and `build_model`)."""

    name: str
    obs_dim: int
    act_dim: int
    oracle_dim: int
    dt: float

    def sample(self, n: int, *, split: str = "train", seed: int = 0) -> list[Task]: ...
    def make_env(self, task: Task, seed: int | None = None) -> gymnasium.Env: ...
    def make_vec_env(
        self, tasks: list[Task], seed: int | None = None
    ) -> gymnasium.vector.VectorEnv: ...
    def oracle_features(self, task: Task) -> np.ndarray: ...
    def ranges(self) -> dict: ...


def get(name: str) -> TaskDistribution:
    """The distribution called `name` (TaskError if unknown), or, for a path ending in .toml,
    the arm distribution that randomization spec defines (ConfigError if it is invalid)."""
    if str(name).endswith(".toml"):
        return from_spec(name)
    return _get(name)


def label(name: str) -> str:
    """A short, path-safe label for a distribution name or a spec path (its file stem), for
    run ids and cache folders: an absolute spec path must not become a path there."""
    name = str(name)
    return Path(name).stem if name.endswith(".toml") else name


__all__ = ["SPLITS", "Task", "TaskDistribution", "from_spec", "get", "label", "names"]
