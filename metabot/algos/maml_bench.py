"""Benchmarks of the gradient-based family (not tests: numbers for docs/benchmarks.md).

    python -m metabot.algos.maml_bench throughput --tasks arm2d-reach --seconds 60 \
        --json bench/maml_throughput.json
    python -m metabot.algos.maml_bench adapt --algo maml --tasks cheetah-vel --steps 400000 \
        --json bench/maml_cheetah_vel.json

`throughput`: meta-training env steps/s including the meta-update, per algorithm, against
plain PPO (the `dr` baseline's trainer) on the same env, with the share of wall-clock the
meta-update takes. Both wall-clock and process CPU time are reported, because the
machine is shared and wall-clock alone measures the neighbours too.

`adapt`: meta-train for `--steps` env steps (a short, labelled run), then the return of
the evaluation episode after 0, 1, 2 and 10 adaptation episodes on held-out tasks
(metabot.evaluation.protocol.run_budget, the protocol every algorithm uses) with the env
steps each budget spent.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _build(algo: str, dist: Any, seed: int, overrides: dict[str, Any]):
    from metabot.algos import registry
    from metabot.algos.config import build_config

    cls = registry.get(algo)
    return cls(dist, build_config(cls.Config, overrides), seed, 10**9)


def throughput(tasks: str, algos: list[str], seconds: float, seed: int,
               overrides: dict[str, Any]) -> dict[str, Any]:
    from metabot.algos.trainer import get_distribution

    dist = get_distribution(tasks)
    out: dict[str, Any] = {"tasks": tasks, "seconds_per_algo": seconds, "results": {}}
    for algo in algos:
        alg = _build(algo, dist, seed, {} if algo == "dr" else overrides)
        alg.train_iteration()  # warm-up (imports, first allocations)
        steps0, wall0, cpu0 = alg.env_steps, time.perf_counter(), time.process_time()
        sample_s = update_s = 0.0
        iterations = 0
        while time.perf_counter() - wall0 < seconds:
            m = alg.train_iteration()
            sample_s += m.get("sample_s", 0.0)
            update_s += m.get("update_s", 0.0)
            iterations += 1
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        steps = alg.env_steps - steps0
        row = {"iterations": iterations, "env_steps": steps, "wall_s": round(wall, 2),
               "cpu_s": round(cpu, 2), "steps_per_s": round(steps / wall, 1),
               "steps_per_cpu_s": round(steps / cpu, 1)}
        if algo != "dr":
            row["sample_s"] = round(sample_s, 2)
            row["meta_update_s"] = round(update_s, 2)
            row["meta_update_fraction"] = round(update_s / wall, 3)
        out["results"][algo] = row
        print(algo, row, flush=True)
    if "dr" in out["results"]:
        ppo = out["results"]["dr"]
        for algo, row in out["results"].items():
            if algo != "dr":
                row["vs_ppo_wall"] = round(row["steps_per_s"] / ppo["steps_per_s"], 3)
                row["vs_ppo_cpu"] = round(row["steps_per_cpu_s"] / ppo["steps_per_cpu_s"], 3)
    return out


def adapt_benchmark(algo: str, tasks: str, steps: int, seed: int, n_tasks: int,
                    budgets: list[int], overrides: dict[str, Any]) -> dict[str, Any]:
    from metabot.algos.envs import derive_seed
    from metabot.algos.maml_eval import GradientEvaluator
    from metabot.algos.trainer import get_distribution
    from metabot.evaluation.protocol import run_budget

    dist = get_distribution(tasks)
    alg = _build(algo, dist, seed, overrides)
    t0, c0 = time.perf_counter(), time.process_time()
    curve = []
    while alg.env_steps < steps:
        m = alg.train_iteration()
        curve.append([alg.env_steps, round(m["pre_adapt_return"], 2), round(m["return"], 2)])
        if alg.iteration % 10 == 0:
            print(alg.env_steps, m["pre_adapt_return"], m["return"], flush=True)
    train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    test = dist.sample(n_tasks, split="test", seed=seed)
    ev = GradientEvaluator(alg.final_agent(), seed=seed)
    t1 = time.perf_counter()
    returns, per_task, steps_used = {}, {}, {}
    for k in budgets:
        ep = run_budget(dist, test, ev, k, "episodes", derive_seed(seed, 99), dist.act_dim)
        per_task[k] = [round(float(r), 2) for r in ep.returns]
        returns[k] = round(float(np.mean(ep.returns)), 2)
        steps_used[k] = int(k * alg_episode_steps(dist))
        print(f"k={k}: return {returns[k]}", flush=True)
    return {
        "algo": algo, "tasks": tasks, "split": "test", "n_tasks": n_tasks,
        "meta_train_env_steps": alg.env_steps, "meta_train_wall_s": round(train_wall, 1),
        "meta_train_cpu_s": round(train_cpu, 1), "config": overrides,
        "budget_unit": "episodes",
        "return": returns, "adaptation_env_steps": steps_used, "per_task_return": per_task,
        "adapt_ms_mean": round(float(np.mean(ev.adapt_ms)), 2) if ev.adapt_ms else 0.0,
        "eval_wall_s": round(time.perf_counter() - t1, 1),
        "train_curve": curve[:: max(1, len(curve) // 50)],
        "note": "short meta-training run; published MAML numbers use ~1e7-1e8 steps",
    }


def alg_episode_steps(dist: Any) -> int:
    from metabot.algos.envs import max_episode_steps

    return max_episode_steps(dist)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m metabot.algos.maml_bench")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--tasks", default="arm2d-reach")
    t.add_argument("--algos", default="dr,maml,fomaml,anil")
    t.add_argument("--seconds", type=float, default=60.0)
    a = sub.add_parser("adapt")
    a.add_argument("--algo", default="maml")
    a.add_argument("--tasks", default="cheetah-vel")
    a.add_argument("--steps", type=int, default=400_000)
    a.add_argument("--n-tasks", type=int, default=20)
    a.add_argument("--budgets", default="0,1,2,10")
    for q in (t, a):
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--set", action="append", default=[], metavar="KEY=JSON")
        q.add_argument("--json", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value)
    if args.cmd == "throughput":
        report = throughput(args.tasks, args.algos.split(","), args.seconds, args.seed,
                            overrides)
    else:
        report = adapt_benchmark(args.algo, args.tasks, args.steps, args.seed, args.n_tasks,
                                 [int(b) for b in args.budgets.split(",")], overrides)
    report["machine"] = {"python": platform.python_version(), "torch": torch.__version__,
                         "cpu_count": __import__("os").cpu_count(),
                         "note": "shared 2-core machine; other jobs ran concurrently"}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
