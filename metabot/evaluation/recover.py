"""Time-to-recover after a mid-episode parameter switch.

Each held-out task's evaluation episode starts as in the protocol (after a budget of
interaction), then at `switch_step` the dynamics jump to the matching `fault`-split task
(a weak servo and a 3x payload on the arms: a servo overheating, an object grasped)
while the arm keeps moving. The oracle is told the new parameters at once. Time to
recover = steps until the agent's rolling 20-step tip error is within 10% of the
oracle's on the same task and switch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metabot.evaluation import metrics


def switch_tasks(envs: Any, tasks: list[Any]) -> bool:
    """Swap the dynamics of a running EnvBatch to `tasks`, keeping the physical state.

    Uses the env's own `set_tasks` (vector envs) or `set_task` (single envs); returns False
    where no switch is possible.
    """
    vec = getattr(envs, "vec", None)
    if vec is not None and hasattr(vec, "set_tasks"):
        vec.set_tasks(tasks)
    elif vec is None and all(hasattr(e, "set_task") for e in envs.envs):
        for env, task in zip(envs.envs, tasks, strict=True):
            env.set_task(task)
    else:
        return False
    envs.tasks = list(tasks)
    envs.privileged = np.stack(
        [np.asarray(envs.dist.oracle_features(t), np.float32).reshape(-1) for t in tasks]
    )
    return True


def _switched_episode(dist, tasks, after, evaluator, k, unit, eval_seed, act_dim, switch_step):
    from metabot.evaluation.protocol import adapted

    with adapted(dist, tasks, evaluator, k, unit, eval_seed, act_dim) as (envs, driver):
        state = {"ok": True}

        def on_step(t):
            if t == switch_step:
                state["ok"] = switch_tasks(envs, after)
                if hasattr(evaluator, "set_privileged"):
                    evaluator.set_privileged(envs.privileged)

        (ep,) = driver.run(envs.episode_steps, exploring=False, on_step=on_step)
    return ep if state["ok"] else None


def time_to_recover_report(
    dist, tasks, ev, ev_dr, ev_or, unit, eval_seed, act_dim, budgets
) -> dict[str, Any]:
    """Recovery of the agent and of dr, relative to the oracle, after a switch mid-episode.

    The agent first interacts for the largest budget <= 100 steps (or 1 episode).
    """
    try:
        after = dist.sample(len(tasks), split="fault", seed=eval_seed)
    except Exception as exc:  # a distribution without a fault split
        return {"available": False, "reason": f"no fault split: {exc}"}
    from metabot.algos.envs import max_episode_steps

    horizon = max_episode_steps(dist)
    switch_step = horizon // 2
    cap = 100 if unit == "steps" else 1
    k = max([b for b in budgets if b <= cap] or [0])
    eps = {}
    for name, e in (("agent", ev), ("dr", ev_dr), ("oracle", ev_or)):
        ep = _switched_episode(dist, tasks, after, e, k, unit, eval_seed, act_dim, switch_step)
        if ep is None or ep.tip_error is None:
            return {"available": False, "reason": "the env cannot switch dynamics mid-episode"}
        eps[name] = ep
    out: dict[str, Any] = {"available": True, "switch_step": switch_step, "budget": k,
                           "window": 20, "tolerance": 0.10, "to_split": "fault"}
    for name in ("agent", "dr"):
        steps = metrics.time_to_recover(eps[name].tip_error, eps["oracle"].tip_error, switch_step)
        out[name] = {
            "steps": metrics.summarize(steps),
            "seconds": None if metrics.summarize(steps) is None
            else metrics.summarize(steps) * dist.dt,
            "recovered_fraction": float(np.isfinite(steps).mean()),
            "post_switch_tip_error_mm": float(eps[name].tip_error[switch_step:].mean() * 1000),
        }
    out["oracle"] = {
        "post_switch_tip_error_mm": float(eps["oracle"].tip_error[switch_step:].mean() * 1000)
    }
    return out
