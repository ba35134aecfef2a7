"""`metabot tasks list`: the task distributions as a table."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import json

    from metabot import tasks

    rows = []
    for name in tasks.names():
        d = tasks.get(name)
        rows.append(
            {
                "name": name,
                "robot": d.robot,
                "varies": ", ".join(d.ranges()["params"]),
                "obs_dim": d.obs_dim,
                "act_dim": d.act_dim,
                "action": d.action_type,
                "control_hz": round(1.0 / d.dt, 2),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="metabot task distributions")
    for col in ("name", "robot", "what varies", "obs", "act", "control"):
        table.add_column(col, overflow="fold")
    for r in rows:
        act = f"{r['act_dim']}" + (" (discrete)" if r["action"] == "discrete" else "")
        table.add_row(
            r["name"], r["robot"], r["varies"], str(r["obs_dim"]), act, f"{r['control_hz']:g} Hz"
        )
    Console(width=160).print(table)
    return 0
