"""The deploy report's arithmetic: normalized score, bootstrap interval, recovery time, files."""

import json

import numpy as np
import pytest

from metabot.deploy import report


def test_summary_uses_the_protocol_arithmetic():
    dr = np.array([-10.0, -20.0, -15.0])  # mean -15
    oracle = np.array([-2.0, -4.0, -3.0])  # mean -3
    adapted = {0: [-15.0, -15.0, -15.0], 50: [-6.0, -6.0, -6.0]}  # S = 0 and 0.75
    out = report.adaptation_summary(adapted, dr, oracle, seed=3)
    assert out["normalized_score"]["0"] == pytest.approx(0.0)
    assert out["normalized_score"]["50"] == pytest.approx(0.75)
    lo, hi = out["ci95"]["50"]
    assert lo <= 0.75 <= hi
    assert out["worth_adapting"] and out["budget_unit"] == "control_steps"
    assert report.adaptation_summary(adapted, dr, oracle, seed=3) == out  # seeded
    same = report.adaptation_summary(adapted, dr, dr, seed=3)  # no gap: no S reported
    assert same["normalized_score"]["50"] is None and not same["worth_adapting"]


def test_time_to_recover_and_smoothness():
    ref = np.full(200, 10.0)
    err = np.concatenate([np.full(100, 10.0), np.full(30, 50.0), np.full(70, 10.0)])
    # Switch at step 100; the 20-step mean is within 10% of the oracle's once the last
    # 20 steps are all back at 10 mm, i.e. 30 + 20 = 50 steps after the switch.
    assert report.time_to_recover(err, ref, 100) == 50
    assert report.time_to_recover(np.full(200, 50.0), ref, 100) is None
    a = np.array([[0.0, 0.0], [1.0, -1.0], [1.0, -1.0]])
    assert report.smoothness(a) == pytest.approx(0.5)


def test_summary_json_and_plots(tmp_path):
    dr, oracle = [-10.0, -12.0, -11.0], [-2.0, -3.0, -2.5]
    adaptive = {0: [-9.0, -11.0, -10.0], 50: [-4.0, -5.0, -4.5], 200: [-3.0, -3.5, -3.0]}
    summary = report.adaptation_summary(adaptive, dr, oracle, seed=1)
    assert set(summary["normalized_score"]) == {"0", "50", "200"}
    assert summary["normalized_score"]["0"] < summary["normalized_score"]["200"]
    path = report.write_json(tmp_path / "report.json", {**summary, "bad": float("nan")})
    loaded = json.loads(path.read_text())
    assert loaded["bad"] is None and loaded["dr_return"] == pytest.approx(-11.0)
    png = report.plot_score_curve(tmp_path / "s.png", summary, "S(k)")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png2 = report.plot_tip_error(
        tmp_path / "tip.png", {"rma": np.linspace(50, 5, 100)}, 0.02, "tip", switch_step=50
    )
    assert png2.stat().st_size > 1000
