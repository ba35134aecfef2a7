"""Head-only policy-gradient adaptation in numpy, for the torch-free runtime.

`anil` and head-only `metasgd` adapt only the linear Gaussian head `mean = W f + b` over the
frozen body's features `f`, with a fixed `log_std`. Its gradient is analytic, so the
robot computer runs the same step the trainer differentiates through, without autodiff.

ProMP's inner objective: advantages from a linear feature baseline fitted on the same
episodes, GAE, normalized; then `inner_steps` ascent steps on  J = mean_t ratio_t * A_t.
The advantage math lives only here (the robot side may not import the training package, so
metabot.algos.maml_numpy_head imports it from this module); tests/test_runtime_head.py checks
that the head step matches the trainer's and torch autograd.

Transitions: a dict of arrays over N steps, episodes back to back: `obs [N,O]` (raw),
`actions [N,A]` (the sampled, pre-clip actions: `Agent.last_sample`), `rewards [N]`,
`ends [N]` (1.0 on each episode's last step).
"""

from __future__ import annotations

from typing import Any

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))


def time_index(ends: np.ndarray) -> np.ndarray:
    t = np.zeros(len(ends))
    count = 0
    for i, end in enumerate(ends):
        t[i] = count
        count = 0 if end else count + 1
    return t


def discounted_returns(rewards: np.ndarray, ends: np.ndarray, gamma: float) -> np.ndarray:
    out = np.zeros_like(rewards)
    running = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        if ends[i]:
            running = 0.0
        running = rewards[i] + gamma * running
        out[i] = running
    return out


def baseline_features(obs: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The linear feature baseline of Duan et al. 2016 (rllab, garage, ProMP)."""
    o = np.clip(obs, -10.0, 10.0)
    al = t[:, None] / 100.0
    return np.concatenate([o, o * o, al, al**2, al**3, np.ones_like(al)], axis=1)


def fit_baseline(x: np.ndarray, returns: np.ndarray, reg: float = 1e-5) -> np.ndarray:
    xtx, xty = x.T @ x, x.T @ returns
    eye = np.eye(x.shape[1])
    for _ in range(6):
        coef = np.linalg.lstsq(xtx + reg * eye, xty, rcond=None)[0]
        if np.all(np.isfinite(coef)):
            return coef
        reg *= 10.0
    return np.zeros(x.shape[1])


def gae(rewards, values, ends, gamma: float, lam: float) -> np.ndarray:
    adv = np.zeros_like(rewards)
    last = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        next_value = 0.0 if ends[i] or i == len(rewards) - 1 else values[i + 1]
        if ends[i]:
            last = 0.0
        delta = rewards[i] + gamma * next_value - values[i]
        last = delta + gamma * lam * last
        adv[i] = last
    return adv


def advantages(
    obs_norm: np.ndarray, rewards: np.ndarray, ends: np.ndarray, gamma: float = 0.99,
    lam: float = 1.0, baseline: dict[str, Any] | None = None,
) -> np.ndarray:
    """Normalized GAE advantages against a linear baseline fitted on these episodes, or,
    given the ``baseline.*`` weights of a meta-learned one, against that (learned_advantages)."""
    if baseline is not None:
        return learned_advantages(obs_norm, rewards, ends, baseline, gamma, lam)
    rewards = np.asarray(rewards, dtype=np.float64)
    ends = np.asarray(ends, dtype=bool).copy()
    ends[-1] = True  # the batch ends an episode as far as returns go
    t = time_index(ends)
    x = baseline_features(obs_norm, t)
    values = x @ fit_baseline(x, discounted_returns(rewards, ends, gamma))
    adv = gae(rewards, values, ends, gamma, lam)
    if len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    return adv


def tanh_mlp(params: dict[str, Any], x: np.ndarray, prefix: str,
             linear_last: bool = False) -> np.ndarray:
    """An nn.Sequential of Linear and Tanh in numpy, by torch names
    ``{prefix}{2i}.weight/bias``: tanh after every layer (a policy body) or after all but
    the last (``linear_last``: a value net)."""
    x = np.asarray(x, dtype=np.float64)
    layers = []
    while f"{prefix}{2 * len(layers)}.weight" in params:
        i = 2 * len(layers)
        layers.append((np.asarray(params[f"{prefix}{i}.weight"], dtype=np.float64),
                       np.asarray(params[f"{prefix}{i}.bias"], dtype=np.float64)))
    for j, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if not (linear_last and j == len(layers) - 1):
            x = np.tanh(x)
    return x


def value_net(params: dict[str, Any], obs_norm: np.ndarray,
              prefix: str = "baseline.") -> np.ndarray:
    """The meta-learned baseline's value per observation (a tanh MLP, linear output)."""
    if f"{prefix}0.weight" not in params:
        raise ValueError(f"the parameters hold no {prefix}* value network")
    return tanh_mlp(params, obs_norm, prefix, linear_last=True)[:, 0]


def learned_advantages(
    obs_norm: np.ndarray, rewards: np.ndarray, ends: np.ndarray, params: dict[str, Any],
    gamma: float = 0.99, lam: float = 1.0,
) -> np.ndarray:
    """Normalized GAE advantages against the agent's meta-learned baseline
    (``inner_baseline = "learned"``; the trainer's twin is
    metabot.algos.gradient_functional.learned_advantages)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    adv = gae(rewards, value_net(params, obs_norm), np.asarray(ends, dtype=bool), gamma, lam)
    return (adv - adv.mean()) / (adv.std() + 1e-8)


def _log_prob(f, a, w, b, log_std) -> np.ndarray:
    z = (a - (f @ w.T + b)) / np.exp(log_std)
    return -0.5 * np.sum(z * z, axis=1) - np.sum(log_std) - 0.5 * a.shape[1] * LOG_2PI


def head_update(w, b, log_std, features, actions, adv, step_w, step_b, inner_steps: int):
    """`inner_steps` closed-form ascent steps on J; step sizes scalar or shaped like W / b."""
    logp_old = _log_prob(features, actions, w, b, log_std)
    inv_var = np.exp(-2.0 * log_std)
    for _ in range(inner_steps):
        ratio = np.exp(_log_prob(features, actions, w, b, log_std) - logp_old)
        g_mean = (actions - (features @ w.T + b)) * inv_var * (adv * ratio)[:, None] / len(adv)
        w, b = w + step_w * (g_mean.T @ features), b + step_b * g_mean.sum(axis=0)
    return w, b


def check_transitions(transitions: Any, obs_dim: int, act_dim: int) -> dict[str, np.ndarray]:
    """Validate the transitions dict; a clear ValueError instead of a silent bad update."""
    if not isinstance(transitions, dict):
        raise ValueError("transitions must be a dict with obs, actions, rewards, ends")
    missing = [k for k in ("obs", "actions", "rewards", "ends") if k not in transitions]
    if missing:
        raise ValueError(f"transitions lack {missing}")
    out = {
        k: np.asarray(transitions[k], dtype=np.float64)
        for k in ("obs", "actions", "rewards", "ends")
    }
    n = len(out["rewards"])
    want = {"obs": (n, obs_dim), "actions": (n, act_dim), "rewards": (n,), "ends": (n,)}
    for key, shape in want.items():
        if out[key].shape != shape:
            raise ValueError(f"transitions['{key}'] has shape {out[key].shape}, expected {shape}")
        if not np.isfinite(out[key]).all():
            raise ValueError(f"transitions['{key}'] contains NaN or Inf")
    if n < 2:
        raise ValueError(f"transitions hold {n} steps; adaptation needs at least 2")
    return out
