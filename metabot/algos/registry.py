"""Algorithm registry: name -> Algorithm class.

An algorithm module registers itself with the `register` decorator; `get` imports the
built-in modules lazily (they import torch), so listing names stays cheap. A new family
(e.g. the gradient-based meta-learners in maml*.py) adds its module name to
`_BUILTIN_MODULES` or is imported before `get` is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from metabot.errors import ConfigError

if TYPE_CHECKING:
    from metabot.algos.base import Algorithm

_REGISTRY: dict[str, type[Algorithm]] = {}

# Modules that define built-in algorithms; imported on first lookup.
_BUILTIN_MODULES: list[str] = [
    "metabot.algos.baselines",  # dr, oracle
    "metabot.algos.rl2",
    "metabot.algos.rma",
    "metabot.algos.maml",  # gradient-based family (optional: absent until it lands)
]

_loaded = False


def register(cls: type[Algorithm]) -> type[Algorithm]:
    """Class decorator: make `cls` trainable as `metabot train --algo cls.name`."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"algorithm {name!r} registered twice")
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency inside the module
                raise


def names() -> list[str]:
    """Registered algorithm names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> type[Algorithm]:
    """The Algorithm class for `name`; unknown name -> ConfigError with the choices."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown algorithm {name!r} (choose from: {', '.join(sorted(_REGISTRY))})"
        ) from None
