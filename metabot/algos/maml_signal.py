"""How much of a task's dynamics a policy-gradient step can see: a measurement, not a test.

    python -m metabot.algos.maml_signal --tasks arm2d-reach --dr RUN --log-stds -3.3 -1.6 -0.7 \
        --n-tasks 256 --episodes 1 10 --json bench/arm2d-reach_pg_signal.json

For each of ``--n-tasks`` training tasks, the dr policy (its mean plus Gaussian noise of each
``--log-stds``) runs ``max(--episodes)`` episodes. Three statistics of the first k episodes
are then read out, across tasks, by a cross-validated ridge regression onto the task's true
(normalized) dynamics parameters, the oracle's inputs:

- ``pg``: the policy gradient of the head (ProMP's inner step: linear-baseline GAE
  advantages, normalized), which is all a policy-gradient inner step of anil adds to the
  policy (maml's step is the same advantage-weighted noise, through every layer);
- ``pg_td<lambda>``: the same head gradient, but with GAE(lambda) of TD residuals (each of
  ``--td-lambdas``; lambda 0 is the one-step residual) against a value function shared by
  all tasks (ridge on the dr policy's body features, fitted to
  discounted returns across every task): the advantage a meta-learned baseline
  (``inner_baseline=learned``) could give at best, since a TD residual sees where the
  dynamics took the arm after each noisy action;
- ``sysid``: the least-squares fit of the next normalized observation's change on the
  observation and the last 7 applied actions, the regression an engineer would run for
  system identification (and what the model inner loss's step builds on).

Out-of-fold R^2 per parameter says how much of it the statistic carries: information the
step can use at best. Why this exists: the policy-gradient inner step never reached
S(10) >= 0.7 on arm2d-reach (docs/gradient_meta.md), and this says whether that is the
meta-learner's fault or the gradient's.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def ridge_r2(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0,
             alphas: tuple[float, ...] = (1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)) -> np.ndarray:
    """Out-of-fold R^2 of ridge regression from x [n, d] onto each column of y [n, m], with
    the ridge weight chosen per column by the same folds (a little optimistic, equally for
    every statistic compared). Features are standardized inside each fold."""
    n = len(x)
    order = np.random.default_rng(seed).permutation(n)
    fold_of = np.empty(n, dtype=int)
    fold_of[order] = np.arange(n) % folds
    best = np.full(y.shape[1], -np.inf)
    for alpha in alphas:
        pred = np.zeros_like(y)
        for f in range(folds):
            tr, te = fold_of != f, fold_of == f
            mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-12
            xs_tr, xs_te = (x[tr] - mu) / sd, (x[te] - mu) / sd
            ym = y[tr].mean(0)
            d = xs_tr.shape[1]
            coef = np.linalg.solve(xs_tr.T @ xs_tr + alpha * np.eye(d), xs_tr.T @ (y[tr] - ym))
            pred[te] = xs_te @ coef + ym
        ss = ((y - y.mean(0)) ** 2).sum(0)
        r2 = 1.0 - ((y - pred) ** 2).sum(0) / np.maximum(ss, 1e-12)
        best = np.maximum(best, r2)
    return best


def head_pg(feats: np.ndarray, actions: np.ndarray, adv: np.ndarray,
            params: dict[str, torch.Tensor]) -> np.ndarray:
    """The head's policy gradient for these advantages, flattened: W's rows, then b."""
    from metabot.algos.maml_numpy_head import head_gradient

    g_w, g_b = head_gradient(feats, actions, adv, params["head.weight"].double().numpy(),
                             params["head.bias"].double().numpy(),
                             params["log_std"].double().numpy())
    return np.concatenate([g_w.ravel(), g_b])


def pg_statistic(feats: np.ndarray, params: dict[str, torch.Tensor], e: Any,
                 gamma: float) -> np.ndarray:
    """The head's policy gradient with ProMP's advantages (linear baseline, lambda 1)."""
    from metabot.runtime.head import advantages

    adv = advantages(e.obs_norm, e.rewards, e.ends, gamma=gamma, lam=1.0)
    return head_pg(feats, e.actions, adv, params)


def shared_value_fn(feats: list[np.ndarray], episodes: list[Any], gamma: float,
                    reg: float = 1e-3) -> np.ndarray:
    """Ridge weights of V(s) = [features, 1] @ w fitted to the discounted returns of every
    task's episodes at once: one value function for the whole distribution, blind to the
    task, as a meta-learned baseline is."""
    from metabot.runtime.head import discounted_returns

    x = np.concatenate([np.c_[f, np.ones(len(f))] for f in feats])
    y = np.concatenate([discounted_returns(np.asarray(e.rewards, dtype=np.float64),
                                           np.asarray(e.ends, dtype=bool), gamma)
                        for e in episodes])
    return np.linalg.solve(x.T @ x + reg * np.eye(x.shape[1]), x.T @ y)


def td_pg_statistic(feats: np.ndarray, params: dict[str, torch.Tensor], e: Any,
                    value_w: np.ndarray, gamma: float, lam: float = 0.0) -> np.ndarray:
    """The head's policy gradient with GAE(lam) advantages against the shared value."""
    from metabot.runtime.head import gae

    values = np.c_[feats, np.ones(len(feats))] @ value_w
    adv = gae(np.asarray(e.rewards, dtype=np.float64), values,
              np.asarray(e.ends, dtype=bool), gamma, lam)
    return head_pg(feats, e.actions, (adv - adv.mean()) / (adv.std() + 1e-8), params)


def sysid_statistic(e: Any, lags: int = 6) -> np.ndarray:
    """Least-squares d(obs_norm) ~ [obs_norm, the applied action and its ``lags`` past
    values, 1] within episodes, flattened: the model inner loss's regression without z
    (metabot.runtime.model_context.model_data builds the same inputs)."""
    from metabot.runtime.model_context import model_data

    x, y, w = model_data(e.obs_norm, e.actions, e.ends, lags)
    keep = w > 0
    x = np.concatenate([x[keep], np.ones((int(keep.sum()), 1))], axis=1)
    coef = np.linalg.solve(x.T @ x + 1e-6 * np.eye(x.shape[1]), x.T @ y[keep])
    return coef.ravel()


def measure(tasks: str, dr_run: str, log_stds: list[float], n_tasks: int,
            episodes: list[int], seed: int,
            td_lambdas: tuple[float, ...] = (0.0, 0.9)) -> dict[str, Any]:
    from metabot.algos import gradient_functional as gf
    from metabot.algos.envs import EnvBatch
    from metabot.algos.gradient_agent import GradientAgent
    from metabot.algos.gradient_meta import warm_start_from_dr
    from metabot.algos.gradient_sampler import collect
    from metabot.algos.runs import load_agent
    from metabot.algos.trainer import get_distribution

    dist = get_distribution(tasks)
    hidden = list(load_agent(dr_run)[0].spec()["kwargs"]["hidden"])
    agent = GradientAgent(dist.obs_dim, dist.act_dim, 0, algo="anil", hidden=hidden,
                          adapt_head_only=True)
    warm_start_from_dr(agent, dr_run, dist)
    dr_log_std = float(agent.policy.log_std.detach().mean())
    task_list = dist.sample(n_tasks, split="train", seed=seed)
    names = list(dist.oracle_names)
    print("parameters:", " ".join(names), flush=True)
    rows = []
    for log_std in log_stds:
        with torch.no_grad():
            agent.policy.log_std.fill_(float(log_std))
        params = {k: v.detach() for k, v in agent.params().items()}
        envs = EnvBatch(dist, task_list, seed=seed + 1)
        t0 = time.perf_counter()
        try:
            eps, steps = collect(envs, agent.policy, agent.obs_norm,
                                 gf.stack_params(params, n_tasks), max(episodes),
                                 seed=seed + 2, generator=torch.Generator().manual_seed(seed))
            truth = envs.privileged.astype(np.float64)
        finally:
            envs.close()
        for k in episodes:
            first = [e.first(k) for e in eps]
            with torch.no_grad():
                feats = [agent.policy.features(torch.as_tensor(e.obs_norm, dtype=torch.float32))
                         .double().numpy() for e in first]
            value_w = shared_value_fn(feats, first, 0.99)
            stats = {"pg": np.stack([pg_statistic(f, params, e, 0.99)
                                     for f, e in zip(feats, first, strict=True)]),
                     **{f"pg_td{lam:g}": np.stack([
                         td_pg_statistic(f, params, e, value_w, 0.99, lam)
                         for f, e in zip(feats, first, strict=True)]) for lam in td_lambdas},
                     "sysid": np.stack([sysid_statistic(e) for e in first])}
            for name, x in stats.items():
                r2 = ridge_r2(x, truth, seed=seed)
                rows.append({"log_std": log_std, "episodes": k, "statistic": name,
                             "dim": int(x.shape[1]),
                             "r2": {n: round(float(v), 3) for n, v in zip(names, r2, strict=True)},
                             "mean_r2": round(float(np.mean(r2)), 3)})
                print(f"log_std {log_std:+.2f}  k={k:2d}  {name:8s}  mean R^2 "
                      f"{np.mean(r2):+.3f}  " + " ".join(f"{v:+.2f}" for v in r2), flush=True)
        print(f"  ({steps} env steps in {time.perf_counter() - t0:.0f} s)", flush=True)
    return {"tasks": tasks, "dr_run": str(dr_run), "dr_log_std": dr_log_std,
            "n_tasks": n_tasks, "seed": seed, "parameters": names, "rows": rows,
            "machine": platform.node(), "date": time.strftime("%Y-%m-%d")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m metabot.algos.maml_signal",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="arm2d-reach")
    ap.add_argument("--dr", required=True, help="a finished dr run directory")
    ap.add_argument("--log-stds", type=float, nargs="+", default=[-3.3, -1.6, -0.7])
    ap.add_argument("--n-tasks", type=int, default=256)
    ap.add_argument("--episodes", type=int, nargs="+", default=[1, 10])
    ap.add_argument("--td-lambdas", type=float, nargs="+", default=[0.0, 0.9])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.n_tasks < 10 or min(args.episodes) < 1:
        ap.error("--n-tasks must be >= 10 (5 folds) and --episodes >= 1")
    if not all(0.0 <= lam <= 1.0 for lam in args.td_lambdas):
        ap.error("--td-lambdas must lie in [0, 1]")
    out = measure(args.tasks, args.dr, args.log_stds, args.n_tasks, args.episodes, args.seed,
                  tuple(args.td_lambdas))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
