"""Small torch building blocks shared by the agents: MLPs and a running normalizer."""

from __future__ import annotations

import torch
from torch import nn


def mlp(
    sizes: list[int], activation: type[nn.Module] = nn.Tanh, out_gain: float = 1.0
) -> nn.Sequential:
    """Linear layers with `activation` between them, orthogonal init (as in CleanRL PPO)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layer = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(layer.weight, out_gain if last else 2**0.5)
        nn.init.zeros_(layer.bias)
        layers.append(layer)
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)


class RunningNorm(nn.Module):
    """Running mean/variance normalizer (Chan's parallel update).

    The statistics are buffers, so they travel with `state_dict` and are frozen at
    inference: `forward` only reads them; training code calls `update` explicitly.
    """

    def __init__(self, dim: int, clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, self.mean.shape[0]).to(self.mean.dtype)
        if x.shape[0] == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        n = x.shape[0]
        delta = batch_mean - self.mean
        total = self.count + n
        new_mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x - self.mean) / torch.sqrt(self.var + self.eps)
        return torch.clamp(y, -self.clip, self.clip)

    def denormalize(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.sqrt(self.var + self.eps) + self.mean
