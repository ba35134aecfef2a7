"""PPO pieces shared by every policy-gradient algorithm, in the CleanRL spirit.

Pure functions (GAE, the clipped loss, Gaussian log-probabilities) so each can be checked
against hand-computed values, plus `PPOConfig` (the hyper-parameters every PPO-trained
algorithm shares) and `ppo_update` (epochs x minibatches of the clipped objective with a
clipped, normalized value loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from metabot.algos.config import positive
from metabot.errors import ConfigError


@dataclass(frozen=True)
class PPOConfig:
    """Hyper-parameters shared by the PPO-trained algorithms (dr, oracle, rma, rl2)."""

    num_envs: int = 32
    episodes_per_rollout: int = 1  # per env; every rollout starts on freshly sampled tasks
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    update_epochs: int = 5
    num_minibatches: int = 4
    target_kl: float = 0.05
    anneal_lr: bool = False  # decay lr linearly to 0 over the run's step budget
    init_log_std: float = -1.0

    def validate(self) -> None:
        positive(self, "num_envs", "episodes_per_rollout", "lr", "update_epochs", "num_minibatches")
        for key in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"config key {key!r} must lie in [0, 1]")


def anneal_lr(optimizer: torch.optim.Optimizer, cfg: PPOConfig, done: int, total: int) -> None:
    """Set the learning rate for the coming update (linear decay when cfg.anneal_lr)."""
    if cfg.anneal_lr:
        lr = cfg.lr * max(0.0, 1.0 - done / max(total, 1))
        for group in optimizer.param_groups:
            group["lr"] = lr


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    dones: np.ndarray,
    last_value: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over [T, N] arrays.

    `dones[t]` is 1 where transition t ended its episode (no bootstrap past it; time-limit
    bootstrapping is folded into `rewards` by the caller); `last_value` [N] bootstraps the
    step after the rollout. Returns (advantages, returns = advantages + values).
    """
    T = rewards.shape[0]
    adv = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1:], dtype=np.float64)
    for t in reversed(range(T)):
        next_value = last_value if t == T - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * nonterminal - values[t]
        running = delta + gamma * lam * nonterminal * running
        adv[t] = running
    adv = adv.astype(np.float32)
    return adv, (adv + values).astype(np.float32)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, action: torch.Tensor):
    """Sum over action dims of the diagonal-Gaussian log density."""
    var = torch.exp(2 * log_std)
    return (-((action - mean) ** 2) / (2 * var) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(log_std: torch.Tensor, batch_shape: torch.Size) -> torch.Tensor:
    ent = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)
    return ent.expand(batch_shape)


def ppo_loss(
    new_log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    new_value: torch.Tensor,
    old_value: torch.Tensor,
    returns: torch.Tensor,
    entropy: torch.Tensor,
    clip_coef: float,
    vf_coef: float,
    ent_coef: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate + clipped value loss - entropy bonus (values in normalized units).

    Advantages are used as given (normalize them before calling if wanted).
    """
    log_ratio = new_log_prob - old_log_prob
    ratio = log_ratio.exp()
    pg_loss = torch.max(
        -advantages * ratio, -advantages * torch.clamp(ratio, 1 - clip_coef, 1 + clip_coef)
    ).mean()
    v_clipped = old_value + torch.clamp(new_value - old_value, -clip_coef, clip_coef)
    v_loss = 0.5 * torch.max((new_value - returns) ** 2, (v_clipped - returns) ** 2).mean()
    ent = entropy.mean()
    loss = pg_loss + vf_coef * v_loss - ent_coef * ent
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean().item()
        clipfrac = ((ratio - 1.0).abs() > clip_coef).float().mean().item()
    stats = {
        "pg_loss": pg_loss.item(),
        "v_loss": v_loss.item(),
        "entropy": ent.item(),
        "approx_kl": approx_kl,
        "clipfrac": clipfrac,
    }
    return loss, stats


def ppo_update(
    params: list[nn.Parameter],
    optimizer: torch.optim.Optimizer,
    n_items: int,
    evaluate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    batch: dict[str, torch.Tensor],
    cfg: PPOConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Epochs x minibatches of PPO over `n_items` independent items.

    An item is one transition (feed-forward agents) or one whole sequence (recurrent
    agents). `evaluate(idx)` returns (new_log_prob, entropy, new_value) for those items,
    optionally a fourth term: an auxiliary loss added as is (logged as `aux_loss`).
    `batch` holds old_log_prob, advantages, old_value, returns indexed by item on dim 0.
    Stops early when the approximate KL exceeds `cfg.target_kl`.
    """
    mb_size = max(1, n_items // cfg.num_minibatches)
    stats: dict[str, list[float]] = {}
    for _ in range(cfg.update_epochs):
        perm = torch.randperm(n_items, generator=generator)
        kl_epoch = []
        for start in range(0, n_items, mb_size):
            idx = perm[start : start + mb_size]
            new_logp, entropy, new_value, *aux = evaluate(idx)
            adv = batch["advantages"][idx]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            loss, s = ppo_loss(
                new_logp, batch["old_log_prob"][idx], adv, new_value, batch["old_value"][idx],
                batch["returns"][idx], entropy, cfg.clip_coef, cfg.vf_coef, cfg.ent_coef,
            )
            if aux:
                loss = loss + aux[0]
                s["aux_loss"] = float(aux[0].detach())
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            for k, v in s.items():
                stats.setdefault(k, []).append(v)
            kl_epoch.append(s["approx_kl"])
        if cfg.target_kl > 0 and float(np.mean(kl_epoch)) > cfg.target_kl:
            break
    return {k: float(np.mean(v)) for k, v in stats.items()}
