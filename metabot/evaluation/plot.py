"""The adaptation-curve figure (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curve(report: dict[str, Any], path: str | Path) -> Path:
    """Left: S(k) with its 95% interval against dr (0) and oracle (1). Right: raw returns
    R_k with intervals against both baselines' returns (always drawn, also where S is not
    reported because the distribution is not worth adapting to)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(report["return"], key=float)
    x = [float(k) for k in ks]
    fig, (ax_s, ax_r) = plt.subplots(1, 2, figsize=(10, 4))
    unit = report.get("budget_unit", "steps")
    title = f"{report.get('algo')} on {report.get('tasks')} ({report.get('split')})"
    for ax in (ax_s, ax_r):
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel(f"adaptation budget k ({unit})")
        ax.grid(alpha=0.3)
    if report.get("worth_adapting"):
        s = [report["normalized_score"][k] for k in ks]
        lo = [report["ci95"][k][0] for k in ks]
        hi = [report["ci95"][k][1] for k in ks]
        ax_s.fill_between(x, lo, hi, alpha=0.25, label="95% CI (bootstrap over tasks)")
        ax_s.plot(x, s, "o-", label=f"{report.get('algo')} S(k)")
        ax_s.axhline(0.0, color="tab:red", ls="--", label="dr = 0")
        ax_s.axhline(1.0, color="tab:green", ls="--", label="oracle = 1")
        ax_s.set_ylabel("normalized score S(k)")
        ax_s.legend(fontsize=8)
    else:
        ax_s.text(0.5, 0.5, "oracle not clearly better than dr:\nS not reported",
                  ha="center", va="center", transform=ax_s.transAxes)
    r = [report["return"][k] for k in ks]
    rlo = [report["return_ci95"][k][0] for k in ks]
    rhi = [report["return_ci95"][k][1] for k in ks]
    ax_r.fill_between(x, rlo, rhi, alpha=0.25)
    ax_r.plot(x, r, "o-", label=f"{report.get('algo')} R_k")
    ax_r.axhline(report["dr_return"], color="tab:red", ls="--", label="dr")
    ax_r.axhline(report["oracle_return"], color="tab:green", ls="--", label="oracle")
    ax_r.set_ylabel("evaluation-episode return")
    ax_r.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
