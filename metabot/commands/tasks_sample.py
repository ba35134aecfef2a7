"""`metabot tasks sample NAME --split test --n 5 --seed 0`: tasks as JSON."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", help="task distribution (see `metabot tasks list`) or a randomization spec .toml"
    )
    parser.add_argument("--split", default="train", help="train | test | ood | fault")
    parser.add_argument("--n", type=int, default=5, help="number of tasks")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed")
    parser.add_argument("--oracle", action="store_true", help="add normalized oracle features")


def run(args: argparse.Namespace) -> int:
    import json

    from metabot import tasks
    from metabot.errors import TaskError

    if args.n < 0:
        raise TaskError(f"--n must be >= 0, got {args.n}")
    dist = tasks.get(args.name)
    out = []
    for t in dist.sample(args.n, split=args.split, seed=args.seed):
        d = t.to_dict()
        if args.oracle:
            d = {"task": d, "oracle": dist.oracle_features(t).tolist()}
        out.append(d)
    print(json.dumps(out, indent=2))
    return 0
