"""`metabot deploy AGENT.onnx --robot URL`: run and adapt an agent on a robot.

Robot side only: imports numpy, onnxruntime, pyserial and rich (no torch, no mujoco).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent", metavar="AGENT.onnx", help="an exported artifact")
    parser.add_argument("--robot", required=True, metavar="URL",
                        help="serial device (/dev/ttyUSB0), pty path, socket://host:port "
                             "or mock://?seed=0&split=test")
    parser.add_argument("--episodes", type=int, default=5, help="episodes to run (default 5)")
    parser.add_argument("--out", default="deploy_out", metavar="DIR",
                        help="where report.json, adaptation_curve.png and cycles.jsonl go")
    parser.add_argument("--steps", type=int, help="control steps per episode "
                        "(default: the training episode length recorded in the artifact)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the goal sequence")
    parser.add_argument("--baud", type=int, default=1_000_000, help="serial baud rate")
    parser.add_argument("--link-timeout", type=float, default=None, metavar="S",
                        help="stop and hold when no valid state arrives for S seconds "
                             "(default 0.1)")
    parser.add_argument("--watchdog", type=float, default=None, metavar="S",
                        help="MCU watchdog: hold the arm when the host is silent for S "
                             "seconds (0.02-2.5, default 0.25)")
    parser.add_argument("--max-step", type=float, default=None, metavar="RAD",
                        help="safety layer: largest change of a joint target per control "
                             "cycle (default: the robot's velocity limit x period)")
    parser.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                        help="run the control loop at SCHED_FIFO priority where allowed "
                        "(default on)")
    parser.add_argument("--home-speed", type=float, default=1.0, metavar="RAD_S",
                        help="joint speed of the moves back to the home pose (default 1.0)")


def run(args) -> int:
    from rich.console import Console

    from metabot.deploy import session

    console = Console()
    rep = session.deploy(
        args.agent, args.robot, episodes=args.episodes, out_dir=args.out, steps=args.steps,
        seed=args.seed, baudrate=args.baud,
        link_timeout_s=args.link_timeout or session.LINK_TIMEOUT_S,
        watchdog_s=args.watchdog or session.WATCHDOG_S, home_speed=args.home_speed,
        max_step=args.max_step, realtime=args.realtime,
        console=console,
    )  # fmt: skip
    _print_summary(console, rep)
    return 0


def _print_summary(console, rep: dict) -> None:
    from rich.table import Table

    table = Table(title=f"{rep['algorithm']} on {rep['robot']} ({rep['adaptation']} adaptation)")
    for col in ("episode", "return", "final tip error (mm)", "mean tip error (mm)",
                "smoothness", "safety interventions", "act p99 (us)"):
        table.add_column(col, justify="right")
    for e in rep["episodes"]:
        inter = sum(e["safety_interventions"].values())
        table.add_row(e["tag"], f"{e['return']:.2f}", f"{e['final_tip_error_mm']:.1f}",
                      f"{e['mean_tip_error_mm']:.1f}", f"{e['smoothness']:.4f}", str(inter),
                      f"{e['adaptation_latency']['p99_us']:.0f}")
    console.print(table)
    loop = rep["loop"]
    console.print(
        f"loop: {loop['rate_hz']:.0f} Hz, period p50 {loop['period_p50_us'] / 1e3:.2f} ms, "
        f"jitter p99 {loop['jitter_p99_us'] / 1e3:.2f} ms, missed deadlines "
        f"{loop['missed_deadlines']} ({100 * loop['missed_fraction']:.1f}%)")
    files = rep["files"]
    console.print(f"report: {files['report']}\ncurve:  {files['curve']}\n"
                  f"cycle log: {files['cycle_log']} (metabot replay)")
