"""`metabot train`: meta-train an agent on a task distribution into a run directory."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algo", help="rl2 | rma | dr | oracle | ... (not needed with --resume)")
    parser.add_argument("--tasks", help="task distribution name (e.g. arm6-reach)")
    parser.add_argument("--out", required=True, help="run directory (must be new unless --resume)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None,
                        help="environment steps budget (with --resume: grow the run's budget)")
    parser.add_argument("--config", default=None, help="JSON file of hyper-parameters")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override one hyper-parameter (VALUE parsed as JSON, else a string)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--max-minutes", type=float, default=None, metavar="M",
        help="wall-clock budget: checkpoint and stop after the iteration that crosses it",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _overrides(items: list[str]) -> dict:
    from metabot.errors import ConfigError

    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from metabot.errors import ConfigError

    try:
        from metabot.algos.trainer import train
    except ImportError as exc:  # torch missing on a robot-only install
        from metabot.errors import MissingExtraError

        raise MissingExtraError("training", "train") from exc
    if not args.resume and not (args.algo and args.tasks):
        raise ConfigError("--algo and --tasks are required (unless --resume)")
    out = train(
        args.algo or "", args.tasks or "", args.out, seed=args.seed, steps=args.steps,
        config_file=args.config, overrides=_overrides(args.set), resume=args.resume,
        progress=not args.no_progress, max_minutes=args.max_minutes,
    )
    status = json.loads((out / "run.json").read_text())
    if status.get("stopped"):
        print(f"stopped at the {args.max_minutes:g}-minute budget after "
              f"{status['env_steps']:,} env steps; continue with --resume")
    print(f"trained: {out} (agent.pt, config.json, log.csv, tb/)")
    return 0
