"""`metabot bench sim --tasks NAME --json OUT`: vectorized env throughput vs raw mj_step."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tasks",
        default="arm6-reach",
        help="task distribution(s) or spec .toml files, comma-separated",
    )
    parser.add_argument("--n-envs", type=int, default=256, help="sub-envs in our vector env")
    parser.add_argument(
        "--gym-envs", type=int, default=16, help="sub-envs in gymnasium's SyncVectorEnv"
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="time per contender")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", default=None, help="write results here")


def run(args: argparse.Namespace) -> int:
    import json

    from metabot.bench.sim import bench_sim
    from metabot.errors import ConfigError

    if args.n_envs < 1 or args.gym_envs < 1 or args.seconds <= 0 or args.rounds < 1:
        raise ConfigError("--n-envs, --gym-envs, --seconds and --rounds must be positive")
    results = [
        bench_sim(
            name.strip(),
            n_envs=args.n_envs,
            gym_envs=args.gym_envs,
            seconds=args.seconds,
            rounds=args.rounds,
            seed=args.seed,
        )  # fmt: skip
        for name in args.tasks.split(",")
    ]
    out = results[0] if len(results) == 1 else {"results": results}
    text = json.dumps(out, indent=2)
    if args.json_out:
        from metabot.deploy.report import write_json

        write_json(args.json_out, out)
    print(text)
    return 0
