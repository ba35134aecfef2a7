"""A learned, privileged critic for the OUTER advantages of the gradient-based learners.

Training only: the critic sees the task's true dynamics features (``EnvBatch.privileged``),
so it can never run on a robot, and it never has to. It replaces the linear feature baseline
(Monte-Carlo returns, lambda = 1) only in the outer objective (the PPO-clip surrogate of the
post-adaptation episodes and, with ``pre_coef > 0``, of the pre-adaptation ones). The inner
step, which the robot runs between episodes without privileged information, keeps its
advantages from metabot.runtime.head (the linear baseline fitted on the task's own
episodes), so the exported agent and the on-robot update are unchanged.

V(obs, task) inputs: the observation as the policy saw it (the agent's frozen normalizer),
the privileged features through their own running normalizer, the time in the episode
(t / episode length: episodes end at a time limit, so the value is finite-horizon and the
targets need no bootstrap) and a phase flag (0 pre-adaptation, 1 post-adaptation: the
two policies differ by the inner step). It regresses the discounted returns of every episode
of the iteration in value-normalized units (metabot.algos.nets.RunningNorm, as PPO's
critics do); the advantages come from metabot.algos.ppo.gae with the critic as it was before
this iteration's regression (as PPO computes them at rollout time).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from metabot.algos.gradient_sampler import Episodes
from metabot.algos.nets import RunningNorm, mlp
from metabot.algos.ppo import gae
from metabot.runtime.head import discounted_returns, time_index


class OuterCritic(nn.Module):
    """V(normalized obs, normalized privileged features, time, phase) in normalized units."""

    def __init__(self, obs_dim: int, privileged_dim: int,
                 hidden: Sequence[int] = (128, 128)):
        super().__init__()
        self.obs_dim = int(obs_dim)
        self.privileged_dim = int(privileged_dim)
        self.priv_norm = RunningNorm(max(self.privileged_dim, 1))
        self.value_norm = RunningNorm(1)
        self.net = mlp([self.obs_dim + self.privileged_dim + 2, *[int(h) for h in hidden], 1],
                       out_gain=1.0)

    def inputs(self, eps: Episodes, privileged: np.ndarray, episode_steps: int,
               phase: float) -> torch.Tensor:
        """One task's input rows: [N, O + P + 2] (privileged: that task's features [P])."""
        n = len(eps.rewards)
        t = time_index(np.asarray(eps.ends, dtype=bool)) / float(max(episode_steps, 1))
        obs = torch.as_tensor(eps.obs_norm, dtype=torch.float32).reshape(n, self.obs_dim)
        cols = [obs]
        if self.privileged_dim > 0:
            priv = torch.as_tensor(np.asarray(privileged, np.float32).reshape(1, -1))
            with torch.no_grad():
                cols.append(self.priv_norm(priv).expand(n, -1))
        cols.append(torch.as_tensor(t, dtype=torch.float32).reshape(n, 1))
        cols.append(torch.full((n, 1), float(phase)))
        return torch.cat(cols, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized value [N]."""
        return self.net(x).squeeze(-1)

    @torch.no_grad()
    def value_raw(self, x: torch.Tensor) -> np.ndarray:
        v = self.value_norm.denormalize(self(x).unsqueeze(-1))[:, 0]
        return v.double().numpy()


def episode_returns(eps: Episodes, gamma: float) -> np.ndarray:
    """Discounted return-to-go of every step (no bootstrap past an episode's end)."""
    ends = np.asarray(eps.ends, dtype=bool).copy()
    if len(ends):
        ends[-1] = True
    return discounted_returns(np.asarray(eps.rewards, np.float64), ends, gamma)


def critic_advantages(values: np.ndarray, eps: Episodes, gamma: float,
                      lam: float) -> np.ndarray:
    """GAE over one task's episodes with the critic's raw values, normalized per task
    (as the inner step's advantages are)."""
    n = len(eps.rewards)
    dones = np.asarray(eps.ends, np.float64).copy()
    if n:
        dones[-1] = 1.0
    adv, _ = gae(np.asarray(eps.rewards, np.float64).reshape(n, 1),
                 np.asarray(values, np.float64).reshape(n, 1), dones.reshape(n, 1),
                 np.zeros(1), gamma, lam)
    adv = adv[:, 0].astype(np.float64)
    if n > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    return adv


def fit_critic(critic: OuterCritic, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               returns: torch.Tensor, *, epochs: int, minibatches: int, max_grad_norm: float,
               generator: torch.Generator) -> float:
    """Epochs x minibatches of MSE regression on normalized returns; returns the mean
    loss of the last epoch (normalized units). The caller updates ``value_norm`` first."""
    vn = critic.value_norm
    target = ((returns.reshape(-1, 1) - vn.mean) / torch.sqrt(vn.var + vn.eps))[:, 0]
    n = x.shape[0]
    params = list(critic.net.parameters())
    losses: list[float] = []
    for _ in range(epochs):
        losses = []
        perm = torch.randperm(n, generator=generator)
        for idx in perm.chunk(minibatches):
            loss = 0.5 * (critic(x[idx]) - target[idx]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, max_grad_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
    return float(np.mean(losses)) if losses else float("nan")
