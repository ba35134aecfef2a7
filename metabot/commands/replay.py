"""`metabot replay LOG`: summarize a control-loop cycle log and re-check its safety decisions."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", metavar="LOG", help="a cycle log written by the control loop")
    parser.add_argument("--verify", action="store_true",
                        help="re-run the safety layer on the logged inputs; exit 1 on mismatch")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--robot", metavar="URL",
                        help="send the logged commands to this robot again (it is first driven "
                             "to the first command; the logged safety limits apply)")
    parser.add_argument("--baud", type=int, default=1_000_000)


def run(args) -> int:
    from metabot.hardware.replay import summarize, verify

    out = summarize(args.log)
    if args.verify:
        out["verify"] = verify(args.log)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        def us(v):
            return "-" if v is None else f"{v:.0f} us"

        print(f"{out['path']}: {out['cycles']} cycles at {out['rate_hz']:g} Hz "
              f"({out['duration_s']:.2f} s, {out['mode']} mode, {len(out['joints'])} joints)")
        print(f"  sent {out['commands_sent']}, late {out['late_commands']}, period p50 "
              f"{us(out['period_p50_us'])}, jitter p99 {us(out['jitter_p99_us'])}, "
              f"rtt p50 {us(out['rtt_p50_us'])}")
        hits = {k: v for k, v in out["interventions"].items() if v}
        print(f"  safety interventions: {hits or 'none'}")
        print(f"  stopped: {out['stop_reason']}")
        if args.verify:
            v = out["verify"]
            verdict = "reproduced exactly" if not v["mismatches"] else \
                f"{v['mismatches']} MISMATCHES (first at cycles {v['first_mismatches']})"
            print(f"  verify: {v['cycles']} safety decisions {verdict}")
    if args.robot:
        from metabot.hardware.replay import play
        from metabot.hardware.serial_robot import SerialRobot

        names = out["joints"] if not all(n.startswith("joint") for n in out["joints"]) else None
        with SerialRobot(args.robot, baudrate=args.baud, joint_names=names) as robot:
            robot.enable()
            stats = play(args.log, robot)
        if stats is not None:
            print(f"  replayed {stats.commands_sent} commands on {args.robot}: jitter p99 "
                  f"{stats.jitter_p99_us:.0f} us, missed {stats.missed_deadlines}")
    return 1 if args.verify and out["verify"]["mismatches"] else 0
