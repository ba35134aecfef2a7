"""The normalized adaptation score S(k) and its bootstrap interval: pure numpy.

Kept free of torch and of the rest of metabot so the robot side (deploy reports) can
reuse exactly the same arithmetic.

    S(k) = (mean R_k - mean R_dr) / (mean R_oracle - mean R_dr)

Returns are first averaged per task (over seeds), then over tasks; the 95% interval
resamples tasks with replacement (the same resampled tasks for R_k, R_dr and R_oracle,
since all agents met the same tasks). S is reported only where the oracle-dr gap is
clearly positive: its own bootstrap interval lies above 0 (an oracle clearly worse than dr
means the baselines are undertrained, and S would change sign).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def per_task_mean(returns: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """[tasks, seeds] (or [tasks]) -> [tasks]: average over seeds first."""
    r = np.asarray(returns, dtype=float)
    return r.mean(axis=1) if r.ndim == 2 else r


def normalized_score(r_k: np.ndarray, r_dr: np.ndarray, r_oracle: np.ndarray) -> float:
    """S from per-task returns; NaN when the oracle-dr gap is exactly zero."""
    gap = float(np.mean(r_oracle) - np.mean(r_dr))
    if gap == 0.0:
        return float("nan")
    return float((np.mean(r_k) - np.mean(r_dr)) / gap)


def bootstrap_indices(n_tasks: int, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, n_tasks] task indices resampled with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_tasks, size=(n_boot, n_tasks))


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap samples of a quotient, ignoring non-finite ones (a
    resample whose denominator is zero)."""
    s = samples[np.isfinite(samples)]
    if s.size == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(s, a)), float(np.quantile(s, 1 - a))


def score_ci(
    r_k: np.ndarray,
    r_dr: np.ndarray,
    r_oracle: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of S over tasks (per-task returns, aligned)."""
    r_k, r_dr, r_oracle = (np.asarray(x, float) for x in (r_k, r_dr, r_oracle))
    idx = bootstrap_indices(len(r_k), n_boot, seed)
    gap = r_oracle[idx].mean(1) - r_dr[idx].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = (r_k[idx].mean(1) - r_dr[idx].mean(1)) / gap
    return _interval(s, level)


def mean_ci(
    x: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean over tasks."""
    x = np.asarray(x, float)
    idx = bootstrap_indices(len(x), n_boot, seed)
    m = x[idx].mean(1)
    a = (1 - level) / 2
    return float(np.quantile(m, a)), float(np.quantile(m, 1 - a))


def ratio_ci(
    num: np.ndarray, den: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(num) / mean(den) over tasks (aligned per task).

    For the dr / oracle tip-error ratio: a few oscillating tasks decide the mean, so the
    point value alone says little (docs/adaptation_gap.md)."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    idx = bootstrap_indices(len(num), n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = num[idx].mean(1) / den[idx].mean(1)
    return _interval(r, level)


def adaptation_curve(
    returns: Mapping[Any, np.ndarray],
    dr_returns: np.ndarray,
    oracle_returns: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The whole S(k) summary from per-task (or [tasks, seeds]) returns per budget.

    Returns a JSON-safe dict: normalized_score and ci95 (budget -> value, None where the
    gap is not clearly non-zero), return (budget -> mean), dr_return, oracle_return,
    gap_ci95 and worth_adapting.
    """
    r_dr, r_or = per_task_mean(dr_returns), per_task_mean(oracle_returns)
    gap_lo, gap_hi = mean_ci(r_or - r_dr, n_boot, seed)
    # Worth adapting: the oracle is clearly better than dr. A gap clearly below zero (the
    # oracle worse) means the baselines failed, and S would flip sign: not reported either.
    worth = bool(gap_lo > 0)
    out: dict[str, Any] = {
        "normalized_score": {},
        "ci95": {},
        "return": {},
        "return_ci95": {},
        "dr_return": float(np.mean(r_dr)),
        "oracle_return": float(np.mean(r_or)),
        "gap_ci95": [gap_lo, gap_hi],
        "worth_adapting": worth,
        # paired per-task difference to dr: meaningful even where S is not reported
        "gain_over_dr": {},
        "gain_over_dr_ci95": {},
        "per_task_return": {},
        "dr_per_task_return": [float(x) for x in r_dr],
        "oracle_per_task_return": [float(x) for x in r_or],
    }
    for k, r in returns.items():
        r_k = per_task_mean(r)
        key = str(k)
        out["return"][key] = float(np.mean(r_k))
        out["return_ci95"][key] = list(mean_ci(r_k, n_boot, seed))
        out["gain_over_dr"][key] = float(np.mean(r_k - r_dr))
        out["gain_over_dr_ci95"][key] = list(mean_ci(r_k - r_dr, n_boot, seed))
        out["per_task_return"][key] = [float(x) for x in r_k]
        if worth:
            out["normalized_score"][key] = normalized_score(r_k, r_dr, r_or)
            out["ci95"][key] = list(score_ci(r_k, r_dr, r_or, n_boot, seed))
        else:
            out["normalized_score"][key] = None
            out["ci95"][key] = None
    return out
