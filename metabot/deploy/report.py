"""Deploy reports: summary statistics, report.json and the PNG adaptation curve.

Only numpy and matplotlib (Agg backend) are used here, so a robot computer with the core
install can write its own reports. The normalized score follows the one evaluation
protocol (docs/algorithms.md): S(k) = (mean R_k - mean R_dr) / (mean R_oracle - mean R_dr),
averaged over tasks first, with a 95% interval by bootstrap over tasks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def percentiles_us(values_s: Sequence[float]) -> dict[str, float]:
    """p50/p99/max of durations given in seconds, as microseconds (NaN-free, JSON-safe)."""
    arr = np.asarray([v for v in values_s if v is not None and math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"p50_us": float("nan"), "p99_us": float("nan"), "max_us": float("nan")}
    return {
        "p50_us": float(np.percentile(arr, 50) * 1e6),
        "p99_us": float(np.percentile(arr, 99) * 1e6),
        "max_us": float(arr.max() * 1e6),
    }


def smoothness(actions: np.ndarray) -> float:
    """Mean |delta a| per step over an episode's applied actions (lower is smoother)."""
    a = np.asarray(actions, dtype=float)
    if a.ndim != 2 or a.shape[0] < 2:
        return 0.0
    return float(np.mean(np.abs(np.diff(a, axis=0))))


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing rolling mean; the first window-1 values average what exists so far."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, x.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def time_to_recover(
    tip_error: np.ndarray,
    reference_error: np.ndarray,
    switch_step: int,
    *,
    window: int = 20,
    tolerance: float = 0.10,
) -> int | None:
    """Steps after `switch_step` until the rolling tip error is within 10% of the reference's.

    The reference is the oracle's tip error on the same task and switch (docs/algorithms.md).
    The first full window after the switch is the earliest possible answer, so the result
    is >= `window`. Returns None when the agent never recovers within the recorded steps.
    """
    a = rolling_mean(np.asarray(tip_error, dtype=float)[switch_step:], window)
    b = rolling_mean(np.asarray(reference_error, dtype=float)[switch_step:], window)
    n = min(a.size, b.size)
    for i in range(window - 1, n):
        if a[i] <= b[i] * (1.0 + tolerance):
            return int(i + 1)
    return None


def normalized_score(
    returns: np.ndarray, dr_returns: np.ndarray, oracle_returns: np.ndarray
) -> float:
    """S = (mean R - mean R_dr) / (mean R_oracle - mean R_dr); NaN when the gap is zero."""
    gap = float(np.mean(oracle_returns) - np.mean(dr_returns))
    if gap == 0.0:
        return float("nan")
    return float((np.mean(returns) - np.mean(dr_returns)) / gap)


def bootstrap_score(
    returns: np.ndarray,
    dr_returns: np.ndarray,
    oracle_returns: np.ndarray,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, tuple[float, float], tuple[float, float]]:
    """S with its 95% bootstrap interval over tasks, and the oracle-dr gap's 95% interval.

    All three arrays are per-task means (same task order). Tasks are resampled jointly so
    that the three agents keep meeting the same tasks inside every resample.
    """
    r = np.asarray(returns, dtype=float)
    d = np.asarray(dr_returns, dtype=float)
    o = np.asarray(oracle_returns, dtype=float)
    if not (r.shape == d.shape == o.shape) or r.ndim != 1 or r.size == 0:
        raise ValueError("per-task returns must be 1-D arrays of the same length")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, r.size, size=(n_boot, r.size))
    rm, dm, om = r[idx].mean(1), d[idx].mean(1), o[idx].mean(1)
    gap = om - dm
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(gap != 0.0, (rm - dm) / gap, np.nan)
    s = s[np.isfinite(s)]
    ci = (float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5))) if s.size else (
        float("nan"), float("nan"))
    gap_ci = (float(np.percentile(gap, 2.5)), float(np.percentile(gap, 97.5)))
    return normalized_score(r, d, o), ci, gap_ci


def adaptation_summary(
    adaptive: Mapping[int, Sequence[float]],
    dr: Sequence[float],
    oracle: Sequence[float],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The evaluation JSON keys for one set of tasks: budget -> S, ci95, returns, baselines.

    `adaptive[k][i]` is the adaptive agent's return on task i after k steps of interaction;
    `dr[i]`/`oracle[i]` are the baselines' returns on the same task i.
    """
    out: dict[str, Any] = {
        "budget_unit": "control_steps",
        "normalized_score": {},
        "ci95": {},
        "return": {},
        "dr_return": float(np.mean(dr)),
        "oracle_return": float(np.mean(oracle)),
    }
    gap_ci = None
    for k in sorted(adaptive):
        s, ci, gap_ci = bootstrap_score(
            np.asarray(adaptive[k]), np.asarray(dr), np.asarray(oracle), seed=seed + k
        )
        out["normalized_score"][str(k)] = s
        out["ci95"][str(k)] = list(ci)
        out["return"][str(k)] = float(np.mean(adaptive[k]))
    if gap_ci is not None:
        out["oracle_dr_gap_ci95"] = list(gap_ci)
        out["gap_significant"] = bool(gap_ci[0] > 0.0)
    return out


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None and numpy scalars/arrays -> Python, so report.json is strict JSON."""
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path: str | os.PathLike, data: Mapping[str, Any]) -> Path:
    """Write strict JSON crash-safely (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_json_safe(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_score_curve(path: str | os.PathLike, summary: Mapping[str, Any], title: str) -> Path:
    """The adaptation curve S(k) with its 95% interval against dr (0) and oracle (1)."""
    plt = _pyplot()
    ks = sorted(int(k) for k in summary["normalized_score"])
    s = np.array([summary["normalized_score"][str(k)] for k in ks], dtype=float)
    ci = np.array([summary["ci95"][str(k)] for k in ks], dtype=float).reshape(-1, 2)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.fill_between(ks, ci[:, 0], ci[:, 1], alpha=0.25, label="95% interval (bootstrap)")
    ax.plot(ks, s, "o-", label="adaptive agent S(k)")
    ax.axhline(1.0, color="tab:green", ls="--", label="oracle (1)")
    ax.axhline(0.0, color="tab:red", ls="--", label="dr baseline (0)")
    ax.set_xlabel("adaptation budget k (control steps on the robot)")
    ax.set_ylabel("normalized score S(k)")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_tip_error(
    path: str | os.PathLike,
    curves: Mapping[str, np.ndarray],
    dt: float,
    title: str,
    *,
    switch_step: int | None = None,
    window: int = 20,
) -> Path:
    """Rolling tip error (mm) over control steps for several agents on the same robot."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for name, err in curves.items():
        err = np.asarray(err, dtype=float)
        t = np.arange(err.size) * dt
        ax.plot(t, rolling_mean(err, window), label=name)
    if switch_step is not None:
        ax.axvline(switch_step * dt, color="k", ls=":", label="payload change")
    ax.set_xlabel("time on the robot (s)")
    ax.set_ylabel(f"tip error, {window}-step mean (mm)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return _save(fig, path)


def plot_episode_curve(
    path: str | os.PathLike, returns: Sequence[float], tip_mm: Sequence[float], title: str
) -> Path:
    """Per-episode return and final tip error of one deploy run (the run's adaptation curve)."""
    plt = _pyplot()
    fig, ax1 = plt.subplots(figsize=(6, 4), dpi=110)
    ep = np.arange(1, len(returns) + 1)
    ax1.plot(ep, returns, "o-", color="tab:blue", label="return")
    ax1.set_xlabel("episode on the robot")
    ax1.set_ylabel("return", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(ep, tip_mm, "s--", color="tab:orange", label="final tip error (mm)")
    ax2.set_ylabel("final tip error (mm)", color="tab:orange")
    ax1.set_title(title)
    ax1.grid(alpha=0.3)
    return _save(fig, path)


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.tight_layout()
    fig.savefig(tmp)
    import matplotlib.pyplot as plt

    plt.close(fig)
    os.replace(tmp, path)
    return path
