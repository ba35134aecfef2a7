"""The cycle log: one JSON line per control cycle, after a header line; replayable.

Format (`metabot-cyclelog` version 1, documented in docs/hardware.md):
  line 1   header  {"format": "metabot-cyclelog", "version": 1, "rate_hz", "mode",
                    "tolerance_s", "t0_unix", "description": {...}, "safety": {...},
                    "interventions": {"1": "nonfinite", ...}, "meta": {...}}
  lines    cycle   {"k", "deadline", "wake", "sent", "late", "state": {"t", "age", "seq",
                    "q", "qd", "tau", "enabled", "holding", "cmd_seq"} | null,
                    "action", "command" | null, "interventions", "cmd_seq", "rtt_us" | null}
  last     summary {"summary": {...LoopStats...}} (absent if the process died)
Times are seconds since the loop's t0 (time.monotonic at start). JSON lines were chosen over
.npz because a crash leaves every complete line readable; the reader drops a torn last line.
NaN/Inf appear as the `NaN`/`Infinity` tokens Python's json module writes and reads.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from metabot.errors import ConfigError

FORMAT = "metabot-cyclelog"
VERSION = 1


class CycleLogWriter:
    def __init__(self, path: str | os.PathLike, header: dict):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w", buffering=1 << 16)
        head = {"format": FORMAT, "version": VERSION, "t0_unix": time.time(), **header}
        self._f.write(json.dumps(head, default=_jsonable) + "\n")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps(record, default=_jsonable) + "\n")

    def close(self, summary: dict | None = None) -> None:
        if self._f.closed:
            return
        if summary is not None:
            self._f.write(json.dumps({"summary": summary}, default=_jsonable) + "\n")
        self._f.close()


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"not JSON-serializable: {type(x).__name__}")


def read_cyclelog(path: str | os.PathLike) -> tuple[dict, list[dict], dict | None]:
    """Return (header, cycle records, summary or None). Raises ConfigError if not a cycle log."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no such cycle log: {p}")
    with open(p) as f:
        lines = f.read().split("\n")
    try:
        header = json.loads(lines[0])
    except (json.JSONDecodeError, IndexError):
        raise ConfigError(f"{p} is not a metabot cycle log (bad header line)") from None
    if header.get("format") != FORMAT:
        raise ConfigError(f"{p} is not a metabot cycle log (format={header.get('format')!r})")
    if header.get("version") != VERSION:
        raise ConfigError(f"{p}: cycle-log version {header.get('version')} is not supported "
                          f"(this metabot reads version {VERSION})")
    records, summary = [], None
    for i, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i >= len(lines) - 1:  # torn last line after a crash
                break
            raise ConfigError(f"{p}:{i}: corrupt cycle-log line") from None
        if "summary" in rec:
            summary = rec["summary"]
        else:
            records.append(rec)
    return header, records, summary
