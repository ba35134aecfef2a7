"""`metabot export RUN_DIR --out AGENT.onnx`: freeze a trained run into one verified artifact."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory written by `metabot train`"
    )
    parser.add_argument("--out", required=True, metavar="AGENT.onnx", help="artifact path to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parity check's inputs")
    parser.add_argument(
        "--teacher", action="store_true",
        help="rma runs: export the teacher (the policy given the true dynamics features, as the"
        " oracle is) instead of the student; a diagnostic, never a deployable adaptive agent",
    )


def run(args: argparse.Namespace) -> int:
    from metabot.export.agent import export_run

    path, report = export_run(args.run_dir, args.out, seed=args.seed, teacher=args.teacher)
    from metabot.runtime import read_artifact

    _, meta = read_artifact(path)
    print(
        f"exported {meta['algorithm']} agent for {meta['task']['name']} -> {path}"
        f" ({path.stat().st_size / 1024:.0f} KiB, {meta['digest'][:19]}...)"
    )
    print(
        f"parity: {report.random_steps} random steps + {report.sequence_steps}-step sequences,"
        f" max |diff| {report.max_abs_diff:.2e} (tolerance 1e-5); onnx.checker: ok"
    )
    head = meta.get("export", {}).get("head_adaptation")
    if head:
        print(
            f"head adaptation step: runtime (numpy) vs agent on {head['transitions']} exploration"
            f" transitions, max |diff| {head['max_abs_diff']:.2e}"
        )
    if not meta["training"].get("finished"):
        print("note: the run had not finished training (its latest agent was exported)")
    return 0
