"""`metabot eval`: the adaptation curve S(k) of a trained run against dr and oracle."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a trained run directory")
    parser.add_argument("--split", default="test", choices=["test", "ood", "fault"])
    parser.add_argument("--json", required=True, help="write the report JSON here")
    parser.add_argument("--plot", default=None, help="write the curve PNG here")
    parser.add_argument("--tasks-n", type=int, default=32, dest="n_tasks",
                        help="held-out tasks (default 32)")
    parser.add_argument("--seeds", type=int, default=2, dest="n_seeds",
                        help="evaluation seeds per task (default 2)")
    parser.add_argument("--dr", default=None, help="dr baseline run (default: cached/trained)")
    parser.add_argument("--oracle", default=None, help="oracle baseline run (default: cached)")
    parser.add_argument("--baselines", default=None,
                        help="cache root of baselines (default runs/baselines)")
    parser.add_argument("--budgets", default=None,
                        help="comma-separated budgets (default: the algorithm's unit's list)")
    parser.add_argument("--no-recover", action="store_true",
                        help="skip the mid-episode switch (time-to-recover) experiment")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from metabot.errors import ConfigError

    budgets = None
    if args.budgets:
        try:
            budgets = [int(b) for b in args.budgets.split(",")]
        except ValueError:
            raise ConfigError(f"--budgets must be integers, got {args.budgets!r}") from None
    if args.n_tasks < 2 or args.n_seeds < 1:
        raise ConfigError("--tasks-n must be >= 2 and --seeds >= 1")
    import torch

    torch.set_num_threads(1)  # small batches: threads only add contention on shared cores
    from metabot.algos.runs import atomic_write_json
    from metabot.evaluation.plot import plot_curve
    from metabot.evaluation.report import evaluate_run

    report = evaluate_run(
        args.run_dir, args.split, dr_run=args.dr, oracle_run=args.oracle,
        baselines_root=args.baselines, budgets=budgets, n_tasks=args.n_tasks,
        n_seeds=args.n_seeds, recover=not args.no_recover,
    )
    atomic_write_json(Path(args.json), report)
    if args.plot:
        plot_curve(report, args.plot)
    print(_summary(report))
    print(f"wrote {args.json}" + (f" and {args.plot}" if args.plot else ""))
    return 0


def _summary(r: dict) -> str:
    lines = [f"{r['algo']} on {r['tasks']} ({r['split']}, {r['n_tasks']} tasks x {r['n_seeds']} "
             f"seeds): dr {r['dr_return']:.2f}, oracle {r['oracle_return']:.2f}"]
    if not r["worth_adapting"]:
        lines.append("oracle not clearly better than dr (gap CI not above 0): not worth adapting "
                     "to, or undertrained baselines (S not reported)")
    for k in r["return"]:
        s, ci = r["normalized_score"][k], r["ci95"][k]
        s_txt = f"S={s:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if s is not None else "S=n/a"
        gain = r.get("gain_over_dr", {}).get(k)
        if gain is not None:
            g_lo, g_hi = r["gain_over_dr_ci95"][k]
            s_txt += f"  R-R_dr={gain:+.2f} [{g_lo:+.2f}, {g_hi:+.2f}]"
        err = r["physical"][k].get("mean_tip_error_mm")
        err_txt = f"  mean tip error {err:.1f} mm" if err is not None else ""
        lines.append(f"  k={k:>4} {r['budget_unit']}: R={r['return'][k]:.2f}  {s_txt}{err_txt}")
    ratio = r.get("dr_over_oracle_tip_error")
    if ratio is not None:
        lo, hi = r.get("dr_over_oracle_tip_error_ci95", [float("nan")] * 2)
        lines.append(f"dr / oracle mean tip error: {r['dr_physical']['mean_tip_error_mm']:.1f} / "
                     f"{r['oracle_physical']['mean_tip_error_mm']:.1f} mm = {ratio:.2f} "
                     f"[{lo:.2f}, {hi:.2f}]")
    return "\n".join(lines)
