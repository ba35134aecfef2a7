"""Throughput of our vectorized env vs a raw mj_step loop and gymnasium's SyncVectorEnv.

All three are reported in env steps per second at the distribution's own control rate:
`raw_mj_step_per_s` is a single-thread Python loop of `mujoco.mj_step` on the task's model,
divided by the physics steps per control step (the work one env step must do at least);
`ours_steps_per_s` is `dist.make_vec_env` (both cores); `gym_sync_steps_per_s` is
`gymnasium.vector.SyncVectorEnv` over `dist.make_env` of the same tasks.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np


def _rate(step, n_per_call: int, seconds: float) -> float:
    step()  # warm-up
    calls, t0 = 0, time.perf_counter()
    while True:
        step()
        calls += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and calls >= 3:
            return n_per_call * calls / dt


def raw_mj_step_rate(model, substeps: int, seconds: float) -> float:
    """Single-thread mj_step loop, env-equivalent (divided by substeps)."""
    import mujoco

    data = mujoco.MjData(model)
    if model.nkey:
        mujoco.mj_resetDataKeyframe(model, data, 0)

    def step() -> None:
        for _ in range(200):
            mujoco.mj_step(model, data)
            if not np.isfinite(data.qacc).all():  # pragma: no cover - unstable model
                mujoco.mj_resetData(model, data)

    return _rate(step, 200, seconds) / substeps


def bench_sim(
    name: str,
    *,
    n_envs: int = 256,
    gym_envs: int = 16,
    seconds: float = 3.0,
    rounds: int = 5,
    seed: int = 0,
) -> dict:
    """Measure the three rates in interleaved rounds and keep each one's best round.

    The machine is shared: interleaving gives every contender the same background load, and
    best-of-rounds (as `timeit` does) estimates what the code can do rather than the noise.
    """
    import gymnasium as gym

    from metabot import tasks

    dist = tasks.get(name)
    train = dist.sample(n_envs, split="train", seed=seed)
    vec = dist.make_vec_env(train, seed=seed)
    vec.reset(seed=seed)
    acts = [vec.action_space.sample() for _ in range(8)]
    sync = gym.vector.SyncVectorEnv(
        [lambda t=t, i=i: dist.make_env(t, seed=seed + i) for i, t in enumerate(train[:gym_envs])]
    )
    sync.reset(seed=seed)
    gacts = [sync.action_space.sample() for _ in range(8)]
    model = dist.build_model(train[0])
    k = [0]

    def ours() -> None:
        vec.step(acts[k[0] % 8])
        k[0] += 1

    def gym_sync() -> None:
        sync.step(gacts[k[0] % 8])
        k[0] += 1

    per = seconds / rounds
    rates: dict[str, list[float]] = {"ours": [], "raw": [], "gym": []}
    for _ in range(rounds):
        rates["raw"].append(raw_mj_step_rate(model, dist.substeps, per))
        rates["ours"].append(_rate(ours, n_envs, per))
        rates["gym"].append(_rate(gym_sync, gym_envs, per))
    vec.close()
    sync.close()
    best = {key: max(v) for key, v in rates.items()}
    return {
        "task": name,
        "ours_steps_per_s": round(best["ours"], 1),
        "raw_mj_step_per_s": round(best["raw"], 1),
        "gym_sync_steps_per_s": round(best["gym"], 1),
        "ours_over_raw": round(best["ours"] / best["raw"], 3),
        "ours_over_gym_sync": round(best["ours"] / best["gym"], 3),
        "median_steps_per_s": {key: round(float(np.median(v)), 1) for key, v in rates.items()},
        # paired per round (same background load): ours / raw and ours / gym
        "round_ours_over_raw": [
            round(o / r, 3) for o, r in zip(rates["ours"], rates["raw"], strict=True)
        ],
        "round_ours_over_gym_sync": [
            round(o / g, 3) for o, g in zip(rates["ours"], rates["gym"], strict=True)
        ],
        "n_envs": n_envs,
        "gym_sync_envs": gym_envs,
        "physics_steps_per_env_step": dist.substeps,
        "control_dt": dist.dt,
        "cores": os.cpu_count(),
        "threads": getattr(getattr(vec, "batch", None), "nthread", None),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "machine": platform.processor() or platform.machine(),
        "seconds_total": seconds * 3,
        "rounds": rounds,
        "vec_env": type(vec).__name__,
    }
