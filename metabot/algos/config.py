"""Typed, validated algorithm configs with a content digest.

Each algorithm declares a frozen dataclass of hyper-parameters. `build_config` merges
defaults, a JSON file and command-line overrides, checks every key's type (a wrong type
or unknown key raises ConfigError naming the key) and `digest` gives a stable hash that
identifies the configuration in the run directory and in exported artifacts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any

from metabot.errors import ConfigError


def _check_type(key: str, value: Any, annotation: Any) -> Any:
    """Return `value` coerced to `annotation` (int -> float only) or raise ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(annotation):
            if arm is type(None) and value is None:
                return None
            try:
                return _check_type(key, value, arm)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: {value!r} is not {annotation}")
    if origin in (tuple, list):
        (item,) = typing.get_args(annotation)[:1] or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        return tuple(_check_type(f"{key}[{i}]", v, item) for i, v in enumerate(value))
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {annotation!r} for {key!r}")


def build_config(cls: type, *sources: dict[str, Any] | None) -> Any:
    """Instantiate dataclass `cls` from defaults overridden by each source in order."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for source in sources:
        for key, value in (source or {}).items():
            if key not in fields:
                raise ConfigError(
                    f"unknown config key {key!r} for {cls.__name__} "
                    f"(known: {', '.join(sorted(fields))})"
                )
            values[key] = _check_type(key, value, hints[key])
    config = cls(**values)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-safe dict of a config dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def digest(payload: dict[str, Any]) -> str:
    """Stable sha256 of a JSON-safe dict (sorted keys, no whitespace)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a JSON config file; malformed content -> ConfigError."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def positive(config: Any, *keys: str) -> None:
    """Raise ConfigError if any of `keys` is not > 0."""
    for key in keys:
        if getattr(config, key) <= 0:
            raise ConfigError(f"config key {key!r} must be > 0, got {getattr(config, key)!r}")
