"""Find (or train, then cache) the dr and oracle baselines of a task distribution.

Cached under `runs/baselines/<task>/<algo>-seed<S>`: one pair per distribution and seed,
reused by every evaluation on that distribution. An unfinished cached run is resumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFAULT_ROOT = Path("runs") / "baselines"


def baseline_dir(root: str | Path, tasks: str, algo: str, seed: int) -> Path:
    from metabot.tasks import label

    return Path(root) / label(tasks) / f"{algo}-seed{seed}"


def find_or_train(
    tasks: str,
    algo: str,
    *,
    seed: int = 0,
    steps: int | None = None,
    root: str | Path = DEFAULT_ROOT,
    progress: bool = True,
) -> Path:
    """Run dir of a finished `algo` baseline on `tasks`, training or resuming it if needed."""
    from metabot.algos.runs import read_json
    from metabot.algos.trainer import train

    run_dir = baseline_dir(root, tasks, algo, seed)
    status: dict[str, Any] = {}
    if (run_dir / "run.json").is_file():
        status = read_json(run_dir / "run.json")
    if status.get("finished") and (run_dir / "agent.pt").is_file():
        return run_dir
    resume = (run_dir / "config.json").is_file()
    train(algo, tasks, run_dir, seed=seed, steps=None if resume else steps, resume=resume,
          progress=progress)
    return run_dir
