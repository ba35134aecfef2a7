"""Functional machinery of the gradient-based meta-learners (MAML family) on torch.func.

Parameters are plain dicts ``name -> tensor`` evaluated with ``functional_call`` so that an
adapted copy (``theta - alpha * grad``) is just another dict, differentiable back to the
meta-parameters. Everything per task is written for one task and mapped over the tasks
with ``vmap`` (tests check it equals the loop).

Batches are dicts of tensors for one task (stacked ``[n_tasks, ...]`` for vmap):
``obs`` (normalized), ``actions`` (pre-clip samples), ``adv``, ``logp_old`` (log-prob under
the sampling policy), ``weights`` (1 for a real step, 0 for padding).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

Params = dict[str, torch.Tensor]
Batch = dict[str, torch.Tensor]

HEAD_KEYS = ("head.weight", "head.bias")


class GaussianMLP(nn.Module):
    """tanh MLP body, linear mean head, state-independent log-std (ProMP's policy).

    The head is linear over the body's features with a fixed std during adaptation, which
    is what makes the head-only update closed-form (see maml_numpy_head).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Iterable[int] = (64, 64),
                 init_log_std: float = -0.5):
        super().__init__()
        layers: list[nn.Module] = []
        last = obs_dim
        for width in hidden:
            layers += [nn.Linear(last, width), nn.Tanh()]
            last = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(last, act_dim)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(init_log_std)))
        for m in self.body:
            if isinstance(m, nn.Linear):
                nn.init.orthogonal_(m.weight, math.sqrt(2.0))
                nn.init.zeros_(m.bias)
        nn.init.orthogonal_(self.head.weight, 0.01)
        nn.init.zeros_(self.head.bias)
        self.feature_dim = last

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(obs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Action mean in the policy's [-1, 1] units (before clipping)."""
        return self.head(self.body(obs))


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor):
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def log_prob(model: nn.Module, params: Params, obs: torch.Tensor, actions: torch.Tensor):
    mean = functional_call(model, params, (obs,))
    return gaussian_log_prob(mean, params["log_std"], actions)


def weighted_mean(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (x * weights).sum() / weights.sum().clamp_min(1.0)


def inner_objective(model: nn.Module, params: Params, batch: Batch) -> torch.Tensor:
    """ProMP's LVC surrogate (to maximize): mean ratio * A; its gradient at the sampling
    parameters is the vanilla policy gradient."""
    logp = log_prob(model, params, batch["obs"], batch["actions"])
    ratio = torch.exp(logp - batch["logp_old"])
    return weighted_mean(ratio * batch["adv"], batch["weights"])


def adapt(
    model: nn.Module,
    params: Params,
    batch: Batch,
    step_sizes: Params,
    *,
    keys: Iterable[str],
    inner_steps: int = 1,
    first_order: bool = False,
) -> Params:
    """``inner_steps`` ascent steps on the inner objective over ``keys``.

    ``step_sizes[k]`` is a scalar tensor (MAML) or shaped like ``params[k]`` (Meta-SGD).
    Second order by default: the result stays differentiable through the inner gradient.
    """
    keys = tuple(keys)
    adapted = dict(params)
    for _ in range(inner_steps):
        def objective(sub: Params, base: Params = adapted) -> torch.Tensor:
            return inner_objective(model, {**base, **sub}, batch)

        g = grad(objective)({k: adapted[k] for k in keys})
        if first_order:
            g = {k: v.detach() for k, v in g.items()}
        adapted = {**adapted, **{k: adapted[k] + step_sizes[k] * g[k] for k in keys}}
    return adapted


def ppo_clip_objective(
    model: nn.Module, params: Params, batch: Batch, clip: float
) -> torch.Tensor:
    """PPO-clip surrogate (to maximize) over one task's post-adaptation batch."""
    logp = log_prob(model, params, batch["obs"], batch["actions"])
    ratio = torch.exp(logp - batch["logp_old"])
    unclipped = ratio * batch["adv"]
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * batch["adv"]
    return weighted_mean(torch.minimum(unclipped, clipped), batch["weights"])


def initial_policy_objective(model: nn.Module, params: Params, batches: Batch,
                             clip: float) -> torch.Tensor:
    """Mean PPO-clip surrogate of the un-adapted parameters over tasks (batches stacked
    on dim 0): the meta-initialization trained as a policy in its own right."""
    per_task = vmap(lambda b: ppo_clip_objective(model, params, b, clip))(batches)
    return per_task.mean()


def meta_objective_fn(
    model: nn.Module,
    *,
    keys: Iterable[str],
    inner_steps: int,
    first_order: bool,
    clip: float,
) -> Callable[[Params, Params, Batch, Batch], torch.Tensor]:
    """One task's outer objective: PPO-clip of the adapted policy on its post-adaptation
    data (ProMP). Returns f(params, step_sizes, pre_batch, post_batch)."""
    keys = tuple(keys)

    def task_objective(params: Params, step_sizes: Params, pre: Batch, post: Batch):
        adapted = adapt(model, params, pre, step_sizes, keys=keys,
                        inner_steps=inner_steps, first_order=first_order)
        return ppo_clip_objective(model, adapted, post, clip)

    return task_objective


def meta_objective(task_objective, params: Params, step_sizes: Params, pre: Batch,
                   post: Batch, *, use_vmap: bool = True) -> torch.Tensor:
    """Mean outer objective over tasks (batches stacked on dim 0)."""
    if use_vmap:
        per_task = vmap(task_objective, in_dims=(None, None, 0, 0))(params, step_sizes, pre, post)
        return per_task.mean()
    n = next(iter(pre.values())).shape[0]
    total = sum(
        task_objective(params, step_sizes, {k: v[i] for k, v in pre.items()},
                       {k: v[i] for k, v in post.items()})
        for i in range(n)
    )
    return total / n


def adapt_tasks(model: nn.Module, params: Params, pre: Batch, step_sizes: Params, *,
                keys: Iterable[str], inner_steps: int = 1) -> Params:
    """Adapted parameters for every task at once (stacked on dim 0), no graph kept."""
    keys = tuple(keys)

    def one(b: Batch) -> Params:
        return adapt(model, params, b, step_sizes, keys=keys, inner_steps=inner_steps,
                     first_order=True)

    with torch.no_grad():
        return vmap(one)(pre)


def reptile_adapt(model: nn.Module, params: Params, pre: Batch, post: Batch, step_sizes: Params,
                  *, keys: Iterable[str], extra_steps: int, lr: float, clip: float) -> Params:
    """Reptile's task solver phi = SGD^k(theta): the inner step on the task's first batch,
    then ``extra_steps`` plain ascent steps of PPO-clip on its post-adaptation batch."""
    keys = tuple(keys)
    phi = adapt(model, params, pre, step_sizes, keys=keys, first_order=True)
    phi = {k: v.detach() for k, v in phi.items()}
    for _ in range(extra_steps):
        g = grad(lambda p: ppo_clip_objective(model, p, post, clip))(phi)
        phi = {k: (v + lr * g[k]).detach() for k, v in phi.items()}
    return phi


def reptile_update(params: Params, adapted: list[Params], epsilon: float) -> Params:
    """Reptile's meta-step: theta + epsilon * mean_i(phi_i - theta)."""
    return {
        k: p + epsilon * torch.stack([a[k] - p for a in adapted]).mean(0)
        for k, p in params.items()
    }


def sample_actions(model: nn.Module, task_params: Params, obs: torch.Tensor,
                   generator: torch.Generator | None, deterministic: bool = False):
    """Actions for every task's env at once: ``task_params`` stacked ``[n_tasks, ...]``,
    ``obs [n_tasks, O]``. Returns (pre-clip actions, log-probs)."""
    with torch.no_grad():
        mean = vmap(lambda p, o: functional_call(model, p, (o,)))(task_params, obs)
        std = torch.exp(task_params["log_std"])
        if deterministic:
            actions = mean
        else:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            actions = mean + std * noise
        return actions, gaussian_log_prob(mean, task_params["log_std"], actions)


def stack_params(params: Params, n: int) -> Params:
    return {k: v.detach().unsqueeze(0).expand(n, *v.shape).clone() for k, v in params.items()}
