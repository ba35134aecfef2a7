"""Physical metrics of an arm episode, beside returns: pure numpy (robot-side reusable).

All take per-step arrays of one evaluation episode: tip error in metres [T, N] (N tasks
or envs side by side) and applied actions [T, N, A].
"""

from __future__ import annotations

import numpy as np

SETTLE_TOLERANCE_M = 0.01  # "settled" = tip error stays within 10 mm until the episode ends


def tip_error_mm(tip_error: np.ndarray) -> dict[str, np.ndarray]:
    """Final and mean tip error per env, in mm."""
    e = np.asarray(tip_error, float) * 1000.0
    return {"final_tip_error_mm": e[-1], "mean_tip_error_mm": e.mean(0)}


def settle_steps(tip_error: np.ndarray, tolerance: float = SETTLE_TOLERANCE_M) -> np.ndarray:
    """Steps until the tip error enters the tolerance band for good; NaN if it never does.

    Returns [N] floats: the first step t (1-based count of steps taken) after which every
    later error is <= tolerance.
    """
    e = np.asarray(tip_error, float)
    T = e.shape[0]
    outside = e > tolerance
    # index of the last step outside the band (-1 if none)
    last_out = np.where(outside.any(0), T - 1 - np.argmax(outside[::-1], axis=0), -1)
    steps = (last_out + 2).astype(float)  # first inside step after it, counted from 1
    steps[last_out == T - 1] = np.nan
    return steps


def smoothness(actions: np.ndarray) -> np.ndarray:
    """Mean |delta a| per step per env (over steps and action dims) [N]."""
    a = np.asarray(actions, float)
    if a.shape[0] < 2:
        return np.zeros(a.shape[1])
    return np.abs(np.diff(a, axis=0)).mean(axis=(0, 2))


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing rolling mean over axis 0; the first window-1 rows average what exists."""
    x = np.asarray(x, float)
    c = np.cumsum(np.concatenate([np.zeros((1, *x.shape[1:])), x]), axis=0)
    idx = np.arange(1, x.shape[0] + 1)
    lo = np.maximum(idx - window, 0)
    n = (idx - lo).reshape(-1, *([1] * (x.ndim - 1)))
    return (c[idx] - c[lo]) / n


def time_to_recover(
    tip_error: np.ndarray,
    oracle_tip_error: np.ndarray,
    switch_step: int,
    window: int = 20,
    tolerance: float = 0.10,
) -> np.ndarray:
    """Steps after `switch_step` until the rolling `window`-step tip error is within
    `tolerance` (10%) of the oracle's on the same task and switch; NaN if never.

    Inputs [T, N]; the earliest possible answer is `window` (one full window after the
    switch).
    """
    a = rolling_mean(np.asarray(tip_error, float)[switch_step:], window)
    b = rolling_mean(np.asarray(oracle_tip_error, float)[switch_step:], window)
    ok = a <= b * (1.0 + tolerance)
    ok[: window - 1] = False
    first = np.argmax(ok, axis=0).astype(float) + 1
    first[~ok.any(0)] = np.nan
    return first


def summarize(values: np.ndarray) -> float | None:
    """Mean over finite values (None when there are none): JSON-safe."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else None
