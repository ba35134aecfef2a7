"""Context adaptation by a self-supervised dynamics loss, in numpy: no torch, no autodiff.

Why this inner step exists: twelve sessions of policy-gradient inner steps (maml, anil,
metasgd; docs/benchmarks.md) never moved S(10) on arm2d-reach off zero. Ten episodes of
returns say little about *which* way to change a policy, but they say a lot about the
arm's dynamics (RMA identifies them within 50 steps). So with ``inner_loss = "model"`` the
inner step is CAVIA's (Zintgraf et al. 2019): only a small context vector ``z`` adapts, the
policy reads it as an extra input, and its gradient comes from how badly a z-conditioned
dynamics model predicts the task's own transitions. Meta-training differentiates through
this step (metabot.algos.gradient_functional), so the model learns features whose
gradient tells the policy what it needs.

The model is linear in its inputs with z-modulated weights (bilinear in z and x), which
keeps its z-gradient closed-form:

    x_t  = [obs_norm_t, a_t, a_{t-1}, ..., a_{t-H}]     (actions clipped; H = history)
    y_t  = obs_norm_{t+1} - obs_norm_t                    (within an episode)
    pred = (W + sum_i z_i U_i) x + b + V z
    L(z) = sum_t w_t |pred_t - y_t|^2 / (Y sum_t w_t)

The action history lets the model see a latency of up to H control steps.

The step is the gradient preconditioned by the loss's exact curvature (L is quadratic in
z): ``z <- z - alpha * (H + ridge I)^-1 dL/dz`` with ``H = d2L/dz2``. Why not plain
gradient descent: its useful step size is 1 / H's scale, which moves whenever the meta-update
rescales the model, and a fixed one either crawls (the adapted contexts of different tasks
barely differ, so the policy cannot tell them apart) or diverges (measured on the unit
test's hidden-sign task). With alpha = 1 the step lands on the ridge-regularized least-
squares context in one go; ``ridge`` is a prior pulling z toward its meta-learned start.
(``context_step = "gradient"`` keeps the plain step, for comparison.)
This module imports nothing but numpy, so a robot computer can run the step (tests check
it equals the torch trainer's).
"""

from __future__ import annotations

import numpy as np

Arrays = dict[str, np.ndarray]
MODEL_KEYS = ("model.weight", "model.bias", "model.mix", "model.ctx")


def model_data(
    obs_norm: np.ndarray, actions: np.ndarray, ends: np.ndarray, history: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x [N, O + A(H+1)], y [N, O], weight [N]) of episodes stored back to back.

    A step's weight is 0 on an episode's last step (its successor is not recorded); the
    action history before an episode's first step is zeros.
    """
    obs_norm = np.asarray(obs_norm, dtype=np.float64)
    acts = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    ends = np.asarray(ends, dtype=np.float64)
    n = len(obs_norm)
    start = np.r_[1.0, ends[:-1]] if n else np.zeros(0)
    episode = np.cumsum(start)  # episode index of each step
    cols = [obs_norm]
    for lag in range(history + 1):
        lagged = np.zeros_like(acts)
        if lag < n:
            lagged[lag:] = acts[: n - lag]
            same = np.zeros(n, dtype=bool)
            same[lag:] = episode[lag:] == episode[: n - lag]
            lagged[~same] = 0.0
        cols.append(lagged)
    x = np.concatenate(cols, axis=1)
    y = np.zeros_like(obs_norm)
    if n > 1:
        y[:-1] = obs_norm[1:] - obs_norm[:-1]
    weight = 1.0 - ends
    return x, y, weight


def model_input_dim(obs_dim: int, act_dim: int, history: int) -> int:
    return obs_dim + act_dim * (history + 1)


def predict(params: Arrays, z: np.ndarray, x: np.ndarray) -> np.ndarray:
    w, b = params["model.weight"], params["model.bias"]
    u, v = params["model.mix"], params["model.ctx"]
    return x @ (w + np.einsum("i,iyx->yx", z, u)).T + b + v @ z


def model_loss(params: Arrays, z: np.ndarray, x: np.ndarray, y: np.ndarray,
               weight: np.ndarray) -> float:
    r = predict(params, z, x) - y
    return float(np.sum(weight[:, None] * r * r) / (y.shape[1] * max(np.sum(weight), 1.0)))


def context_gradient(params: Arrays, z: np.ndarray, x: np.ndarray, y: np.ndarray,
                     weight: np.ndarray) -> np.ndarray:
    """dL/dz in closed form: 2/(Y sum w) * sum_t w_t r_t . (U_i x_t + V[:, i])."""
    r = predict(params, z, x) - y
    s = 2.0 * weight / (y.shape[1] * max(np.sum(weight), 1.0))
    rs = r * s[:, None]  # [N, Y]
    return (np.einsum("ny,iyx,nx->i", rs, params["model.mix"], x)
            + rs.sum(axis=0) @ params["model.ctx"])


def context_curvature(params: Arrays, x: np.ndarray, weight: np.ndarray, y_dim: int,
                      ridge: float) -> np.ndarray:
    """H + ridge I, with H = d2L/dz2 = 2/(Y sum w) * sum_t w_t A_t^T A_t, A_t = dpred_t/dz."""
    a = np.einsum("iyx,nx->nyi", params["model.mix"], x) + params["model.ctx"][None]
    s = 2.0 * weight / (y_dim * max(np.sum(weight), 1.0))
    h = np.einsum("n,nyi,nyj->ij", s, a, a)
    return h + ridge * np.eye(h.shape[0])


def context_step(
    params: Arrays,
    obs_norm: np.ndarray,
    actions: np.ndarray,
    ends: np.ndarray,
    *,
    history: int,
    step_size: float | np.ndarray,
    inner_steps: int = 1,
    ridge: float | None = None,
) -> np.ndarray:
    """The robot-side adaptation: the context after ``inner_steps`` steps on L from the
    meta-learned ``params['context']``, on episodes stored back to back (``obs_norm`` as the
    policy saw them, ``actions`` sampled and pre-clip, ``ends`` 1.0 on each last step).
    ``ridge`` None: plain gradient steps; else curvature-scaled ones (module docstring)."""
    p = {k: np.asarray(params[k], dtype=np.float64) for k in (*MODEL_KEYS, "context")}
    x, y, w = model_data(obs_norm, actions, ends, history)
    step = np.asarray(step_size, dtype=np.float64)
    h = None if ridge is None else context_curvature(p, x, w, y.shape[1], float(ridge))
    z = p["context"]
    for _ in range(int(inner_steps)):
        g = context_gradient(p, z, x, y, w)
        z = z - step * (g if h is None else np.linalg.solve(h, g))
    return z
