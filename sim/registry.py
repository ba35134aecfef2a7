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


_FACTORIES: dict[str, Callable[[], object]] = {
    "arm2d-reach": _arm("arm2d.toml"),
    "arm6-reach": _arm("arm6.toml"),
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
