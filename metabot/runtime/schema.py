"""The artifact metadata schema (format version 1) and a small validator for it.

The schema is written as a JSON Schema subset (type, properties, required,
additionalProperties, items, enum, minimum, minItems, maxItems) so that anyone with the
`jsonschema` package can check it too. The runtime validates with the hand-written
`validate` below instead: it is ~50 lines, needs nothing beyond the core install, and
gives one readable error path such as `metadata.action.high: expected 6 items, got 5`.
"""

from __future__ import annotations

from typing import Any

FORMAT_VERSION = 1

_NUM = {"type": "number"}
_INT0 = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_NUMS = {"type": "array", "items": _NUM}
_STRS = {"type": "array", "items": _STR}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}


def _obj(props: dict, required: list[str] | None = None, extra: bool = True) -> dict:
    """An object schema. Unknown keys are allowed (and still covered by the digest), so a
    runtime reads files from a later metabot of the same format version that added
    optional fields; a change of meaning bumps FORMAT_VERSION instead."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": extra,
    }


_TENSOR = _obj({"name": _STR, "shape": _SHAPE})

SCHEMA: dict[str, Any] = _obj(
    {
        "format_version": {"type": "integer", "minimum": 1},
        "metabot_version": _STR,
        "algorithm": _STR,
        "task": _obj(
            {
                "name": _STR,
                "ranges": {"type": "object"},
                "control_rate_hz": {"type": "number", "minimum": 0},
                "dt": {"type": "number", "minimum": 0},
            }
        ),
        "observation": _obj(
            {
                "dim": _INT0,
                "layout": {
                    "type": "array",
                    "items": _obj({"name": _STR, "start": _INT0, "size": _INT0}),
                },
                "scale": _NUMS,
            },
            required=["dim", "layout"],
        ),
        "normalizer": {
            "type": ["object", "null"],
            "properties": {"mean": _NUMS, "std": _NUMS, "clip": {"type": ["number", "null"]}},
            "required": ["mean", "std"],
            "additionalProperties": True,
        },
        "action": _obj(
            {
                "dim": _INT0,
                "space": {"enum": ["box"]},
                "low": _NUMS,
                "high": _NUMS,
                "scale": _NUMS,
                "offset": _NUMS,
                "meaning": _STR,
                # arm targets: absolute about home, or a step from the last target sent
                "mode": {"enum": ["absolute", "delta"]},
            },
            required=["dim", "space", "low", "high"],
        ),
        "robot": {"type": ["object", "null"]},
        "privileged_dim": _INT0,
        "history_length": _INT0,
        "inputs": {"type": "array", "items": _TENSOR, "minItems": 1},
        "outputs": {"type": "array", "items": _TENSOR, "minItems": 1},
        "state": {
            "type": "array",
            "items": _obj({"input": _STR, "output": _STR, "shape": _SHAPE, "kind": _STR}),
        },
        "adaptation": _obj(
            {"kind": {"enum": ["none", "context", "head", "model", "full"]}, "requires": _STRS},
            required=["kind"],
        ),
        "training": _obj(
            {"run_id": _STR, "config_digest": _STR, "seed": {"type": ["integer", "null"]}},
            required=["run_id", "config_digest"],
        ),
        "export": {"type": "object"},  # optional: how the export was checked
        "digest": {"type": "string"},
    },
    required=[
        "format_version",
        "metabot_version",
        "algorithm",
        "task",
        "observation",
        "normalizer",
        "action",
        "robot",
        "privileged_dim",
        "history_length",
        "inputs",
        "outputs",
        "state",
        "adaptation",
        "training",
        "digest",
    ],  # fmt: skip
)

_PY_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def _type_ok(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False  # JSON true is not a number, although Python says bool is an int
    return isinstance(value, _PY_TYPES[name])


def validate(doc: Any, schema: dict[str, Any] = SCHEMA, path: str = "metadata") -> list[str]:
    """Return every violation of `schema` in `doc` as `path: problem` strings (empty: valid)."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_type_ok(doc, n) for n in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(doc).__name__}"]
    if "enum" in schema and doc not in schema["enum"]:
        errors.append(f"{path}: {doc!r} is not one of {schema['enum']}")
    if "minimum" in schema and isinstance(doc, (int, float)) and doc < schema["minimum"]:
        errors.append(f"{path}: {doc} is below the minimum {schema['minimum']}")
    if isinstance(doc, list):
        if len(doc) < schema.get("minItems", 0):
            errors.append(f"{path}: expected at least {schema['minItems']} items, got {len(doc)}")
        if "items" in schema:
            for i, item in enumerate(doc):
                errors += validate(item, schema["items"], f"{path}[{i}]")
    if isinstance(doc, dict):
        for key in schema.get("required", []):
            if key not in doc:
                errors.append(f"{path}: missing '{key}'")
        props = schema.get("properties", {})
        for key, value in doc.items():
            if key in props:
                errors += validate(value, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{path}: unexpected key '{key}'")
    return errors


def check_consistency(doc: dict[str, Any]) -> list[str]:
    """Cross-field rules a JSON schema cannot say: vector lengths match the declared dims."""
    errors = []
    obs_dim, act_dim = doc["observation"]["dim"], doc["action"]["dim"]
    for key in ("low", "high", "scale", "offset"):
        vec = doc["action"].get(key)
        if vec is not None and len(vec) != act_dim:
            errors.append(f"metadata.action.{key}: expected {act_dim} items, got {len(vec)}")
    norm = doc["normalizer"]
    if norm is not None:
        for key in ("mean", "std"):
            if len(norm[key]) != obs_dim:
                errors.append(
                    f"metadata.normalizer.{key}: expected {obs_dim} items, got {len(norm[key])}"
                )
    scale = doc["observation"].get("scale")
    if scale is not None and len(scale) != obs_dim:
        errors.append(f"metadata.observation.scale: expected {obs_dim} items, got {len(scale)}")
    covered = sum(part["size"] for part in doc["observation"]["layout"])
    if doc["observation"]["layout"] and covered != obs_dim:
        errors.append(f"metadata.observation.layout: sizes sum to {covered}, dim is {obs_dim}")
    return errors
