"""Name -> task distribution. Distributions are built lazily (and cached) on first `get`."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

from metabot.errors import TaskError

HERE = Path(__file__).resolve().parent


def _arm(spec: str) -> Callable[[], object]:
    def build():
        from .arm_env import ArmReachDistribution

        return ArmReachDistribution(HERE / spec)

    return build


def _gym(factory: str) -> Callable[[], object]:
    def build():
        from . import gym_tasks

        return getattr(gym_tasks, factory)()

    return build


_FACTORIES: dict[str, Callable[[], object]] = {
    "arm2d-reach": _arm("arm2d.toml"),
    "arm6-reach": _arm("arm6.toml"),
    "cheetah-vel": _gym("cheetah_vel"),
    "cheetah-dir": _gym("cheetah_dir"),
    "ant-dir": _gym("ant_dir"),
    "cheetah-dyn": _gym("cheetah_dyn"),
    "cartpole-dyn": _gym("cartpole_dyn"),
    "fetch-reach-dyn": _gym("fetch_reach_dyn"),
    "fetch-push-dyn": _gym("fetch_push_dyn"),
}


def names() -> list[str]:
    return list(_FACTORIES)


@cache
def get(name: str):
    if name not in _FACTORIES:
        raise TaskError(f"unknown task distribution {name!r}; known: {', '.join(_FACTORIES)}")
    return _FACTORIES[name]()


def from_spec(path: str | Path):
    """A user's own arm: an MJCF plus a TOML randomization spec, no Python."""
    from .arm_env import ArmReachDistribution

    return ArmReachDistribution(path)
