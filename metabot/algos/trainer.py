"""The training loop every algorithm shares: config, run directory, logs, checkpoints.

`train(...)` is what `metabot train` calls. Checkpoints are written between iterations
(temp file + os.replace) with the algorithm's RNG states, and every iteration derives its
tasks and env seeds from (seed, iteration), so a killed and resumed run ends with exactly
the weights of an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from metabot.algos import registry
from metabot.algos.config import build_config, digest, load_config_file, to_dict
from metabot.algos.runs import (
    CHECKPOINT_FORMAT,
    atomic_write_json,
    read_run_config,
    save_agent,
    torch_load,
    torch_save_atomic,
)
from metabot.errors import CheckpointError, ConfigError

_TOP_KEYS = {"algo", "tasks", "seed", "steps", "params", "digest", "run_id", "extended_from"}


def resolve_config(
    algo: str,
    tasks: str,
    seed: int,
    steps: int | None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The full validated run config (what config.json holds), with its digest."""
    cls = registry.get(algo)
    file_params: dict[str, Any] = {}
    if config_file is not None:
        data = load_config_file(config_file)
        if "params" in data:  # a saved config.json: take its params (and steps if not given)
            unknown = set(data) - _TOP_KEYS
            if unknown:
                raise ConfigError(f"unknown config key {sorted(unknown)[0]!r} in {config_file}")
            file_params = data["params"]
            if steps is None and isinstance(data.get("steps"), int):
                steps = data["steps"]
        else:
            file_params = dict(data)
            if "steps" in file_params:
                value = file_params.pop("steps")
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ConfigError(f"config key 'steps': expected an integer, got {value!r}")
                steps = steps if steps is not None else value
        if not isinstance(file_params, dict):
            raise ConfigError(f"config key 'params' in {config_file} must be an object")
    params = build_config(cls.Config, file_params, overrides)
    if steps is None:
        steps = cls.default_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ConfigError(f"config key 'steps' must be a positive integer, got {steps!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"config key 'seed' must be an integer, got {seed!r}")
    body = {"algo": algo, "tasks": tasks, "seed": seed, "steps": steps, "params": to_dict(params)}
    d = digest(body)
    from metabot.tasks import label

    return {**body, "digest": d, "run_id": f"{label(tasks)}-{algo}-seed{seed}-{d[:8]}"}


class _Logger:
    """CSV + TensorBoard scalars. TensorBoard is optional at import (train extra)."""

    def __init__(self, run_dir: Path, resume_at: int | None = None):
        self.csv_path = run_dir / "log.csv"
        self.fields: list[str] | None = None
        if self.csv_path.is_file():
            with self.csv_path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.fields = list(reader.fieldnames or []) or None
                rows = list(reader)
            if resume_at is not None and self.fields:  # drop rows logged after the checkpoint
                kept = [r for r in rows if float(r.get("env_steps") or 0) <= resume_at]
                if len(kept) != len(rows):
                    with self.csv_path.open("w", newline="") as f:
                        writer = csv.DictWriter(f, fieldnames=self.fields)
                        writer.writeheader()
                        writer.writerows(kept)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"))
        except ImportError:  # pragma: no cover - tensorboard is in the train extra
            self.tb = None

    def log(self, step: int, row: dict[str, float]) -> None:
        row = {"env_steps": step, **row}
        new_keys = [k for k in row if k not in (self.fields or [])]
        if new_keys:  # a new column (e.g. a new training phase): rewrite with a wider header
            old_rows = []
            if self.fields is not None and self.csv_path.is_file():
                with self.csv_path.open(newline="") as f:
                    old_rows = list(csv.DictReader(f))
            self.fields = [*(self.fields or []), *new_keys]
            with self.csv_path.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.fields)
                writer.writeheader()
                writer.writerows(old_rows)
        with self.csv_path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(k, "") for k in self.fields])
        if self.tb is not None:
            for k, v in row.items():
                if k != "env_steps" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _extended_config(cfg: dict[str, Any], steps: int) -> dict[str, Any]:
    """The config of a run whose budget grows to `steps` (``--resume --steps N``).

    Allowed only upward, and (checked by the caller) only for algorithms whose iterations do
    not depend on the budget, so the extended run is the run that would have been started
    with N steps. The old digests stay in ``extended_from``: the checkpoint written under
    them still loads.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= cfg["steps"]:
        raise ConfigError(
            f"--steps {steps!r} with --resume must exceed the run's {cfg['steps']} "
            "(a run's budget can only grow)"
        )
    body = {k: v for k, v in cfg.items() if k not in ("digest", "run_id")}
    body["steps"] = steps
    body["extended_from"] = [*cfg.get("extended_from", []), cfg["digest"]]
    return {**body, "digest": digest(body), "run_id": cfg["run_id"]}


def get_distribution(name: str) -> Any:
    """A task distribution by name: the task library's, or the built-in toy fixture."""
    from metabot.algos import toy

    if name in toy.DISTRIBUTIONS:
        return toy.get(name)
    from metabot import tasks as task_lib

    return task_lib.get(name)


def build_algorithm(cfg: dict[str, Any]):
    """Instantiate the Algorithm of a resolved config on its task distribution."""
    cls = registry.get(cfg["algo"])
    dist = get_distribution(cfg["tasks"])
    if getattr(dist, "action_type", "continuous") != "continuous":
        raise ConfigError(
            f"{cfg['tasks']} has {dist.action_type} actions; the metabot agents output "
            "continuous actions in [-1, 1]"
        )
    params = build_config(cls.Config, cfg["params"])
    return cls(dist, params, cfg["seed"], cfg["steps"])


def train(
    algo: str,
    tasks: str,
    out: str | Path,
    seed: int = 0,
    steps: int | None = None,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    progress: bool = True,
    checkpoint_every_s: float = 60.0,
    stop_after_iterations: int | None = None,
    max_minutes: float | None = None,
) -> Path:
    """Train `algo` on distribution `tasks` into run directory `out`; return `out`.

    `max_minutes` is a wall-clock budget for this session: after the iteration that
    crosses it the run checkpoints and stops (run.json: ``stopped: "time budget"``), so a
    "trained within N minutes" result is the run's own record, resumable with --resume.
    `stop_after_iterations` ends the process early after checkpointing, as a kill would
    (used by the resume-equivalence test).
    """
    if max_minutes is not None and not max_minutes > 0:
        raise ConfigError(f"--max-minutes must be positive, got {max_minutes!r}")
    import torch

    torch.set_num_threads(1)  # determinism across machines and fair sharing of cores
    out = Path(out)
    if resume:
        cfg = read_run_config(out)
        if algo and algo != cfg["algo"]:
            raise ConfigError(f"{out} is a {cfg['algo']} run, not {algo}")
        accepted = {cfg["digest"], *cfg.get("extended_from", [])}
        old_steps = cfg["steps"]
        if steps is not None and steps != old_steps:
            cfg = _extended_config(cfg, steps)
        algorithm = build_algorithm(cfg)
        if cfg["steps"] != old_steps and algorithm.budget_shapes_training():
            raise ConfigError(
                f"--steps {steps} differs from the run's {old_steps}, and {cfg['algo']} with "
                "this config uses its budget (a schedule or a phase switch), so it cannot be "
                "extended; start a new run"
            )
        ckpt_path = out / "checkpoint.pt"
        if ckpt_path.is_file():
            ckpt = torch_load(ckpt_path, CHECKPOINT_FORMAT)
            if ckpt.get("config_digest") not in accepted:
                raise CheckpointError(f"{ckpt_path} belongs to another config")
            try:
                algorithm.load_state_dict(ckpt["state"])
            except (KeyError, RuntimeError, ValueError, TypeError) as exc:
                raise CheckpointError(f"{ckpt_path} does not fit this run: {exc}") from None
    else:
        cfg = resolve_config(algo, tasks, seed, steps, config_file, overrides)
        if out.exists() and any(out.iterdir()):
            raise CheckpointError(
                f"{out} exists and is not empty (use --resume, or choose another --out)"
            )
        algorithm = build_algorithm(cfg)  # fails on an unknown task before anything is written
        out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", cfg)  # (a resumed run's, rewritten if extended)

    logger = _Logger(out, resume_at=algorithm.env_steps if resume else None)
    total = cfg["steps"]
    started = time.time()
    last_ckpt = time.time()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=min(algorithm.env_steps, total), unit="step",
                   desc=f"{cfg['algo']} {cfg['tasks']}", dynamic_ncols=True)

    def checkpoint(stopped: str | None = None) -> None:
        torch_save_atomic(out / "checkpoint.pt", {
            "format": CHECKPOINT_FORMAT, "config_digest": cfg["digest"],
            "state": algorithm.state_dict(),
        })
        # the agent as of this checkpoint: an interrupted run is still usable (finished=False)
        save_agent(out, algorithm.final_agent(), extra={"run_id": cfg["run_id"]})
        atomic_write_json(out / "run.json", {
            "run_id": cfg["run_id"], "env_steps": algorithm.env_steps,
            "iterations": algorithm.iteration, "finished": algorithm.env_steps >= total,
            "wall_s_last_session": round(time.time() - started, 1),
            **({"stopped": stopped} if stopped else {}),
        })

    iterations_this_session = 0
    try:
        while algorithm.env_steps < total:
            t0 = time.time()
            before = algorithm.env_steps
            metrics = algorithm.train_iteration()
            dt = max(time.time() - t0, 1e-9)
            metrics["steps_per_s"] = (algorithm.env_steps - before) / dt
            logger.log(algorithm.env_steps, metrics)
            if bar is not None:
                bar.update(min(algorithm.env_steps, total) - bar.n)
                bar.set_postfix(sps=f"{metrics['steps_per_s']:.0f}",
                                ret=f"{metrics.get('return', float('nan')):.2f}")
            iterations_this_session += 1
            if stop_after_iterations and iterations_this_session >= stop_after_iterations:
                checkpoint()
                return out
            if max_minutes is not None and time.time() - started >= 60.0 * max_minutes:
                checkpoint(stopped="time budget")
                return out
            if time.time() - last_ckpt >= checkpoint_every_s:
                checkpoint()
                last_ckpt = time.time()
        checkpoint()
    finally:
        logger.close()
        if bar is not None:
            bar.close()
    return out


def run_summary(run_dir: str | Path) -> dict[str, Any]:
    """config + status of a run, for printing."""
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    status_path = run_dir / "run.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {}
    return {"config": cfg, "status": status}
