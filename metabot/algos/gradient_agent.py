"""The inference module of the gradient-based family (maml, fomaml, reptile, metasgd, anil).

``forward`` follows the export contract of docs/architecture.md "Agents": normalized
observation -> tanh MLP body -> linear mean head -> clip to [-1, 1]; the other inputs are
taken and ignored (the adaptation state of these agents is their parameters, changed
between episodes by ``adapt``). ``adapt_package()`` gives what a robot needs to adapt
(numpy parameters and the spec for metabot.algos.maml_adapt.adapt).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from metabot.algos.agents import Agent, register_agent
from metabot.algos.gradient_functional import CONTEXT_KEYS, HEAD_KEYS, GaussianMLP
from metabot.algos.nets import RunningNorm

GRADIENT_ALGOS = ("maml", "fomaml", "reptile", "metasgd", "anil")


def _slot(name: str) -> str:
    return name.replace(".", "__")  # ParameterDict keys cannot hold dots


@register_agent
class GradientAgent(Agent):
    """Gaussian MLP policy whose meta-learned parameters adapt by policy-gradient steps."""

    budget_unit = "episodes"

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        privileged_dim: int,
        algo: str = "maml",
        hidden: tuple[int, ...] | list[int] = (64, 64),
        init_log_std: float = -0.5,
        adapt_head_only: bool = False,
        inner_lr: float = 0.1,
        inner_steps: int = 1,
        learn_step_sizes: bool = False,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        inner_loss: str = "pg",
        context_dim: int = 0,
        model_history: int = 0,
        context_ridge: float | None = None,
        inner_baseline: str = "linear",
        baseline_hidden: tuple[int, ...] | list[int] = (),
        fixed_log_std: bool = False,
    ):
        hidden = [int(h) for h in hidden]
        baseline_hidden = [int(h) for h in baseline_hidden] if inner_baseline == "learned" else []
        kwargs: dict[str, Any] = {}
        if inner_loss != "pg":  # PG agents keep their original constructor record
            kwargs = {"inner_loss": inner_loss, "context_dim": int(context_dim),
                      "model_history": int(model_history),
                      "context_ridge": context_ridge}
        if inner_baseline != "linear":
            kwargs.update(inner_baseline=inner_baseline, baseline_hidden=baseline_hidden)
        if fixed_log_std:
            kwargs["fixed_log_std"] = True
        super().__init__(
            obs_dim, act_dim, privileged_dim, algo=algo, hidden=hidden,
            init_log_std=init_log_std, adapt_head_only=adapt_head_only, inner_lr=inner_lr,
            inner_steps=inner_steps, learn_step_sizes=learn_step_sizes, gamma=gamma,
            gae_lambda=gae_lambda, **kwargs,
        )
        self.algo = algo
        self.hidden = hidden
        self.adapt_head_only = bool(adapt_head_only)
        self.inner_steps = int(inner_steps)
        self.gamma = float(gamma)
        self.gae_lambda = float(gae_lambda)
        self.inner_loss = str(inner_loss)
        # "learned": the inner step's advantages come from a meta-learned value net
        self.inner_baseline = str(inner_baseline)
        self.baseline_hidden = baseline_hidden
        self.model_history = int(model_history)
        # None: the context adapts by plain gradient steps; else curvature-scaled ones
        self.context_ridge = None if context_ridge is None else float(context_ridge)
        self.obs_norm = RunningNorm(obs_dim)
        # "model": only the context adapts (metabot.runtime.model_context)
        self.policy = GaussianMLP(obs_dim, act_dim, hidden, init_log_std,
                                  context_dim=context_dim if inner_loss == "model" else 0,
                                  model_history=model_history,
                                  baseline_hidden=baseline_hidden)
        if self.inner_loss == "model":
            keys = CONTEXT_KEYS
        elif self.adapt_head_only:
            keys = HEAD_KEYS
        else:
            # the learned baseline is meta-learned and a fixed log-std is fixed: neither adapts
            keys = tuple(k for k, _ in self.policy.named_parameters()
                         if not k.startswith("baseline.")
                         and not (fixed_log_std and k == "log_std"))
        self.adapt_keys = tuple(keys)
        params = dict(self.policy.named_parameters())
        # Meta-SGD learns one step size per parameter entry; MAML keeps one fixed scalar.
        self.step_sizes = nn.ParameterDict({
            _slot(k): nn.Parameter(
                torch.full_like(params[k], inner_lr) if learn_step_sizes
                else torch.tensor(float(inner_lr)),
                requires_grad=bool(learn_step_sizes),
            )
            for k in keys
        })

    # -- functional views ----------------------------------------------------------------
    def params(self) -> dict[str, torch.Tensor]:
        """The meta-parameters by name (live tensors: gradients reach them)."""
        return dict(self.policy.named_parameters())

    def step_dict(self) -> dict[str, torch.Tensor]:
        return {k: self.step_sizes[_slot(k)] for k in self.adapt_keys}

    def load_params(self, params: dict[str, Any]) -> None:
        """Overwrite the policy parameters (e.g. with adapted ones)."""
        with torch.no_grad():
            for k, p in self.policy.named_parameters():
                p.copy_(torch.as_tensor(np.asarray(params[k]), dtype=p.dtype))

    # -- export contract -----------------------------------------------------------------
    def forward(self, obs, prev_action, prev_reward, first, privileged):  # noqa: D102
        return (torch.clamp(self.policy(self.obs_norm(obs)), -1.0, 1.0),)

    @property
    def adapt_kind(self) -> str:
        """"model" (the context, by the model inner loss; numpy), "head" (numpy closed
        form) or "all" (torch). Not "context": that kind means rl2/rma's recurrent state."""
        if self.inner_loss == "model":
            return "model"
        return "head" if self.adapt_head_only else "all"

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        kind = self.adapt_kind
        info["adaptation"] = {
            "kind": "full" if kind == "all" else kind,
            "needs_extra": "train" if kind == "all" else None,
            "inner_steps": self.inner_steps,
        }
        return info

    # -- adaptation ----------------------------------------------------------------------
    def adapt_spec(self) -> dict[str, Any]:
        """JSON-safe spec for metabot.algos.maml_adapt.adapt (and the runtime's head step)."""
        return {
            "adapt": self.adapt_kind,
            "inner_loss": self.inner_loss,
            "model_history": self.model_history,
            "context_ridge": self.context_ridge,
            "baseline": self.inner_baseline,
            "baseline_hidden": list(self.baseline_hidden),
            "hidden": list(self.hidden),
            "inner_steps": self.inner_steps,
            "gamma": self.gamma,
            "gae_lambda": self.gae_lambda,
            "step_sizes": {k: v.detach().double().numpy().tolist()
                           for k, v in self.step_dict().items()},
            "obs_mean": self.obs_norm.mean.double().numpy().tolist(),
            "obs_var": self.obs_norm.var.double().numpy().tolist(),
            "obs_clip": float(self.obs_norm.clip),
            "obs_eps": float(self.obs_norm.eps),
        }

    def adapt_package(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        params = {k: v.detach().double().numpy().copy() for k, v in self.params().items()}
        return params, self.adapt_spec()

    def adapted(self, transitions: dict[str, np.ndarray]) -> GradientAgent:
        """A copy of this agent after one adaptation on ``transitions`` (episodes)."""
        from metabot.algos.maml_adapt import adapt

        params, spec = self.adapt_package()
        clone = copy.deepcopy(self)
        if len(transitions["rewards"]) > 0:
            clone.load_params(adapt(params, transitions, spec))
        return clone
