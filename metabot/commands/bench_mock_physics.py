"""`metabot bench mock-physics [--agents DIR] [--draws N] [--goals G] --json OUT`: the demo's
S(k) on the mock robot's physics, stepped synchronously with a fixed link delay, on many
goals per robot (metabot.deploy.mock_physics)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agents", metavar="DIR",
                        help="arm6-reach-{rma,dr,oracle}.onnx from DIR (default: the shipped ones)")
    parser.add_argument("--draws", type=int, default=20, help="mock robots (default 20)")
    parser.add_argument("--goals", type=int, default=4,
                        help="evaluation goals per robot (default 4)")
    parser.add_argument("--split", choices=("test", "fault"), default="test")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the draws and goals (default 0, the demo's)")
    parser.add_argument("--link-delay-ms", type=float, default=5.0,
                        help="state read to command acting, in ms (default 5: the demo's link)")
    parser.add_argument("--jobs", type=int, default=2, help="robots simulated at once (processes)")
    parser.add_argument("--json", metavar="OUT", help="write the result here")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    from metabot.deploy import mock_physics, report
    from metabot.deploy.demo import shipped_agents
    from metabot.errors import ConfigError

    if args.draws < 2 or args.goals < 1 or args.jobs < 1:
        raise ConfigError(
            "need --draws >= 2 (the interval is over robots), --goals >= 1 and --jobs >= 1")
    if not 0 <= args.link_delay_ms <= 20:
        raise ConfigError(
            f"--link-delay-ms must be 0-20 (one control period), got {args.link_delay_ms}")
    paths = {k: str(v) for k, v in shipped_agents(args.agents).items()}
    console = Console()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(f"{args.draws} mock robots x {args.goals} goals", total=args.draws)
        res = mock_physics.evaluate(
            paths, draws=args.draws, goals=args.goals, split=args.split, seed=args.seed,
            link_delay_ms=args.link_delay_ms, jobs=args.jobs,
            progress=lambda done, _n: bar.update(task, completed=done))
    s, ci = res["normalized_score"], res["ci95"]
    console.print(f"[bold]{res['measured_on']}[/], {args.split} split, {args.draws} robots x "
                  f"{args.goals} goals, link delay {args.link_delay_ms} ms")
    console.print(f"dr {res['dr_return']:.1f}  oracle {res['oracle_return']:.1f}  "
                  f"gap 95% CI {[round(x, 1) for x in res['gap_ci95']]}")
    for k, v in s.items():
        interval = "n/a" if ci[k] is None else f"[{ci[k][0]:.2f}, {ci[k][1]:.2f}]"
        value = "not defined" if v is None else f"{v:.2f}"
        console.print(f"  S({k}) = {value} {interval}   return {res['return'][k]:.1f}")
    k = max(res["return"], key=int)
    console.print(f"by latency draw (sums over robots; share = what RMA after {k} steps closes)")
    for lat, g in res["gap_by_latency"].items():
        share = "n/a" if g["share"] is None else f"{g['share']:.2f}"
        console.print(f"  latency {lat}: {g['robots']} robots, "
                      f"oracle - dr {g['oracle_minus_dr']:+.1f}, "
                      f"RMA - dr {g['adaptive_minus_dr']:+.1f}, share {share}")
    if args.json:
        report.write_json(args.json, res)
        console.print(f"wrote {args.json}")
    return 0
