"""Deploy reports: summary statistics, report.json and the PNG adaptation curve.

Only numpy and matplotlib (Agg backend) are used here, so a robot computer with the core
install can write its own reports. The normalized score and the physical metrics are the
evaluation protocol's own pure-numpy functions (metabot.evaluation.score / .metrics):
S(k) = (mean R_k - mean R_dr) / (mean R_oracle - mean R_dr), averaged over tasks first,
with a 95% interval by bootstrap over tasks.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metabot.evaluation import metrics, score


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
    """Trailing rolling mean (the evaluation protocol's, metabot.evaluation.metrics)."""
    return metrics.rolling_mean(np.asarray(x, dtype=float), window)


def time_to_recover(
    tip_error: np.ndarray,
    reference_error: np.ndarray,
    switch_step: int,
    *,
    window: int = 20,
    tolerance: float = 0.10,
) -> int | None:
    """Steps after `switch_step` until the rolling tip error is within 10% of the oracle's.

    The evaluation protocol's definition (metabot.evaluation.metrics.time_to_recover) for
    one robot; None when the agent never recovers within the recorded steps.
    """
    a = np.asarray(tip_error, dtype=float)
    b = np.asarray(reference_error, dtype=float)
    n = min(a.size, b.size)
    out = metrics.time_to_recover(a[:n, None], b[:n, None], switch_step, window, tolerance)[0]
    return None if not np.isfinite(out) else int(out)


def adaptation_summary(
    adaptive: Mapping[int, Sequence[float]],
    dr: Sequence[float],
    oracle: Sequence[float],
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """The evaluation JSON keys for one set of tasks: budget -> S, ci95, returns, baselines.

    `adaptive[k][i]` is the adaptive agent's return on task i after k control steps of
    interaction; `dr[i]`/`oracle[i]` are the baselines' returns on the same task i. The
    arithmetic is the evaluation protocol's (metabot.evaluation.score), so a deploy report
    and `metabot eval` mean the same thing by S(k).
    """
    curve = score.adaptation_curve(
        {int(k): np.asarray(v, dtype=float) for k, v in sorted(adaptive.items())},
        np.asarray(dr, dtype=float),
        np.asarray(oracle, dtype=float),
        seed=seed,
    )
    return {"budget_unit": "control_steps", **curve}


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


def write_json(path: str | os.PathLike, data: Mapping[str, Any] | list) -> Path:
    """Write strict JSON crash-safely (temp file, then rename); every `--json OUT` uses it."""
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
    """The adaptation curve S(k) with its 95% interval against dr (0) and oracle (1).

    Where S is not defined (the oracle is not clearly better than dr), the plot shows the
    mean returns against both baselines' instead, so there is still a curve to look at.
    """
    plt = _pyplot()
    ks = sorted(int(k) for k in summary["normalized_score"])
    s = np.array([_num(summary["normalized_score"][str(k)]) for k in ks], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    if np.isfinite(s).any():
        ci = np.array(
            [summary["ci95"][str(k)] or (np.nan, np.nan) for k in ks], dtype=float
        ).reshape(-1, 2)
        ax.fill_between(ks, ci[:, 0], ci[:, 1], alpha=0.25, label="95% interval (bootstrap)")
        ax.plot(ks, s, "o-", label="adaptive agent S(k)")
        ax.axhline(1.0, color="tab:green", ls="--", label="oracle (1)")
        ax.axhline(0.0, color="tab:red", ls="--", label="dr baseline (0)")
        ax.set_ylabel("normalized score S(k)")
    else:
        ret = np.array([_num(summary["return"][str(k)]) for k in ks], dtype=float)
        ax.plot(ks, ret, "o-", label="adaptive agent, mean return")
        ax.axhline(_num(summary["oracle_return"]), color="tab:green", ls="--", label="oracle")
        ax.axhline(_num(summary["dr_return"]), color="tab:red", ls="--", label="dr baseline")
        ax.set_ylabel("mean episode return")
        ax.set_title("S(k) not defined: the oracle is not clearly better than dr",
                     fontsize=8, loc="left")
    ax.set_xlabel("adaptation budget k (control steps on the robot)")
    fig.suptitle(title)
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


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


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
