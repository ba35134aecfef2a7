"""The normalized-score arithmetic, its bootstrap interval, and the physical metrics."""

import numpy as np
import pytest

from metabot.evaluation import metrics, score


def test_normalized_score_arithmetic():
    dr = np.array([-10.0, -20.0])  # mean -15
    oracle = np.array([-5.0, -5.0])  # mean -5
    assert score.normalized_score(dr, dr, oracle) == 0.0
    assert score.normalized_score(oracle, dr, oracle) == 1.0
    assert score.normalized_score(np.array([-10.0, -10.0]), dr, oracle) == pytest.approx(0.5)
    assert np.isnan(score.normalized_score(dr, dr, dr))


def test_seeds_are_averaged_per_task_before_tasks():
    r = np.array([[1.0, 3.0], [10.0, 10.0]])
    np.testing.assert_array_equal(score.per_task_mean(r), [2.0, 10.0])


def test_curve_reports_s_with_an_interval_only_when_the_gap_is_clear():
    rng = np.random.default_rng(0)
    n = 40
    dr = rng.normal(-20, 2, n)
    oracle = dr + rng.normal(8, 1, n)  # clear gap
    k0 = dr + rng.normal(1, 1, n)
    k1 = dr + rng.normal(6, 1, n)
    out = score.adaptation_curve({0: k0, 50: k1}, dr, oracle, n_boot=500, seed=1)
    assert out["worth_adapting"]
    for k, r in (("0", k0), ("50", k1)):
        s = out["normalized_score"][k]
        lo, hi = out["ci95"][k]
        assert s == pytest.approx((r.mean() - dr.mean()) / (oracle.mean() - dr.mean()))
        assert lo < s < hi and hi - lo < 0.5
    assert out["normalized_score"]["50"] > out["normalized_score"]["0"]
    assert out["return"]["50"] == pytest.approx(k1.mean())
    assert out["gain_over_dr"]["50"] == pytest.approx((k1 - dr).mean())
    lo, hi = out["gain_over_dr_ci95"]["50"]
    assert 0 < lo < out["gain_over_dr"]["50"] < hi  # paired: tight despite task spread
    # more tasks -> narrower interval
    big = score.adaptation_curve({0: np.tile(k0, 4)}, np.tile(dr, 4), np.tile(oracle, 4),
                                 n_boot=500, seed=1)
    assert np.diff(big["ci95"]["0"])[0] < np.diff(out["ci95"]["0"])[0]
    # no clear gap: S is withheld
    noise = rng.normal(0, 5, n)
    flat = score.adaptation_curve({0: k0}, dr, dr + noise, n_boot=500, seed=1)
    assert not flat["worth_adapting"]
    assert flat["normalized_score"]["0"] is None and flat["ci95"]["0"] is None
    assert flat["gap_ci95"][0] < 0 < flat["gap_ci95"][1]
    # an oracle clearly worse than dr is a failed baseline, not a score
    worse = score.adaptation_curve({0: k0}, dr, dr - 5.0, n_boot=500, seed=1)
    assert not worse["worth_adapting"] and worse["normalized_score"]["0"] is None


def test_bootstrap_is_deterministic_for_a_seed():
    x = np.arange(10.0)
    assert score.mean_ci(x, 200, 5) == score.mean_ci(x, 200, 5)
    assert score.mean_ci(x, 200, 5) != score.mean_ci(x, 200, 6)


def test_ratio_interval_resamples_tasks_together():
    dr = np.array([10.0, 20.0, 30.0, 140.0])
    oracle = dr / 2.0  # every task 2x: every resample gives 2 exactly
    assert score.ratio_ci(dr, oracle, n_boot=200, seed=3) == pytest.approx((2.0, 2.0))
    # one heavy task decides the mean: the interval must straddle the point ratio widely
    oracle = np.array([10.0, 20.0, 30.0, 35.0])
    lo, hi = score.ratio_ci(dr, oracle, n_boot=2000, seed=3)
    point = dr.mean() / oracle.mean()
    assert lo < point < hi and lo < 1.3 and hi > 2.5
    idx = score.bootstrap_indices(4, 2000, 3)  # the same resamples, by hand
    r = dr[idx].mean(1) / oracle[idx].mean(1)
    assert (lo, hi) == pytest.approx((np.quantile(r, 0.025), np.quantile(r, 0.975)))


def test_physical_metrics_by_hand():
    err = np.array([[0.05, 0.05], [0.02, 0.005], [0.008, 0.02], [0.004, 0.003]])  # [T=4, N=2]
    m = metrics.tip_error_mm(err)
    np.testing.assert_allclose(m["final_tip_error_mm"], [4.0, 3.0])
    np.testing.assert_allclose(m["mean_tip_error_mm"], [20.5, 19.5])
    # env 0 is inside 10 mm from step 3 on; env 1 leaves the band at step 3, back at step 4
    np.testing.assert_array_equal(metrics.settle_steps(err, 0.01), [3.0, 4.0])
    assert np.isnan(metrics.settle_steps(np.array([[0.0], [0.5]]), 0.01)[0])
    a = np.array([[[0.0, 0.0]], [[1.0, -1.0]], [[1.0, 0.0]]])  # [T=3, N=1, A=2]
    np.testing.assert_allclose(metrics.smoothness(a), [(1 + 1 + 0 + 1) / 4])


def test_time_to_recover():
    T, s = 60, 10
    oracle = np.full((T, 1), 0.01)
    agent = np.full((T, 1), 0.01)
    agent[s : s + 25] = 0.05  # 25 bad steps after the switch
    steps = metrics.time_to_recover(agent, oracle, s, window=20, tolerance=0.1)
    # the rolling 20-step mean is back within 10% once the window holds no bad step
    assert steps[0] == 45.0
    same = metrics.time_to_recover(oracle, oracle, s, window=20)
    assert same[0] == 20.0  # earliest possible: one full window
    never = metrics.time_to_recover(np.full((T, 1), 1.0), oracle, s)
    assert np.isnan(never[0])
