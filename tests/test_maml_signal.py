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


def _episodes(rng: np.random.Generator, n: int = 40, feat_dim: int = 3):
    feats = rng.standard_normal((n, feat_dim))
    actions = rng.standard_normal((n, 2))
    rewards = rng.standard_normal(n)
    ends = np.zeros(n)
    ends[n // 2 - 1] = ends[-1] = 1.0
    return feats, Episodes(feats, feats, actions, np.zeros(n), rewards, ends)


def test_shared_value_fn_recovers_a_value_that_is_linear_in_the_features():
    """Rewards built so the discounted return is exactly [features, 1] @ w."""
    from metabot.algos.maml_signal import shared_value_fn

    rng = np.random.default_rng(2)
    w = np.array([0.5, -1.0, 2.0, 0.3])
    feats, eps = [], []
    for _ in range(4):
        f, e = _episodes(rng)
        v = np.c_[f, np.ones(len(f))] @ w
        nxt = np.r_[v[1:], 0.0] * (1.0 - e.ends)  # V of the next state, 0 past an episode end
        e.rewards[:] = v - 0.9 * nxt
        feats.append(f)
        eps.append(e)
    np.testing.assert_allclose(shared_value_fn(feats, eps, 0.9, reg=1e-9), w, atol=1e-6)


def test_td_pg_statistic_at_lambda_one_is_the_gradient_of_returns_minus_the_value():
    """GAE(1) of TD residuals telescopes to the discounted return minus V."""
    import torch

    from metabot.algos.maml_numpy_head import head_gradient
    from metabot.algos.maml_signal import td_pg_statistic
    from metabot.runtime.head import discounted_returns

    rng = np.random.default_rng(3)
    f, e = _episodes(rng)
    params = {"head.weight": torch.randn(2, 3, dtype=torch.float64),
              "head.bias": torch.randn(2, dtype=torch.float64),
              "log_std": torch.full((2,), -0.5, dtype=torch.float64)}
    value_w = rng.standard_normal(4)
    adv = discounted_returns(e.rewards, e.ends.astype(bool), 0.95) - np.c_[f, np.ones(40)] @ value_w
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    g_w, g_b = head_gradient(f, e.actions, adv, *(params[k].numpy() for k in
                                                  ("head.weight", "head.bias", "log_std")))
    np.testing.assert_allclose(td_pg_statistic(f, params, e, value_w, 0.95, lam=1.0),
                               np.r_[g_w.ravel(), g_b], atol=1e-10)
