"""The demo's closing report on the terminal (rich): S(k), tip errors, timing, files."""

from __future__ import annotations

from typing import Any


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def print_report(console: Any, rep: dict[str, Any]) -> None:
    from rich.panel import Panel
    from rich.table import Table

    test = rep.get("test") or {}
    table = Table(title="Online adaptation on held-out mock robots (test split)")
    table.add_column("budget k (control steps)", justify="right")
    table.add_column("S(k)", justify="right")
    table.add_column("95% interval", justify="right")
    table.add_column("return", justify="right")
    table.add_column("final tip error (mm)", justify="right")
    for k, s in (test.get("normalized_score") or {}).items():
        ci = (test.get("ci95") or {}).get(k)
        tip = test["tip_error_mm"]["rma"][k]["final_mm"]
        table.add_row(k, _f(s), "-" if not ci else f"[{ci[0]:.2f}, {ci[1]:.2f}]",
                      _f(test["return"][k]), _f(tip, "{:.1f}"))
    if test:
        tip = test["tip_error_mm"]
        table.add_row("dr baseline", "0", "", _f(test["dr_return"]),
                      _f(tip["dr"]["final_mm"], "{:.1f}"))
        table.add_row("oracle", "1", "", _f(test["oracle_return"]),
                      _f(tip["oracle"]["final_mm"], "{:.1f}"))
    console.print(table)
    if test and not test.get("worth_adapting"):
        gap = test.get("gap_ci95") or [float("nan")] * 2
        console.print(f"[yellow]the oracle is not clearly better than dr on these robots "
                      f"(oracle - dr return, 95% interval [{gap[0]:.1f}, {gap[1]:.1f}]): S(k) "
                      "is not defined, compare the returns and tip errors instead[/]")
    fault = rep.get("fault") or {}
    if fault:
        kmax = max(fault["normalized_score"], key=int)
        s = fault["normalized_score"]
        ci = fault["ci95"]
        parts = [f"S({k}) = {_f(v)}" + (f" [{ci[k][0]:.2f}, {ci[k][1]:.2f}]" if ci.get(k) else "")
                 for k, v in s.items()]
        console.print(f"fault split ({fault['tasks']} robots, payload x3 + a weak servo): "
                      + ", ".join(parts)
                      + f"; final tip error dr {fault['tip_error_mm']['dr']['final_mm']:.1f} mm,"
                      f" oracle {fault['tip_error_mm']['oracle']['final_mm']:.1f} mm,"
                      f" rma({kmax}) {fault['tip_error_mm']['rma'][kmax]['final_mm']:.1f} mm")
    pc = rep.get("payload_change") or {}
    if pc:
        ttr = pc["time_to_recover_steps"]
        console.print(
            f"payload change {pc['from_kg']:.2f} -> {pc['to_kg']:.2f} kg at step {pc['step']}: "
            f"time to recover (within 10% of the oracle's rolling tip error) rma "
            f"{_f(ttr['rma'], '{:d} steps')}, dr {_f(ttr['dr'], '{:d} steps')}; "
            f"tip error 50 steps after: rma {pc['tip_error_mm_50_after']['rma']:.1f} mm, "
            f"dr {pc['tip_error_mm_50_after']['dr']:.1f} mm, "
            f"oracle {pc['tip_error_mm_50_after']['oracle']:.1f} mm"
            + ("" if pc.get("reference_meaningful", True) else
               " [yellow](the oracle tracks no better than dr here: recovery times are not "
               "meaningful)[/]"))
    t = rep.get("loop_timing") or {}
    if t:
        console.print(
            f"control loop: {t['rate_hz']:.0f} Hz over the serial link, period p50 "
            f"{t['period_p50_us'] / 1e3:.2f} ms, jitter p99 (median over runs) "
            f"{t['jitter_p99_us_median'] / 1e3:.2f} ms, missed deadlines "
            f"{100 * t['missed_fraction']:.1f}%, round trip p50 {t['rtt_p50_us'] / 1e3:.1f} ms, "
            f"agent act p50/p99 {t['act_p50_us']:.0f}/{t['act_p99_us']:.0f} us, oldest state "
            f"acted on {_f(t.get('max_state_age_ms'), '{:.0f}')} ms")
    retries = rep.get("link_loss_retries") or []
    if retries:
        console.print(f"[yellow]{len(retries)} trial(s) re-run after a link loss (a starved "
                      "process; the mock's watchdog held the arm each time): see "
                      "report.json link_loss_retries[/]")
    held = set((rep.get("mock_status_after") or {}).values())
    files = rep.get("files") or {}
    body = "\n".join(f"{k:>12}: {v}" for k, v in files.items())
    console.print(Panel(body, title=f"files (demo took {rep.get('wall_s', 0):.0f} s; "
                                    f"mock robots left {', '.join(sorted(held))})"))
