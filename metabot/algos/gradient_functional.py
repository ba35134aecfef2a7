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
CONTEXT_KEYS = ("context",)
# Scale of the model's z-directions at init: the solved context is about (dynamics
# difference) / (this scale), and the policy must tell tasks apart by it, so a small scale
# starts tasks' contexts O(1) apart (0.1: measured on the tests' hidden-sign task)
MODEL_INIT = 0.1


class ContextModel(nn.Module):
    """The z-conditioned dynamics model of the ``inner_loss = "model"`` step; its math and
    its closed-form z-gradient live in metabot.runtime.model_context."""

    def __init__(self, in_dim: int, out_dim: int, context_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        # z's directions start random so the first inner gradients already differ per task
        mix = torch.randn(context_dim, out_dim, in_dim) * (MODEL_INIT / math.sqrt(in_dim))
        self.mix = nn.Parameter(mix)
        ctx = torch.randn(out_dim, context_dim) * (MODEL_INIT / math.sqrt(out_dim))
        self.ctx = nn.Parameter(ctx)


class GaussianMLP(nn.Module):
    """tanh MLP body, linear mean head, state-independent log-std (ProMP's policy).

    The head is linear over the body's features with a fixed std during adaptation, which
    is what makes the head-only update closed-form (see maml_numpy_head).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Iterable[int] = (64, 64),
                 init_log_std: float = -0.5, context_dim: int = 0, model_history: int = 0,
                 baseline_hidden: Iterable[int] = ()):
        super().__init__()
        self.context_dim = int(context_dim)
        if self.context_dim > 0:
            # CAVIA's context: an extra policy input that only the inner step changes
            self.context = nn.Parameter(torch.zeros(self.context_dim))
            self.model = ContextModel(obs_dim + act_dim * (model_history + 1), obs_dim,
                                      self.context_dim)
        layers: list[nn.Module] = []
        last = obs_dim + self.context_dim
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
        baseline_hidden = tuple(int(h) for h in baseline_hidden)
        if baseline_hidden:
            # the inner step's learned baseline (``inner_baseline = "learned"``): a value
            # net over the normalized observation, meta-trained through the inner step only
            layers, last = [], obs_dim
            for width in baseline_hidden:
                layers += [nn.Linear(last, width), nn.Tanh()]
                last = width
            layers.append(nn.Linear(last, 1))
            self.baseline = nn.Sequential(*layers)
            for m in self.baseline:
                if isinstance(m, nn.Linear):
                    nn.init.orthogonal_(m.weight, math.sqrt(2.0))
                    nn.init.zeros_(m.bias)
            # V starts at 0: the first inner steps are plain REINFORCE with GAE of rewards
            nn.init.zeros_(layers[-1].weight)

    def features(self, obs: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Body features; a policy with a context reads ``context`` (default: its own)."""
        if self.context_dim > 0:
            z = self.context if context is None else context
            obs = torch.cat([obs, z.expand(*obs.shape[:-1], self.context_dim)], -1)
        return self.body(obs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Action mean in the policy's [-1, 1] units (before clipping)."""
        return self.head(self.features(obs))


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


def learned_advantages(model: nn.Module, params: Params, batch: Batch, gamma: float,
                       lam: float) -> torch.Tensor:
    """Normalized GAE advantages from the policy's learned baseline, differentiable in its
    parameters (``baseline.*``): what lets the meta-gradient shape the inner step's
    advantages. The numpy twin (metabot.runtime.head.learned_advantages) is what a robot
    runs; the same conventions: each episode end and the batch's last step bootstrap 0.
    ``batch`` needs ``rewards`` and ``ends``; padded steps (weight 0) are masked."""
    prefix = "baseline."
    sub = {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}
    values = functional_call(model.baseline, sub, (batch["obs"],)).squeeze(-1)
    w = batch["weights"]
    n = values.shape[-1]
    last = torch.zeros(n, dtype=values.dtype)
    last[-1] = 1.0
    stop = torch.clamp(batch["ends"] + last, max=1.0)
    next_values = torch.cat([values[1:], torch.zeros_like(values[:1])]) * (1.0 - stop)
    delta = (batch["rewards"] + gamma * next_values - values) * w
    # GAE as one matrix product (a reverse scan would serialize under vmap): entry (t, u)
    # is (gamma lam)^(u - t) for u >= t in the same episode
    segment = torch.cumsum(stop, 0) - stop
    pos = torch.arange(n)
    lag = pos[None, :] - pos[:, None]
    same = (lag >= 0) & (segment[None, :] == segment[:, None])
    decay = torch.where(same, (gamma * lam) ** lag.clamp_min(0).to(values.dtype),
                        torch.zeros((), dtype=values.dtype))
    adv = decay @ delta
    mean = weighted_mean(adv, w)
    std = torch.sqrt(weighted_mean((adv - mean).pow(2), w))
    return (adv - mean) / (std + 1e-8)


def context_model_loss(params: Params, batch: Batch) -> torch.Tensor:
    """The dynamics-prediction loss of metabot.runtime.model_context (same formula):
    ``batch`` holds ``model_x``, ``model_y``, ``model_w``."""
    x, y, w = batch["model_x"], batch["model_y"], batch["model_w"]
    z = params["context"]
    weight = params["model.weight"] + torch.einsum("i,iyx->yx", z, params["model.mix"])
    pred = x @ weight.transpose(0, 1) + params["model.bias"] + params["model.ctx"] @ z
    r = pred - y
    return (w[:, None] * r * r).sum() / (y.shape[-1] * w.sum().clamp_min(1.0))


def context_curvature(params: Params, batch: Batch, ridge: float) -> torch.Tensor:
    """d2L/dz2 + ridge I of context_model_loss (exact: L is quadratic in z); the numpy twin
    and the reason for the curvature-scaled step are in metabot.runtime.model_context."""
    x, w = batch["model_x"], batch["model_w"]
    a = torch.einsum("iyx,nx->nyi", params["model.mix"], x) + params["model.ctx"]
    s = 2.0 * w / (batch["model_y"].shape[-1] * w.sum().clamp_min(1.0))
    h = torch.einsum("n,nyi,nyj->ij", s, a, a)
    return h + ridge * torch.eye(h.shape[0], dtype=h.dtype)


def adapt(
    model: nn.Module,
    params: Params,
    batch: Batch,
    step_sizes: Params,
    *,
    keys: Iterable[str],
    inner_steps: int = 1,
    first_order: bool = False,
    inner_loss: str = "pg",
    context_ridge: float | None = None,
    baseline: tuple[float, float] | None = None,
) -> Params:
    """``inner_steps`` ascent steps on the inner objective over ``keys``: the policy
    gradient surrogate (``inner_loss="pg"``) or minus the context model's prediction loss
    (``"model"``, keys = the context; with a ``context_ridge`` the gradient is scaled by
    the inverse curvature, else it is a plain gradient step).

    ``step_sizes[k]`` is a scalar tensor (MAML) or shaped like ``params[k]`` (Meta-SGD).
    Second order by default: the result stays differentiable through the inner gradient.
    ``baseline = (gamma, lam)``: the advantages come from the policy's learned baseline
    (learned_advantages, from the un-adapted ``params``) instead of ``batch["adv"]``.
    """
    keys = tuple(keys)
    adapted = dict(params)
    if baseline is not None and inner_loss == "pg":
        batch = {**batch, "adv": learned_advantages(model, params, batch, *baseline)}
    newton = inner_loss == "model" and context_ridge is not None
    if newton:
        curvature = context_curvature(params, batch, context_ridge)
    for _ in range(inner_steps):
        def objective(sub: Params, base: Params = adapted) -> torch.Tensor:
            if inner_loss == "model":
                return -context_model_loss({**base, **sub}, batch)
            return inner_objective(model, {**base, **sub}, batch)

        g = grad(objective)({k: adapted[k] for k in keys})
        if newton:
            g = {k: torch.linalg.solve(curvature, v) for k, v in g.items()}
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
    inner_loss: str = "pg",
    model_coef: float = 0.0,
    context_ridge: float | None = None,
    teacher_coef: float = 0.0,
    baseline: tuple[float, float] | None = None,
) -> Callable[[Params, Params, Batch, Batch], torch.Tensor]:
    """One task's outer objective: PPO-clip of the adapted policy on its post-adaptation
    data (ProMP), minus ``model_coef`` times the adapted context model's loss on that data
    (``inner_loss="model"``: the model learns to predict after adaptation, as supervised
    MAML trains it), minus ``teacher_coef`` times the squared distance of the adapted mean
    action from ``post["teacher_mean"]``. Returns f(params, step_sizes, pre, post)."""
    keys = tuple(keys)

    def task_objective(params: Params, step_sizes: Params, pre: Batch, post: Batch):
        adapted = adapt(model, params, pre, step_sizes, keys=keys, inner_steps=inner_steps,
                        first_order=first_order, inner_loss=inner_loss,
                        context_ridge=context_ridge, baseline=baseline)
        value = ppo_clip_objective(model, adapted, post, clip)
        if inner_loss == "model" and model_coef > 0:
            value = value - model_coef * context_model_loss(adapted, post)
        if teacher_coef > 0:
            mean = functional_call(model, adapted, (post["obs"],))
            gap = (mean - post["teacher_mean"]).pow(2).sum(-1)
            value = value - teacher_coef * weighted_mean(gap, post["weights"])
        return value

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
                keys: Iterable[str], inner_steps: int = 1, inner_loss: str = "pg",
                context_ridge: float | None = None,
                baseline: tuple[float, float] | None = None) -> Params:
    """Adapted parameters for every task at once (stacked on dim 0), no graph kept."""
    keys = tuple(keys)

    def one(b: Batch) -> Params:
        return adapt(model, params, b, step_sizes, keys=keys, inner_steps=inner_steps,
                     first_order=True, inner_loss=inner_loss, context_ridge=context_ridge,
                     baseline=baseline)

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
