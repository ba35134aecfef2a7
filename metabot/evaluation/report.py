"""Evaluate a trained run against the dr and oracle baselines: the `metabot eval` JSON.

`evaluate_run(run_dir, split, ...)` loads the run's agent, finds (or trains) the
baselines, runs the protocol of metabot.evaluation.protocol for every budget and returns
the JSON-safe report (keys documented in docs/algorithms.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from metabot.evaluation import metrics, score
from metabot.evaluation.protocol import (
    EPISODE_BUDGETS,
    STEP_BUDGETS,
    episode_metrics,
    run_budget,
)
from metabot.evaluation.recover import time_to_recover_report

EVAL_SEED = 12345


def make_evaluator(agent: Any, algo: str) -> Any:
    """The algorithm's evaluator for `agent` (ContextEvaluator unless it defines one)."""
    from metabot.algos import registry
    from metabot.evaluation.protocol import ContextEvaluator

    try:
        cls = registry.get(algo)
    except Exception:  # an agent class without a registered algorithm (e.g. rma-teacher)
        return ContextEvaluator(agent)
    return cls.make_evaluator(agent)


def _physical(per_env: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {k: metrics.summarize(v) for k, v in per_env.items()}
    if "settle_time_s" in per_env:
        out["settled_fraction"] = float(np.isfinite(per_env["settle_time_s"]).mean())
    return out


def evaluate_agents(
    dist: Any,
    split: str,
    agent: Any,
    dr_agent: Any,
    oracle_agent: Any,
    *,
    algo: str,
    budgets: list[int] | None = None,
    n_tasks: int = 32,
    n_seeds: int = 2,
    eval_seed: int = EVAL_SEED,
    n_boot: int = 2000,
    recover: bool = True,
) -> dict[str, Any]:
    """Run the protocol for one agent and both baselines on `split`; return the report."""
    ev = make_evaluator(agent, algo)
    ev_dr = make_evaluator(dr_agent, "dr")
    ev_or = make_evaluator(oracle_agent, "oracle")
    unit = ev.budget_unit
    if budgets is None:
        budgets = list(STEP_BUDGETS if unit == "steps" else EPISODE_BUDGETS)
    base = dist.sample(n_tasks, split=split, seed=eval_seed)
    tasks = [t for _ in range(n_seeds) for t in base]  # copy j of task i at j * n_tasks + i
    act_dim = int(agent.act_dim)

    def per_task(x: np.ndarray) -> np.ndarray:
        return np.asarray(x).reshape(n_seeds, n_tasks).T  # [tasks, seeds]

    t0 = time.time()
    ep_dr = run_budget(dist, tasks, ev_dr, 0, unit, eval_seed, act_dim)
    ep_or = run_budget(dist, tasks, ev_or, 0, unit, eval_seed, act_dim)
    m_dr, m_or = episode_metrics(ep_dr, dist.dt), episode_metrics(ep_or, dist.dt)
    returns, physical = {}, {}
    ep0 = None
    for k in budgets:
        if ev.stateless and ep0 is not None:
            ep = ep0  # a stateless agent's evaluation episode does not depend on k
        else:
            ep = run_budget(dist, tasks, ev, k, unit, eval_seed, act_dim)
        ep0 = ep0 or ep
        returns[k] = per_task(ep.returns)
        physical[str(k)] = _physical(episode_metrics(ep, dist.dt))
    report: dict[str, Any] = {
        "algo": algo,
        "tasks": dist.name,
        "split": split,
        "budget_unit": unit,
        "budgets": [int(k) for k in budgets],
        "n_tasks": n_tasks,
        "n_seeds": n_seeds,
        "eval_seed": eval_seed,
        **score.adaptation_curve(
            returns, per_task(ep_dr.returns), per_task(ep_or.returns), n_boot, eval_seed
        ),
        "physical": physical,
        "dr_physical": _physical(m_dr),
        "oracle_physical": _physical(m_or),
    }
    dr_err = report["dr_physical"].get("mean_tip_error_mm")
    or_err = report["oracle_physical"].get("mean_tip_error_mm")
    if dr_err and or_err:
        # issue #3's "is this distribution worth adapting to" bar: dr's error >= 1.5x oracle's
        report["dr_over_oracle_tip_error"] = dr_err / or_err
        report["dr_over_oracle_tip_error_ci95"] = list(score.ratio_ci(
            per_task(m_dr["mean_tip_error_mm"]).mean(1),
            per_task(m_or["mean_tip_error_mm"]).mean(1), n_boot, eval_seed))
    if recover:
        report["time_to_recover"] = time_to_recover_report(
            dist, base, ev, ev_dr, ev_or, unit, eval_seed, act_dim, budgets
        )
    report["eval_wall_s"] = round(time.time() - t0, 1)
    return report


def evaluate_run(
    run_dir: str | Path,
    split: str,
    *,
    dr_run: str | Path | None = None,
    oracle_run: str | Path | None = None,
    baselines_root: str | Path | None = None,
    baseline_steps: int | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """`metabot eval`: the report for a run, its baselines found or trained (cached)."""
    from metabot.algos import load_agent
    from metabot.algos.trainer import get_distribution
    from metabot.evaluation.baselines import DEFAULT_ROOT, find_or_train

    agent, info = load_agent(run_dir)
    dist = get_distribution(info["tasks"])
    root = baselines_root or DEFAULT_ROOT
    steps = baseline_steps or info["steps"]  # "same distribution and budget"
    if dr_run is None:
        dr_run = run_dir if info["algo"] == "dr" else find_or_train(
            info["tasks"], "dr", steps=steps, root=root, progress=progress)
    if oracle_run is None:
        oracle_run = run_dir if info["algo"] == "oracle" else find_or_train(
            info["tasks"], "oracle", steps=steps, root=root, progress=progress)
    dr_agent, dr_info = load_agent(dr_run)
    or_agent, or_info = load_agent(oracle_run)
    report = evaluate_agents(dist, split, agent, dr_agent, or_agent, algo=info["algo"], **kwargs)
    report["run_id"] = info["run_id"]
    report["env_steps"] = info["env_steps"]
    report["baselines"] = {
        "dr": {"run_dir": str(dr_run), "run_id": dr_info["run_id"],
               "env_steps": dr_info["env_steps"]},
        "oracle": {"run_dir": str(oracle_run), "run_id": or_info["run_id"],
                   "env_steps": or_info["env_steps"]},
    }
    return report
