"""`metabot bench infer --agent AGENT.onnx --json OUT`: p50/p99 latency of the runtime's
`act` (validation included) versus eager torch on the same network."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", required=True, metavar="AGENT.onnx")
    parser.add_argument(
        "--run",
        default=None,
        metavar="RUN_DIR",
        help="the run the artifact was exported from (default: found by run id under ./runs)",
    )
    parser.add_argument("--n", type=int, default=10_000, help="timed calls per side")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved runtime/torch rounds")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls before each round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_out", default=None, help="write results here")


def run(args: argparse.Namespace) -> int:
    import json

    from metabot.bench.infer import bench_infer
    from metabot.errors import ConfigError

    if args.rounds < 1 or args.n < 100 * args.rounds or args.warmup < 0:
        raise ConfigError(
            "need --rounds >= 1, --n >= 100 per round (a p99 needs samples) and --warmup >= 0"
        )
    result = bench_infer(
        args.agent, args.run, n=args.n, rounds=args.rounds, warmup=args.warmup, seed=args.seed
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        from metabot.deploy.report import write_json

        write_json(args.json_out, result)
    return 0
