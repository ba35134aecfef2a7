"""The adaptation entry point of the gradient-based agents: transitions in, parameters out.

Online adaptation on a robot calls ``adapt`` between episodes with the episodes collected
so far. Head-only adaptation (``anil``, head-only ``metasgd``) is closed-form numpy
(maml_numpy_head) and needs no extra, as does context adaptation by the model inner
loss (``inner_loss = "model"``, metabot.runtime.model_context); full-network adaptation
(``maml``, ``fomaml``, ``reptile``, full ``metasgd``) differentiates the policy and needs
torch, i.e. the ``train`` extra on the robot computer. Torch is imported lazily so that
this module stays importable without it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from metabot.algos.maml_numpy_head import adapt_head, normalize_obs, spec_advantages
from metabot.errors import MissingExtraError
from metabot.runtime.model_context import context_step

Arrays = dict[str, np.ndarray]


def adapt(params: Arrays, transitions: dict[str, np.ndarray], spec: dict[str, Any]) -> Arrays:
    """One adaptation from the meta-learned ``params`` on ``transitions``.

    ``params``: the policy parameters by torch name (``body.{i}.*``, ``head.*``,
    ``log_std``). ``transitions``: ``obs`` (raw), ``actions`` (sampled, pre-clip, in [-1, 1]
    units), ``rewards``, ``ends`` over N steps. ``spec``: what ``GradientAgent.adapt_spec()``
    returns (``adapt`` = "head", "model" or "all", step sizes, inner steps, discounting,
    normalizer).
    """
    if spec["adapt"] == "head":
        return adapt_head(params, transitions, spec)
    if spec["adapt"] == "model":
        z = context_step(params, normalize_obs(transitions["obs"], spec),
                         transitions["actions"], transitions["ends"],
                         history=int(spec["model_history"]),
                         step_size=spec["step_sizes"]["context"],
                         inner_steps=int(spec["inner_steps"]), ridge=spec["context_ridge"])
        return {**params, "context": z}
    try:
        import torch
    except ImportError:
        raise MissingExtraError("full-network adaptation", "train") from None
    from metabot.algos import gradient_functional as gf

    obs = normalize_obs(transitions["obs"], spec)
    adv = spec_advantages(params, obs, transitions, spec)
    act_dim = np.asarray(params["log_std"]).shape[0]
    model = gf.GaussianMLP(obs.shape[1], act_dim, hidden=spec["hidden"],
                           baseline_hidden=spec.get("baseline_hidden", ())).double()
    p = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64) for k, v in params.items()}
    steps = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64)
             for k, v in spec["step_sizes"].items()}
    obs_t = torch.from_numpy(obs)
    act_t = torch.as_tensor(np.asarray(transitions["actions"]), dtype=torch.float64)
    with torch.no_grad():
        batch = {"obs": obs_t, "actions": act_t, "adv": torch.from_numpy(adv),
                 "logp_old": gf.log_prob(model, p, obs_t, act_t),
                 "weights": torch.ones(len(adv), dtype=torch.float64)}
    adapted = gf.adapt(model, p, batch, steps, keys=tuple(steps),
                       inner_steps=int(spec["inner_steps"]), first_order=True)
    return {k: v.detach().numpy() for k, v in adapted.items()}
