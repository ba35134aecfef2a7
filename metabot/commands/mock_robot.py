"""`metabot mock-robot`: run the MuJoCo-backed mock robot on a pty or a local TCP port.

Prints the port (a pty path, or socket://127.0.0.1:PORT) as the first line of stdout, then
runs in real time until Ctrl-C, SIGTERM or --duration.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve on a new pseudo-terminal")
    where.add_argument("--tcp", type=int, metavar="PORT",
                       help="serve on 127.0.0.1:PORT (0: any free port)")
    parser.add_argument("--task", default="arm6-reach", help="arm task distribution")
    parser.add_argument("--split", default="test", help="split the hidden task is drawn from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task-index", type=int, default=0)
    parser.add_argument("--baud", type=int, default=1_000_000,
                        help="wire rate the mock throttles to (8N1)")
    parser.add_argument("--state-rate", type=float, default=1000.0,
                        help="STATE stream rate in Hz (capped by the wire)")
    parser.add_argument("--no-latency", action="store_true",
                        help="no transport latency (default 0.5-2 ms each way)")
    parser.add_argument("--boot", choices=("hold", "torque_off"), default="hold",
                        help="what the servos do at power-on and after a reboot")
    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--drop", type=float, default=0.0, help="per-byte drop probability")
    faults.add_argument("--corrupt", type=float, default=0.0,
                        help="per-byte bit-flip probability")
    faults.add_argument("--delay-prob", type=float, default=0.0,
                        help="per-chunk probability of a line stall")
    faults.add_argument("--delay-ms", type=float, default=0.0, help="stall length")
    faults.add_argument("--disconnect-every", type=float, metavar="S",
                        help="cut the link every S seconds")
    faults.add_argument("--disconnect-for", type=float, default=0.5, metavar="S")
    faults.add_argument("--reboot-every", type=float, metavar="S",
                        help="reboot the MCU every S seconds")
    side = parser.add_argument_group("test-only side channel (never the robot protocol)")
    side.add_argument("--control-port", type=int, metavar="PORT",
                      help="JSON-lines control server on 127.0.0.1:PORT (0: any free port; "
                           "printed on stderr): params, status, payload, faults, reboot, "
                           "disconnect")
    side.add_argument("--params-json", metavar="PATH",
                      help="write the hidden parameters to PATH at start")
    parser.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=True,
                        help="run at SCHED_FIFO priority where allowed, as an MCU runs in real "
                             "time (default on; it needs about a fifth of a core)")
    parser.add_argument("--duration", type=float, help="exit after S seconds")


def run(args) -> int:
    from metabot.errors import ConfigError
    from metabot.hardware.mock_robot import (
        ControlServer,
        MockRobot,
        PtyTransport,
        TcpTransport,
        write_params,
    )
    from metabot.hardware.mock_wire import WireFaults

    for name in ("drop", "corrupt", "delay_prob"):
        v = getattr(args, name)
        if not 0 <= v <= 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be a probability in [0, 1]")
    if args.tcp is not None and not 0 <= args.tcp <= 65535:
        raise ConfigError(f"--tcp port must be 0-65535, got {args.tcp}")
    mock = MockRobot(task=args.task, split=args.split, seed=args.seed,
                     task_index=args.task_index, baud=args.baud, state_rate_hz=args.state_rate,
                     latency=not args.no_latency, boot=args.boot,
                     faults=WireFaults(args.drop, args.corrupt, args.delay_prob, args.delay_ms),
                     disconnect_every=args.disconnect_every,
                     disconnect_for=args.disconnect_for, reboot_every=args.reboot_every)
    if args.params_json:
        write_params(mock, args.params_json)
    from metabot.hardware.realtime import current_policy, enable_realtime

    # Before any thread starts: threads inherit the scheduling policy.
    sched = enable_realtime() if args.realtime else current_policy()
    try:
        transport = PtyTransport(mock) if args.pty else TcpTransport(mock, args.tcp)
    except OSError as exc:
        raise ConfigError(f"cannot serve the mock robot: {exc}") from None
    control = ControlServer(mock, args.control_port) if args.control_port is not None else None
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    mock.start()
    print(transport.path if args.pty else transport.url, flush=True)
    if control is not None:
        print(f"control: 127.0.0.1:{control.port}", file=sys.stderr, flush=True)
    print(f"mock robot: {args.task} {args.split} seed={args.seed} index={args.task_index}, "
          f"{args.baud} baud, sched={sched}; Ctrl-C to stop", file=sys.stderr, flush=True)
    stop.wait(args.duration)
    mock.stop()
    transport.close()
    if control is not None:
        control.close()
    return 0
