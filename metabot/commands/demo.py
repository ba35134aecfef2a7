"""`metabot demo`: the end-to-end demo on mock robots in other processes (see
metabot/deploy/demo.py for the protocol). The deploy path itself imports no torch or mujoco;
the mock robots (separate processes) need the `sim` extra, `--from-scratch` the `train` one.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", metavar="DIR",
                        help="where report.json, the plots and cycle logs go (default ./demo_out)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="train and export the three agents first "
                        "(about 40 minutes on 2 idle cores)")
    parser.add_argument("--agents", metavar="DIR",
                        help="use arm6-reach-{rma,dr,oracle}.onnx from DIR, not the shipped ones")
    parser.add_argument("--draws", type=int, default=5,
                        help="held-out (test split) mock robots (default 5, at least 2)")
    parser.add_argument("--fault-draws", type=int, default=3,
                        help="fault-split mock robots (payload x3, one weak servo; default 3)")
    parser.add_argument("--goals", type=int, default=1,
                        help="evaluation goals per robot (default 1); every agent's evaluation "
                        "is repeated per goal, so the robot time grows about G-fold, and S(k) "
                        "averages a robot's goals before the interval over robots")
    parser.add_argument("--no-payload-change", action="store_true",
                        help="skip the mid-run payload change experiment")
    parser.add_argument("--jobs", type=int, default=2,
                        help="robots driven at once, each in its own process (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws and goals")
    parser.add_argument("--json", metavar="OUT",
                        help="also write the benchmark summary (wall time, S(k), timing) to OUT")


def run(args) -> int:
    from rich.console import Console

    from metabot.deploy import demo, demo_view
    from metabot.errors import ConfigError

    if args.draws < 2:
        raise ConfigError("--draws must be at least 2 (the interval is a bootstrap over draws)")
    if args.fault_draws < 0 or args.jobs < 1:
        raise ConfigError("--fault-draws must be >= 0 and --jobs >= 1")
    if args.goals < 1:
        raise ConfigError(f"--goals must be >= 1, got {args.goals}")
    console = Console()
    rep = demo.run_demo(
        args.out, from_scratch=args.from_scratch, agents_dir=args.agents, draws=args.draws,
        fault_draws=args.fault_draws, goals=args.goals, seed=args.seed, jobs=args.jobs,
        payload=not args.no_payload_change, console=console,
    )  # fmt: skip
    demo_view.print_report(console, rep)
    if args.json:
        import sys

        from metabot.deploy.report import write_json

        write_json(args.json, demo.bench_summary(rep, "metabot " + " ".join(sys.argv[1:])))
        console.print(f"benchmark summary: {args.json}")
    return 0
