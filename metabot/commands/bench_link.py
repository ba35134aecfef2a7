"""`metabot bench link`: the wire codec (--codec) or the control loop over a robot link."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--codec", action="store_true",
                        help="benchmark the Python codec instead of a link")
    parser.add_argument("--robot", metavar="URL",
                        help="serial URL: device or pty path, socket://host:port, mock://...")
    parser.add_argument("--spawn-mock", nargs="?", const="pty", choices=("pty", "tcp"),
                        help="start `metabot mock-robot --pty` (or --tcp) in a separate "
                             "process and use it")
    parser.add_argument("--rate", type=float, default=500.0, metavar="HZ")
    parser.add_argument("--rates", metavar="HZ,HZ,...",
                        help="sweep several rates (each --seconds long); JSON holds a list")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--baud", type=int, default=1_000_000)
    parser.add_argument("--realtime", action="store_true",
                        help="run the loop (and a spawned mock) at SCHED_FIFO priority")
    parser.add_argument("--log", metavar="PATH", help="write the cycle log (JSON lines)")
    parser.add_argument("--json", metavar="OUT", help="write the result as JSON")
    parser.add_argument("--note", help="a remark stored in the JSON (conditions, caveats)")


def run(args) -> int:
    from metabot.deploy.report import write_json
    from metabot.errors import ConfigError

    if args.codec:
        from metabot.bench.codec import run_codec_bench

        result = run_codec_bench()
    else:
        from metabot.bench.link import run_link_bench

        if not args.robot and not args.spawn_mock:
            raise ConfigError("give --robot URL, --spawn-mock or --codec")
        if args.seconds <= 0:
            raise ConfigError(f"--seconds must be > 0, got {args.seconds}")
        try:
            rates = [float(r) for r in args.rates.split(",")] if args.rates else [args.rate]
        except ValueError:
            raise ConfigError(
                f"--rates must be comma-separated numbers, got {args.rates!r}") from None
        if any(r <= 0 for r in rates):
            raise ConfigError("rates must be > 0 Hz")
        from metabot.errors import MetabotError

        def one(rate):
            return run_link_bench(args.robot, rate, args.seconds, baudrate=args.baud,
                                  log_path=args.log, spawn_mock=args.spawn_mock,
                                  realtime=args.realtime)

        if len(rates) == 1:
            result = one(rates[0])
        else:  # a sweep records a rate that fails (e.g. the watchdog tripped) and goes on
            runs = []
            for r in rates:
                try:
                    runs.append(one(r))
                except MetabotError as exc:
                    runs.append({"rate_hz": r, "error": str(exc)})
            result = {"runs": runs}
    if args.note:
        result["note"] = args.note
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        write_json(args.json, result)
    return 0
