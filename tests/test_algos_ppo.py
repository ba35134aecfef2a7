"""PPO core against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from metabot.algos.nets import RunningNorm
from metabot.algos.ppo import gae, gaussian_log_prob, ppo_loss


def test_gae_matches_hand_computation():
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [1.0], [1.5]])
    dones = np.array([[0.0], [0.0], [1.0]])
    adv, ret = gae(rewards, values, dones, np.array([10.0]), gamma=0.9, lam=0.8)
    # delta2 = 3 - 1.5; delta1 = 2 + .9*1.5 - 1; delta0 = 1 + .9*1 - .5
    a2 = 1.5
    a1 = 2.35 + 0.9 * 0.8 * a2
    a0 = 1.4 + 0.9 * 0.8 * a1
    np.testing.assert_allclose(adv[:, 0], [a0, a1, a2], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [a0 + 0.5, a1 + 1.0, a2 + 1.5], rtol=1e-6)


def test_gae_bootstraps_last_value_and_stops_at_dones():
    adv, _ = gae(np.array([[1.0]]), np.array([[0.0]]), np.array([[0.0]]), np.array([2.0]),
                 gamma=0.5, lam=1.0)
    assert adv[0, 0] == pytest.approx(2.0)  # 1 + 0.5 * 2
    # a done in the middle cuts both the bootstrap and the advantage trace
    rewards = np.array([[1.0], [5.0]])
    values = np.zeros((2, 1))
    adv, _ = gae(rewards, values, np.array([[1.0], [0.0]]), np.array([0.0]), 0.9, 0.9)
    assert adv[0, 0] == pytest.approx(1.0)
    assert adv[1, 0] == pytest.approx(5.0)


def test_ppo_loss_matches_hand_computation():
    new_logp = torch.tensor([0.0, math.log(1.5), math.log(0.5)])
    old_logp = torch.zeros(3)
    adv = torch.tensor([1.0, 1.0, -1.0])
    new_v = torch.tensor([1.0, 0.0, 0.5])
    old_v = torch.tensor([0.5, 0.5, 0.5])
    returns = torch.tensor([2.0, 0.0, 0.5])
    entropy = torch.tensor([1.0, 1.0, 1.0])
    loss, stats = ppo_loss(new_logp, old_logp, adv, new_v, old_v, returns, entropy,
                           clip_coef=0.2, vf_coef=0.5, ent_coef=0.01)
    # pg: max(-1, -1) = -1; max(-1.5, -1.2) = -1.2; adv<0, ratio .5: max(.5, .8) = .8
    pg = (-1.0 - 1.2 + 0.8) / 3
    # value: clipped 0.7 vs 2 -> 1.69 > 1; clipped 0.3 vs 0 -> 0.09 > 0; 0 -> 0
    v = 0.5 * (1.69 + 0.09 + 0.0) / 3
    assert stats["pg_loss"] == pytest.approx(pg, rel=1e-6)
    assert stats["v_loss"] == pytest.approx(v, rel=1e-6)
    assert loss.item() == pytest.approx(pg + 0.5 * v - 0.01, rel=1e-6)
    assert stats["clipfrac"] == pytest.approx(2 / 3)


def test_gaussian_log_prob_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(5, 3, generator=g)
    log_std = torch.randn(3, generator=g) * 0.3
    a = torch.randn(5, 3, generator=g)
    ref = torch.distributions.Normal(mean, log_std.exp()).log_prob(a).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(mean, log_std, a), ref)


def test_running_norm_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (7, 50, 3)]
    norm = RunningNorm(4)
    for c in chunks:
        norm.update(torch.as_tensor(c, dtype=torch.float32))
    allx = np.concatenate(chunks)
    np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(norm.var.numpy(), allx.var(0), rtol=1e-3, atol=1e-3)


def test_lr_annealing_is_linear_in_steps_and_optional():
    from metabot.algos.ppo import PPOConfig, anneal_lr

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    anneal_lr(opt, PPOConfig(lr=1e-3, anneal_lr=True), done=250, total=1000)
    assert opt.param_groups[0]["lr"] == pytest.approx(7.5e-4)
    anneal_lr(opt, PPOConfig(lr=1e-3, anneal_lr=False), done=999, total=1000)
    assert opt.param_groups[0]["lr"] == pytest.approx(7.5e-4)  # untouched
