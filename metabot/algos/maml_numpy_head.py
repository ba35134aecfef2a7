"""Head-only policy-gradient adaptation in numpy: no torch, no autodiff.

The gradient-based meta-learners (``anil``, and ``metasgd`` restricted to the head) adapt only
the last layer of the policy: a linear Gaussian head ``mean = W @ f + b`` over features ``f``
from a frozen body, with a fixed state-independent ``log_std``. For that head the gradient of
the inner objective is analytic, so a robot computer with numpy alone (``metabot.runtime``)
can run the same adaptation step the trainer differentiates through. The torch trainer uses
the advantage functions here too, so there is one implementation of returns, baseline and
advantages. This module must import nothing but numpy (tests check it).

Inner objective (ProMP's low-variance-curvature form, maximized):

    J(W, b) = sum_t w_t * exp(logp_new(a_t) - logp_0(a_t)) * A_t / sum_t w_t

At the sampling parameters the ratio is 1 and dJ is the vanilla policy gradient
``mean_t grad logp(a_t) * A_t``; later inner steps reweight by the ratio.

Transitions are a dict of arrays over N steps, episodes back to back:
``obs [N,O]``, ``actions [N,A]`` (the sampled, pre-clip action in the policy's [-1, 1] units),
``rewards [N]``, ``ends [N]`` (1.0 on the last step of each episode), and, for the head,
``features [N,F]`` (the body's output).
"""

from __future__ import annotations

from typing import Any

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


# ------------------------------------------------------------------ returns and advantages
# One implementation, shared with the robot: the torch-free runtime owns the advantage math
# (ProMP's linear-baseline GAE) and training reuses it, so the two can never drift apart.
from metabot.runtime.head import advantages, tanh_mlp  # noqa: E402


# ------------------------------------------------------------------------- the linear head
def head_log_prob(
    features: np.ndarray, actions: np.ndarray, w: np.ndarray, b: np.ndarray, log_std: np.ndarray
) -> np.ndarray:
    """log N(actions; W f + b, diag(exp(log_std)^2)) per step."""
    mean = features @ w.T + b
    z = (actions - mean) / np.exp(log_std)
    return -0.5 * np.sum(z * z, axis=1) - np.sum(log_std) - 0.5 * actions.shape[1] * LOG_2PI


def head_gradient(
    features: np.ndarray,
    actions: np.ndarray,
    adv: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    log_std: np.ndarray,
    *,
    logp_old: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of J = sum w_t ratio_t A_t / sum w_t with respect to (W, b), in closed form.

    d logp / d mean = (a - mean) / std^2, and d ratio = ratio * d logp; mean = W f + b.
    """
    features = np.asarray(features, dtype=np.float64)
    actions = np.asarray(actions, dtype=np.float64)
    mean = features @ w.T + b
    dlogp_dmean = (actions - mean) / np.exp(2.0 * log_std)  # [N, A]
    coeff = np.asarray(adv, dtype=np.float64)
    if logp_old is not None:
        coeff = coeff * np.exp(head_log_prob(features, actions, w, b, log_std) - logp_old)
    if weights is not None:
        coeff = coeff * weights
        total = float(np.sum(weights))
    else:
        total = float(len(coeff))
    g_mean = dlogp_dmean * coeff[:, None] / total  # [N, A]
    return g_mean.T @ features, g_mean.sum(axis=0)


def head_update(
    w: np.ndarray,
    b: np.ndarray,
    log_std: np.ndarray,
    features: np.ndarray,
    actions: np.ndarray,
    adv: np.ndarray,
    step_w: float | np.ndarray,
    step_b: float | np.ndarray,
    *,
    inner_steps: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """``inner_steps`` ascent steps on J; steps are scalars or per-parameter (Meta-SGD) arrays."""
    logp_old = head_log_prob(features, actions, w, b, log_std)
    for _ in range(inner_steps):
        g_w, g_b = head_gradient(features, actions, adv, w, b, log_std, logp_old=logp_old)
        w, b = w + step_w * g_w, b + step_b * g_b
    return w, b


def normalize_obs(obs: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """The agent's frozen observation normalizer (``obs_mean``, ``obs_var``, ``obs_clip``)."""
    if "obs_mean" not in spec:
        return np.asarray(obs, dtype=np.float64)
    mean = np.asarray(spec["obs_mean"], dtype=np.float64)
    std = np.sqrt(np.asarray(spec["obs_var"], dtype=np.float64) + float(spec.get("obs_eps", 1e-8)))
    clip = float(spec.get("obs_clip", 10.0))
    return np.clip((np.asarray(obs, dtype=np.float64) - mean) / std, -clip, clip)


def body_features(params: dict[str, np.ndarray], obs_norm: np.ndarray) -> np.ndarray:
    """The frozen tanh body in numpy: ``body.{2i}.weight/bias`` as torch names them."""
    return tanh_mlp(params, obs_norm, "body.")


def spec_advantages(params: dict[str, Any], obs_norm: np.ndarray,
                    transitions: dict[str, np.ndarray], spec: dict[str, Any]) -> np.ndarray:
    """The inner step's advantages as the agent's spec says: against the linear baseline
    fitted on these episodes, or the meta-learned one (``spec["baseline"] == "learned"``)."""
    learned = spec.get("baseline", "linear") == "learned"
    return advantages(obs_norm, transitions["rewards"], transitions["ends"],
                      gamma=float(spec["gamma"]), lam=float(spec["gae_lambda"]),
                      baseline=params if learned else None)


def adapt_head(
    params: dict[str, Any], transitions: dict[str, np.ndarray], spec: dict[str, Any]
) -> dict[str, np.ndarray]:
    """The robot-side adaptation step: transitions in, adapted parameters out (numpy only).

    ``params`` uses the torch names: ``head.weight [A,F]``, ``head.bias [A]``, ``log_std [A]``
    and, unless ``transitions['features']`` (the frozen body's outputs) is given, the body's
    ``body.{i}.weight/bias``. ``spec`` holds ``gamma``, ``gae_lambda``, ``inner_steps``,
    ``step_sizes`` (``head.weight`` / ``head.bias`` -> scalar or array shaped like the
    parameter) and, optionally, the normalizer (``obs_mean``, ``obs_var``, ``obs_clip``):
    ``obs`` are then the raw observations, normalized here as the agent does.
    Returns a copy of ``params`` with the head replaced.
    """
    obs = normalize_obs(transitions["obs"], spec)
    features = transitions.get("features")
    if features is None:
        features = body_features(params, obs)
    adv = spec_advantages(params, obs, transitions, spec)
    steps = spec["step_sizes"]
    w, b = head_update(
        np.asarray(params["head.weight"], dtype=np.float64),
        np.asarray(params["head.bias"], dtype=np.float64),
        np.asarray(params["log_std"], dtype=np.float64),
        np.asarray(features, dtype=np.float64),
        np.asarray(transitions["actions"], dtype=np.float64),
        adv,
        np.asarray(steps["head.weight"], dtype=np.float64),
        np.asarray(steps["head.bias"], dtype=np.float64),
        inner_steps=int(spec["inner_steps"]),
    )
    return {**params, "head.weight": w, "head.bias": b}
