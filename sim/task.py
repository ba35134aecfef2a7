"""Tasks and splits: one task = one draw of physical parameters, identified by an index.

Splits are disjoint BY CONSTRUCTION: a task's parameters are a fixed function of its integer
index (a Halton point, whose first coordinate, the base-2 radical inverse, is injective in the
index), and the index space is partitioned by a hash (splitmix64(index) % 4 == 0 -> held-out,
else train). A train task and a test task therefore never share an index, hence never share
a parameter vector. `sample(seed)` only chooses WHICH indices of a split to return.

`ood` draws held-out indices on the widened ranges (RMA style); `fault` draws held-out indices
on the training ranges, then triples the payload and makes one servo weak (half the weakest
training gain).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from metabot.errors import TaskError

from .spec import DistSpec, ParamSpec

SPLITS = ("train", "test", "ood", "fault")
INDEX_SPACE = 2**40
_PRIMES = (
    2,
    3,
    5,
    7,
    11,
    13,
    17,
    19,
    23,
    29,
    31,
    37,
    41,
    43,
    47,
    53,
    59,
    61,
    67,
    71,
    73,
    79,
    83,
    89,
    97,
    101,
    103,
    107,
    109,
    113,
    127,
    131,
    137,
    139,
    149,
    151,
    157,
    163,
    167,
    173,
)


def splitmix64(x: int) -> int:
    """A well-mixed 64-bit hash of an integer (decorrelates the split from Halton digits)."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def split_of_index(index: int) -> str:
    """'test' for a quarter of the index space (by hash), 'train' for the rest."""
    return "test" if splitmix64(index) % 4 == 0 else "train"


def radical_inverse(index: int, base: int) -> float:
    """Van der Corput radical inverse of index in a base: the Halton coordinate."""
    inv, f = 0.0, 1.0 / base
    while index > 0:
        index, digit = divmod(index, base)
        inv += digit * f
        f /= base
    return inv


def halton(index: int, dim: int) -> np.ndarray:
    if dim > len(_PRIMES):
        raise TaskError(f"at most {len(_PRIMES)} randomized dimensions, got {dim}")
    return np.array([radical_inverse(index, _PRIMES[d]) for d in range(dim)])


@dataclass(frozen=True)
class Task:
    """One draw of dynamics parameters (and, for fixed-goal tasks, the goal).

    `params` maps a parameter name to its values (one per element for per-element params),
    stored as tuples so the Task is immutable and hashable. Arms draw a new goal per episode
    from the env's seeded rng, so their `goal` is None.
    """

    dist: str
    split: str
    index: int
    params: tuple[tuple[str, tuple[float, ...]], ...]
    goal: tuple[float, ...] | None = None
    _lookup: dict = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", dict(self.params))

    def param(self, name: str) -> np.ndarray:
        return np.asarray(self._lookup[name], dtype=np.float64)

    def value(self, name: str) -> float:
        return float(self._lookup[name][0])

    def to_dict(self) -> dict:
        return {
            "dist": self.dist,
            "split": self.split,
            "index": self.index,
            "params": {k: list(v) for k, v in self.params},
            "goal": None if self.goal is None else list(self.goal),
        }

    @classmethod
    def from_dict(cls, d: object) -> Task:
        """Rebuild a Task; a malformed dict raises TaskError (one line)."""
        try:
            if not isinstance(d, dict):
                raise TypeError("not a dict")
            missing = {"dist", "split", "index", "params"} - set(d)
            if missing:
                raise KeyError(f"missing {sorted(missing)}")
            extra = set(d) - {"dist", "split", "index", "params", "goal"}
            if extra:
                raise KeyError(f"unknown keys {sorted(extra)}")
            if d["split"] not in SPLITS:
                raise ValueError(f"split {d['split']!r} not in {SPLITS}")
            if not isinstance(d["index"], int) or isinstance(d["index"], bool):
                raise TypeError("index must be an integer")
            if not isinstance(d["params"], dict):
                raise TypeError("params must be a mapping")
            params = []
            for k, v in d["params"].items():
                vals = tuple(float(x) for x in (v if isinstance(v, list | tuple) else [v]))
                if not all(math.isfinite(x) for x in vals) or not vals:
                    raise ValueError(f"param {k!r} must be finite numbers")
                params.append((str(k), vals))
            goal = d.get("goal")
            goal = None if goal is None else tuple(float(x) for x in goal)
            return cls(str(d["dist"]), d["split"], d["index"], tuple(params), goal)
        except (TypeError, KeyError, ValueError) as exc:
            raise TaskError(f"malformed task dict: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


def element_count(p: ParamSpec, n_elements: int) -> int:
    return n_elements if p.per == "each" else 1


class SpecSampler:
    """Draws Tasks for a DistSpec whose per-element counts are known (from the model)."""

    def __init__(self, spec: DistSpec, counts: dict[str, int], fault_weak: list[int] | None = None):
        self.spec = spec
        self.counts = {p.name: element_count(p, counts.get(p.name, 1)) for p in spec.params}
        self.varying = [p for p in spec.params if p.hi > p.lo or p.ood_hi > p.ood_lo]
        self.dim = sum(self.counts[p.name] for p in spec.params)
        self.fault_weak = fault_weak  # element indices of actuator_kp eligible to be "weak"

    def params_for(self, index: int, split: str) -> tuple[tuple[str, tuple[float, ...]], ...]:
        u = halton(index, self.dim)
        out, k = [], 0
        for p in self.spec.params:
            m = self.counts[p.name]
            vals = [p.from_unit(float(u[k + j]), ood=split == "ood") for j in range(m)]
            k += m
            if split == "fault":
                if p.target == "payload_mass":
                    vals = [3.0 * v for v in vals]
                if p.target == "actuator_kp" and self.fault_weak:
                    j = self.fault_weak[splitmix64(index + 1) % len(self.fault_weak)]
                    vals[j % m] = 0.5 * p.lo
            out.append((p.name, tuple(vals)))
        return tuple(out)

    def sample(self, n: int, split: str, seed: int) -> list[Task]:
        if split not in SPLITS:
            raise TaskError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        if not isinstance(n, int) or n < 0:
            raise TaskError(f"n must be a non-negative integer, got {n!r}")
        want = "train" if split == "train" else "test"
        rng = np.random.default_rng(seed)
        tasks: list[Task] = []
        seen: set[int] = set()
        while len(tasks) < n:
            index = int(rng.integers(1, INDEX_SPACE))
            if index in seen or split_of_index(index) != want:
                continue
            seen.add(index)
            tasks.append(Task(self.spec.name, split, index, self.params_for(index, split)))
        return tasks

    def validate(self, task: Task) -> None:
        """TaskError unless the task belongs here: right distribution, every parameter present
        with its element count (e.g. a hand-edited or foreign task dict)."""
        if task.dist != self.spec.name:
            raise TaskError(f"task of {task.dist!r} given to {self.spec.name!r}")
        for p in self.spec.params:
            vals = task._lookup.get(p.name)
            if vals is None:
                raise TaskError(f"task lacks parameter {p.name!r} of {self.spec.name}")
            if len(vals) != self.counts[p.name]:
                raise TaskError(
                    f"task parameter {p.name!r} has {len(vals)} values, "
                    f"{self.spec.name} needs {self.counts[p.name]}"
                )

    def oracle_features(self, task: Task) -> np.ndarray:
        """True parameters normalized to [-1, 1] over the training range (constant ones dropped)."""
        self.validate(task)
        feats = []
        for p in self.varying:
            vals = task.param(p.name)
            if p.sampling == "log":
                vals = np.maximum(vals, 1e-12)
            feats.extend(p.normalize(float(v)) for v in vals)
        return np.asarray(feats, dtype=np.float32)

    @property
    def oracle_dim(self) -> int:
        return sum(self.counts[p.name] for p in self.varying)

    @property
    def oracle_names(self) -> list[str]:
        """One name per oracle feature, in order: ``param[element]``."""
        return [f"{p.name}[{i}]" for p in self.varying for i in range(self.counts[p.name])]

    def ranges(self) -> dict:
        return {p.name: {**p.to_dict(), "count": self.counts[p.name]} for p in self.spec.params}
