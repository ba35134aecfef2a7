"""Self-describing run directories: config, checkpoints, final agent, `load_agent`.

Layout of RUN_DIR:

    config.json         algo, tasks, seed, steps, params (validated), digest, run_id
    checkpoint.pt       latest training state (atomic: temp file + os.replace)
    agent.pt            the agent as of the last checkpoint (the final one once run.json
                        says finished): spec (class + kwargs) + weights + describe()
    run.json            status: env_steps, iterations, finished, wall time
    log.csv, tb/        training scalars (CSV and TensorBoard)
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from metabot.errors import CheckpointError

CHECKPOINT_FORMAT = "metabot-checkpoint/1"
AGENT_FORMAT = "metabot-agent/1"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def torch_save_atomic(path: Path, obj: Any) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def torch_load(path: Path, expected_format: str) -> dict[str, Any]:
    """Load a torch pickle written by metabot; anything unreadable -> CheckpointError."""
    import torch

    if not path.is_file():
        raise CheckpointError(f"{path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for truncated/garbage files
        raise CheckpointError(f"{path} is corrupt or not a metabot file ({exc})") from None
    if not isinstance(obj, dict) or obj.get("format") != expected_format:
        raise CheckpointError(f"{path} is not a {expected_format} file")
    return obj


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} not found (is this a metabot run directory?)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupt: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is corrupt: not a JSON object")
    return data


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """config.json of a run, checked against its own digest."""
    from metabot.algos.config import digest

    cfg = read_json(Path(run_dir) / "config.json")
    body = {k: v for k, v in cfg.items() if k not in ("digest", "run_id")}
    if cfg.get("digest") != digest(body):
        raise CheckpointError(f"{Path(run_dir) / 'config.json'} was edited (digest mismatch)")
    return cfg


def save_agent(run_dir: Path, agent: Any, extra: dict[str, Any] | None = None) -> Path:
    path = Path(run_dir) / "agent.pt"
    torch_save_atomic(
        path,
        {
            "format": AGENT_FORMAT,
            "spec": agent.spec(),
            "describe": agent.describe(),
            "state_dict": agent.state_dict(),
            "extra": extra or {},
        },
    )
    return path


def load_agent(run_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """Rebuild a run's final agent in eval mode, with a run_info dict for export/eval.

    run_info: run_id, algo, tasks (distribution name), seed, steps, config (params),
    config_digest, env_steps, finished, agent (the agent's describe()), run_dir.
    """
    from metabot.algos import registry
    from metabot.algos.agents import build_agent

    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    registry.names()  # import algorithm modules so their agent classes are registered
    blob = torch_load(run_dir / "agent.pt", AGENT_FORMAT)
    try:
        agent = build_agent(blob["spec"])
        agent.load_state_dict(blob["state_dict"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"{run_dir / 'agent.pt'} does not match its spec: {exc}") from None
    agent.eval()
    status = {}
    if (run_dir / "run.json").is_file():
        status = read_json(run_dir / "run.json")
    info = {
        "run_id": cfg["run_id"],
        "algo": cfg["algo"],
        "tasks": cfg["tasks"],
        "seed": cfg["seed"],
        "steps": cfg["steps"],
        "config": cfg["params"],
        "config_digest": cfg["digest"],
        "env_steps": status.get("env_steps"),
        "finished": bool(status.get("finished", False)),
        "agent": blob["describe"],
        "run_dir": str(run_dir),
    }
    return agent, info


def load_baseline_run(run_dir: str | Path, key: str, algo: str | tuple[str, ...],
                      dist: Any, hidden: tuple[str, list[int]] | None = None) -> Any:
    """The trained agent of a finished run of `algo` (one name or several) that a config key
    names (rma's `teacher_run`, rl2's `init_run` and `teacher_run`, the gradient family's
    `init_run`); ConfigError says what does not fit, naming the key. `hidden`, as (our
    key, our widths): the run's hidden widths must equal ours, for a warm start."""
    from metabot.errors import ConfigError

    algos = (algo,) if isinstance(algo, str) else tuple(algo)
    where = f"config key '{key}' ({str(run_dir)!r})"
    if not (Path(run_dir) / "agent.pt").is_file():
        raise ConfigError(f"{where}: no trained run there (agent.pt missing; the path is "
                          f"relative to the working directory {Path.cwd()})")
    try:
        agent, info = load_agent(run_dir)
    except CheckpointError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if info["algo"] not in algos:
        article = "an" if algos[0][0] in "aeiou" else "a"
        raise ConfigError(f"{where} is a {info['algo']} run; it must be {article} "
                          f"{' or '.join(algos)} run")
    if info["tasks"] != dist.name:
        raise ConfigError(f"{where} was trained on {info['tasks']}, not {dist.name}")
    if not info.get("finished"):
        raise ConfigError(f"{where} has not finished training; finish it first")
    if hidden is not None:
        ours, theirs = list(hidden[1]), list(agent.spec()["kwargs"]["hidden"])
        if ours != theirs:
            raise ConfigError(f"{where}: {hidden[0]} {ours} must equal the {info['algo']} "
                              f"run's hidden {theirs}")
    return agent
