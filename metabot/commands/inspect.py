"""`metabot inspect AGENT.onnx`: print an artifact's metadata and verify it (no torch).

Exits non-zero, printing one error line, on a truncated file, a digest mismatch (edited
graph or metadata), an unsupported format version or a graph that disagrees with its
metadata.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", metavar="AGENT.onnx")
    parser.add_argument("--json", action="store_true", help="print the metadata as JSON")


def _short(value, limit: int = 90) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _export_check(export: dict | None) -> str:
    if not export:
        return "not recorded"
    return (
        f"parity max |diff| {export['max_abs_diff']:.1e} (tolerance {export['tolerance']:g}) over"
        f" {export['random_steps']} random steps + {export['sequence_steps']}-step sequences;"
        f" {export.get('exporter', '?')}, opset {export.get('opset', '?')}"
    )


def rows(meta: dict) -> list[tuple[str, str]]:
    """(field, value) pairs in reading order: identity, I/O, robot, adaptation, training."""
    task, obs, act = meta["task"], meta["observation"], meta["action"]
    out = [
        ("algorithm", meta["algorithm"]),
        ("format / metabot", f"{meta['format_version']} / {meta['metabot_version']}"),
        ("task distribution", task["name"]),
        ("control rate", f"{task['control_rate_hz']:g} Hz (dt {task['dt']:g} s)"),
        ("randomized", _short(", ".join(task["ranges"].get("params", task["ranges"])))),
        (
            "observation",
            f"{obs['dim']}: "
            + ", ".join(
                f"{p['name']}[{p['start']}:{p['start'] + p['size']}]" for p in obs["layout"]
            ),
        ),
        (
            "normalizer",
            "none"
            if meta["normalizer"] is None
            else f"mean/std over {len(meta['normalizer']['mean'])},"
            f" clip {meta['normalizer'].get('clip')}",
        ),
        (
            "action",
            f"{act['dim']} in [{min(act['low']):g}, {max(act['high']):g}]: "
            + _short(act.get("meaning", ""), 70),
        ),
    ]
    robot = meta["robot"]
    if robot:
        out.append(("joints (order)", ", ".join(robot["joint_names"])))
        out.append(
            (
                "limits (rad)",
                ", ".join(
                    f"[{lo:.2f}, {hi:.2f}]"
                    for lo, hi in zip(robot["lower"], robot["upper"], strict=True)
                ),
            )
        )
        out.append(("home (rad)", ", ".join(f"{h:.2f}" for h in robot["home"])))
    out += [
        (
            "privileged input",
            str(meta["privileged_dim"])
            if any(t["name"] == "privileged" for t in meta["inputs"])
            else "not used",
        ),
        ("history length", str(meta["history_length"])),
        ("state", ", ".join(f"{s['kind']} {s['shape']}" for s in meta["state"]) or "none"),
        (
            "adaptation",
            meta["adaptation"]["kind"]
            + (
                f" (needs: {', '.join(meta['adaptation']['requires'])})"
                if meta["adaptation"]["requires"]
                else ""
            ),
        ),
        ("inputs", ", ".join(f"{t['name']}{t['shape']}" for t in meta["inputs"])),
        ("outputs", ", ".join(f"{t['name']}{t['shape']}" for t in meta["outputs"])),
        ("export check", _export_check(meta.get("export"))),
        ("run id", meta["training"]["run_id"]),
        ("config digest", meta["training"]["config_digest"][:23]),
        ("digest", meta["digest"] + "  (verified)"),
    ]
    return out


def run(args: argparse.Namespace) -> int:
    from metabot.runtime import load

    agent = load(args.artifact)  # verifies digest, schema, version and graph shapes
    meta = agent.metadata
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.artifact}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for field, value in rows(meta):
        table.add_row(field, value)
    Console().print(table)
    return 0
