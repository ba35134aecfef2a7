"""Training benchmark: train (or resume) a run, then measure its returns after k episodes
of exploration on held-out tasks, and write a JSON under bench/.

    python -m metabot.evaluation.bench_train --algo rl2 --tasks cheetah-vel \
        --steps 300000 --out runs/bench/cheetah-vel-rl2 --json bench/rl2_cheetah_vel_train.json

No baselines are trained (unlike `metabot eval`): the number reported is the raw return of
the evaluation episode after k = 0, 1, 2 episodes on the same task, hidden state carried,
to compare with published curves (cheetah-vel, 200-step episodes: PEARL about -50 at 2e6
steps; MAML and RL^2 about -100 at 1e8 steps).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

PUBLISHED = {
    "cheetah-vel": "PEARL ~ -50 at ~2e6 env steps; MAML and RL^2 ~ -100 at ~1e8 env steps "
    "(Rakelly et al. 2019, Fig. 3)"
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algo", default="rl2")
    p.add_argument("--tasks", default="cheetah-vel")
    p.add_argument("--steps", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="run directory (resumed if it exists)")
    p.add_argument("--json", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--eval-tasks", type=int, default=16)
    p.add_argument("--budgets", default="0,1,2")
    p.add_argument("--eval-only", action="store_true",
                   help="evaluate the run's latest checkpointed agent without training")
    args = p.parse_args(argv)

    from metabot.algos import load_agent
    from metabot.algos.runs import atomic_write_json, read_json
    from metabot.algos.trainer import get_distribution, train
    from metabot.commands.train import _overrides
    from metabot.evaluation.protocol import run_budget
    from metabot.evaluation.report import EVAL_SEED, make_evaluator

    out = Path(args.out)
    t0 = time.time()
    resume = (out / "config.json").is_file()
    status = read_json(out / "run.json") if (out / "run.json").is_file() else {}
    if not status.get("finished") and not args.eval_only:
        train(args.algo, args.tasks, out, seed=args.seed, steps=None if resume else args.steps,
              overrides=None if resume else _overrides(args.set), resume=resume, progress=True)
    train_wall = time.time() - t0
    agent, info = load_agent(out)
    dist = get_distribution(info["tasks"])
    ev = make_evaluator(agent, info["algo"])
    tasks = dist.sample(args.eval_tasks, split="test", seed=EVAL_SEED)
    budgets = [int(b) for b in args.budgets.split(",")]
    returns = {}
    for k in budgets:
        ep = run_budget(dist, tasks, ev, k, ev.budget_unit, EVAL_SEED, agent.act_dim)
        returns[str(k)] = {"mean": float(ep.returns.mean()),
                           "std_over_tasks": float(ep.returns.std())}
    report = {
        "benchmark": "train",
        "algo": info["algo"],
        "tasks": info["tasks"],
        "run_id": info["run_id"],
        "env_steps": info["env_steps"],
        "finished": info["finished"],
        "budget_unit": ev.budget_unit,
        "eval_tasks": args.eval_tasks,
        "split": "test",
        "return_after_k": returns,
        "final_episode_return_after_2": returns.get("2", {}).get("mean"),
        "train_wall_s_this_invocation": round(train_wall, 1),
        "published": PUBLISHED.get(info["tasks"]),
        "command": "python -m metabot.evaluation.bench_train " + " ".join(
            sys.argv[1:] if argv is None else argv),
        # measured, so a number taken beside other jobs says so
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "loadavg_at_end": list(os.getloadavg())},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.json), report)
    print(json.dumps({k: report[k] for k in ("algo", "tasks", "env_steps", "return_after_k")},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
