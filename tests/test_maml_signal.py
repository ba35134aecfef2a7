"""The readout behind metabot.algos.maml_signal: it must find information that is there
and report none where there is none."""

from __future__ import annotations

import numpy as np

from metabot.algos.gradient_sampler import Episodes
from metabot.algos.maml_signal import ridge_r2, sysid_statistic


def test_ridge_r2_finds_a_linear_signal_and_no_signal_in_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 30))
    y = np.stack([x[:, :3] @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(200),
                  rng.standard_normal(200)], axis=1)
    r2 = ridge_r2(x, y)
    assert r2[0] > 0.95
    assert r2[1] < 0.1


def test_sysid_statistic_reads_the_actuator_gain():
    """On x' = x + gain * a, the fitted action column is the gain, task by task."""
    rng = np.random.default_rng(1)
    stats = []
    for gain in (0.2, 1.0):
        n = 60
        obs = np.zeros((n, 1))
        actions = rng.uniform(-0.9, 0.9, (n, 1))
        for t in range(n - 1):
            obs[t + 1] = obs[t] + gain * actions[t]
        ends = np.zeros(n)
        ends[-1] = 1.0
        e = Episodes(obs, obs, actions, np.zeros(n), np.zeros(n), ends)
        stats.append(sysid_statistic(e, lags=1))
    # coefficients [obs, a_t, a_{t-1}, 1] for the one output
    np.testing.assert_allclose([s[1] for s in stats], [0.2, 1.0], atol=1e-6)
