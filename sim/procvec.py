"""A vector env for gymnasium-based distributions: one sub-env per task, on 2 worker processes.

gymnasium's AsyncVectorEnv runs one process per sub-env (slower than SyncVectorEnv on 2 cores,
measured in issue #2); here each of `n_workers` (= cores, at most 2) processes steps a slice of
the sub-envs in a loop and exchanges one batch of arrays per step over a pipe, so the IPC cost
is paid per worker, not per env. Workers are started with `spawn` and rebuild their envs from
(distribution name or spec path, task dicts, seeds), so nothing unpicklable crosses over and
no MuJoCo state is forked.

Autoreset: SAME_STEP, exactly as the arm vector env (see docs/tasks.md): an ending sub-env is
reset inside the same `step`; its last observation is in info["final_obs"] (valid where
info["_final_obs"]), and scalar infos are returned as arrays with a "_key" mask.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv


def _make_envs(source: str, task_dicts: list[dict], seeds: list[int | None]) -> list[gym.Env]:
    from metabot import tasks

    dist = tasks.from_spec(source) if source.endswith(".toml") else tasks.get(source)
    return [
        dist.make_env(tasks.Task.from_dict(d), seed=s)
        for d, s in zip(task_dicts, seeds, strict=True)
    ]


def _scalar_infos(info: dict) -> dict[str, float]:
    out = {}
    for k, v in info.items():
        if isinstance(v, bool | int | float | np.floating | np.integer | np.bool_):
            out[k] = float(v)
    return out


class _Slice:
    """The sub-envs one worker owns, stepped in a loop with same-step autoreset."""

    def __init__(self, envs: list[gym.Env]):
        self.envs = envs

    def reset(self, seeds: list[int | None]) -> tuple[np.ndarray, list[dict]]:
        obs, infos = [], []
        for env, s in zip(self.envs, seeds, strict=True):
            o, i = env.reset(seed=s)
            obs.append(o)
            infos.append(_scalar_infos(i))
        return np.stack(obs), infos

    def step(self, actions: np.ndarray) -> tuple:
        obs, rew, term, trunc, infos, final = [], [], [], [], [], []
        for env, a in zip(self.envs, actions, strict=True):
            o, r, te, tr, info = env.step(a)
            info = _scalar_infos(info)
            if te or tr:
                final.append(o)
                o, _ = env.reset()
            else:
                final.append(None)
            obs.append(o)
            rew.append(r)
            term.append(te)
            trunc.append(tr)
            infos.append(info)
        return (
            np.stack(obs),
            np.array(rew, np.float64),
            np.array(term),
            np.array(trunc),
            infos,
            final,
        )


def _worker(conn, source: str, task_dicts: list[dict], seeds: list[int | None]) -> None:
    try:
        sl = _Slice(_make_envs(source, task_dicts, seeds))
        conn.send(("ok", None))
    except Exception as exc:  # report construction errors to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    while True:
        cmd, arg = conn.recv()
        if cmd == "step":
            conn.send(sl.step(arg))
        elif cmd == "reset":
            conn.send(sl.reset(arg))
        elif cmd == "close":
            for env in sl.envs:
                env.close()
            conn.close()
            return


class ProcVectorEnv(VectorEnv):
    """Sub-envs split over worker processes (in-process when n_workers == 1)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        source: str,
        task_dicts: list[dict],
        single_env: gym.Env,
        seed: int | None = None,
        n_workers: int | None = None,
    ):
        n = len(task_dicts)
        if n_workers is None:
            n_workers = min(2, os.cpu_count() or 1, n)
        self.num_envs = n
        self.single_observation_space = single_env.observation_space
        self.single_action_space = single_env.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, n)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, n)
        self.dt = single_env.unwrapped.dt
        self.render_mode = None
        self._seed = seed
        seeds = [None if seed is None else seed + i for i in range(n)]
        self._bounds = np.linspace(0, n, n_workers + 1).astype(int)
        self._local: _Slice | None = None
        self._conns = []
        self._procs = []
        if n_workers <= 1:
            self._local = _Slice(_make_envs(source, task_dicts, seeds))
            return
        ctx = mp.get_context("spawn")
        for w in range(n_workers):
            lo, hi = self._bounds[w], self._bounds[w + 1]
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=_worker, args=(child, source, task_dicts[lo:hi], seeds[lo:hi]), daemon=True
            )
            p.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(p)
        for c in self._conns:
            status, msg = c.recv()
            if status != "ok":
                self.close()
                raise RuntimeError(f"vector env worker failed: {msg}")

    def _call(self, cmd: str, args: list[Any]) -> list:
        if self._local is not None:
            return [getattr(self._local, cmd)(args[0])]
        for c, a in zip(self._conns, args, strict=True):
            c.send((cmd, a))
        return [c.recv() for c in self._conns]

    def _split(self, x) -> list:
        return [x[self._bounds[w] : self._bounds[w + 1]] for w in range(len(self._bounds) - 1)]

    @staticmethod
    def _merge_infos(infos: list[dict]) -> dict:
        keys = sorted({k for i in infos for k in i})
        out: dict = {}
        for k in keys:
            mask = np.array([k in i for i in infos])
            out[k] = np.array([i.get(k, 0.0) for i in infos])
            out["_" + k] = mask
        return out

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, list | tuple):  # gymnasium also allows one seed per sub-env
            seeds = list(seed)
        else:
            if seed is not None:
                self._seed = seed
            seeds = [None if self._seed is None else self._seed + i for i in range(self.num_envs)]
        self._seed = None  # later resets continue each env's own rng stream
        res = self._call("reset", self._split(seeds))
        obs = np.concatenate([r[0] for r in res])
        return obs, self._merge_infos([i for r in res for i in r[1]])

    def step(self, actions):
        actions = np.asarray(actions)
        res = self._call("step", self._split(actions))
        obs = np.concatenate([r[0] for r in res])
        rew = np.concatenate([r[1] for r in res])
        term = np.concatenate([r[2] for r in res])
        trunc = np.concatenate([r[3] for r in res])
        info = self._merge_infos([i for r in res for i in r[4]])
        final = [f for r in res for f in r[5]]
        done = term | trunc
        if done.any():
            fo = np.zeros_like(obs)
            for i in np.flatnonzero(done):
                fo[i] = final[i]
            info["final_obs"] = fo
            info["_final_obs"] = done.copy()
        return obs, rew, term, trunc, info

    def close_extras(self, **kwargs) -> None:
        for c in self._conns:
            try:
                c.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        self._conns, self._procs = [], []
        if self._local is not None:
            for env in self._local.envs:
                env.close()
