"""Read, split and verify an artifact file: ONNX bytes + one JSON metadata document.

The robot-side install has onnxruntime but not the `onnx` package, so the few protobuf
facts we need are read here directly from the wire format: a ModelProto is a flat sequence
of (tag, value) fields and `metadata_props` is field 14 (StringStringEntryProto: key = 1,
value = 2). Everything else - graph, opsets, producer, IR version - is kept byte for byte
and hashed, so an edited weight, op or joint order changes the digest.

Digest (format version 1):
    sha256( model bytes with every field-14 entry removed
            + b"\\n"
            + canonical JSON of the metadata without its "digest" key )
canonical JSON = json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True,
allow_nan=False).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from metabot.errors import ArtifactError
from metabot.runtime.schema import FORMAT_VERSION, check_consistency, validate

METADATA_KEY = "metabot"
_METADATA_FIELD = 14


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end of the file")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes):
    """Yield (field number, wire type, start, value start, end) for each top-level field."""
    pos = 0
    while pos < len(buf):
        start = pos
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise ValueError(f"field number 0 at byte {start}")
        if wire == 0:
            _, pos = _varint(buf, pos)
            value_start = pos
        elif wire == 1:
            value_start, pos = pos, pos + 8
        elif wire == 2:
            length, value_start = _varint(buf, pos)
            pos = value_start + length
        elif wire == 5:
            value_start, pos = pos, pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire} at byte {start}")
        if pos > len(buf):
            raise ValueError(f"field {field} at byte {start} runs past the end of the file")
        yield field, wire, start, value_start, pos


def split_model(data: bytes) -> tuple[bytes, dict[str, str]]:
    """Split ONNX model bytes into (bytes without metadata_props, metadata_props as a dict)."""
    kept: list[bytes] = []
    props: dict[str, str] = {}
    view = memoryview(data)
    for field, wire, start, value_start, end in _fields(data):
        if field != _METADATA_FIELD:
            kept.append(view[start:end])
            continue
        if wire != 2:
            raise ValueError("metadata_props is not length-delimited")
        entry = {1: "", 2: ""}
        sub = bytes(view[value_start:end])
        for f, w, _, vs, e in _fields(sub):
            if w == 2 and f in entry:
                entry[f] = sub[vs:e].decode("utf-8")
        props[entry[1]] = entry[2]
    return b"".join(kept), props


def canonical_json(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "digest"}
    text = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )
    return text.encode("ascii")


def compute_digest(stripped_model: bytes, doc: dict[str, Any]) -> str:
    h = hashlib.sha256(stripped_model)
    h.update(b"\n")
    h.update(canonical_json(doc))
    return "sha256:" + h.hexdigest()


def read_artifact(path: str | Path) -> tuple[bytes, dict[str, Any]]:
    """Read and verify an artifact: (model bytes, metadata). Every failure is an ArtifactError.

    Order matters: the format version is checked before the schema and the digest, so an
    artifact from a newer metabot says so instead of failing on a field it does not know.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no such artifact") from None
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read artifact: {exc.strerror}") from None
    try:
        stripped, props = split_model(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: truncated, corrupt or not an ONNX file ({exc})") from None
    if METADATA_KEY not in props:
        raise ArtifactError(
            f"{path}: no '{METADATA_KEY}' metadata: truncated, or not exported by metabot"
        )
    try:
        doc = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: metadata is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{path}: metadata is not a JSON object")
    check_format_version(doc, path)
    problems = validate(doc)
    if not problems:
        problems = check_consistency(doc)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ArtifactError(f"{path}: invalid metadata: {problems[0]}{more}")
    expected = compute_digest(stripped, doc)
    if doc["digest"] != expected:
        raise ArtifactError(
            f"{path}: digest mismatch: the file says {doc['digest'][:19]}..., its content hashes"
            f" to {expected[:19]}...; the graph or the metadata was edited after export"
        )
    return data, doc


def check_format_version(doc: dict[str, Any], path: str | Path) -> None:
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ArtifactError(f"{path}: metadata has no integer format_version")
    if version > FORMAT_VERSION:
        raise ArtifactError(
            f"{path}: artifact format version {version} is newer than this runtime supports"
            f" (format version {FORMAT_VERSION}); upgrade metabot on this computer"
        )
