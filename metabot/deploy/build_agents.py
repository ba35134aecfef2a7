"""Build the shipped arm6-reach agents: the one documented command.

    python -m metabot.deploy.build_agents [--out DIR] [--runs DIR] [--jobs N]

trains the adaptive agent (rma), the dr baseline and the oracle with the committed config
`metabot/agents/arm6-reach.json` (for each agent: algo, tasks, seed, steps and every
hyper-parameter, exactly a run's config.json minus its digest) and exports each run to
DIR/arm6-reach-{rma,dr,oracle}.onnx (default: metabot/agents/, the shipped files).
Every artifact records the digest of its config (metadata.training.config_digest), and
tests/test_deploy_agents.py checks that the shipped ones match the committed config, so
anyone can rebuild them. The trainings run side by side (`--jobs`, default 3), except that
an agent whose `teacher_run` names another agent (rma -> oracle) starts when that run has
finished: on 2 idle cores dr and the oracle take about 22.5 minutes, the rma student 11 more
(measured 2026-11-23; far longer when other jobs share the cores). `metabot demo
--from-scratch` calls `build`.

Needs the `train` and `sim` extras (torch, mujoco): this is the training-machine side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from metabot.errors import ConfigError

AGENTS = ("rma", "dr", "oracle")
CONFIG_NAME = "arm6-reach.json"
TASK = "arm6-reach"


def committed_config() -> dict[str, Any]:
    """The committed training config of the shipped agents: {name: run config body}."""
    text = (resources.files("metabot.agents") / CONFIG_NAME).read_text()
    data = json.loads(text)
    missing = [n for n in AGENTS if n not in data.get("agents", {})]
    if missing:
        raise ConfigError(f"{CONFIG_NAME}: no config for {missing}")
    return data["agents"]


def teacher_of(cfg: dict[str, Any], name: str) -> str | None:
    """The agent whose run is `name`'s teacher (rma's `teacher_run`), or None."""
    teacher = cfg[name].get("params", {}).get("teacher_run") or None
    if teacher is not None and (teacher not in cfg or teacher == name):
        raise ConfigError(f"{CONFIG_NAME}: {name}'s teacher_run must name another agent of the "
                          f"file ({', '.join(n for n in AGENTS if n != name)}), not {teacher!r}")
    return teacher


def config_digest(body: dict[str, Any]) -> str:
    """The digest a training run with this config records (metabot.algos.config.digest)."""
    from metabot.algos.config import digest

    keys = ("algo", "tasks", "seed", "steps", "params")
    return digest({k: body[k] for k in keys})


def build(
    out_dir: str | os.PathLike | None = None,
    *,
    runs_dir: str | os.PathLike | None = None,
    jobs: int = 3,
    console: Any = None,
    steps_scale: float = 1.0,
) -> dict[str, Path]:
    """Train and export the three agents; returns {name: artifact path}.

    Each training runs as `metabot train` in its own process (crash-safe checkpoints; an
    interrupted build resumes where it stopped). `steps_scale` < 1 is for smoke tests only:
    it changes the config, so the digests then differ from the committed ones.
    """
    cfg = committed_config()
    out = Path(out_dir) if out_dir is not None else Path(str(resources.files("metabot.agents")))
    out.mkdir(parents=True, exist_ok=True)
    runs = Path(runs_dir) if runs_dir is not None else out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen] = {}
    pending = list(AGENTS)
    t0 = time.monotonic()
    logs = {}
    bars = _Bars(console, {n: int(cfg[n]["steps"] * steps_scale) or 1 for n in AGENTS})
    try:
        _train_all(cfg, runs, procs, pending, logs, jobs, console, steps_scale, t0, bars)
    finally:
        bars.stop()
    paths = {}
    from metabot.export.agent import export_agent

    for name in AGENTS:
        paths[name] = export_agent(runs / name, out / f"{TASK}-{name}.onnx")
        _say(console, f"exported {paths[name]}")
    return paths


class _Bars:
    """One rich progress bar per training, fed from each run's log.csv (env_steps)."""

    def __init__(self, console: Any, totals: dict[str, int]):
        self.progress = None
        if console is None:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress("[progress.description]{task.description}", BarColumn(),
                                 MofNCompleteColumn(), "env steps", TimeElapsedColumn(),
                                 console=console)  # fmt: skip
        self.ids = {n: self.progress.add_task(f"train {n:<6}", total=t) for n, t in totals.items()}
        self.progress.start()

    def update(self, runs: Path) -> None:
        if self.progress is None:
            return
        for name, tid in self.ids.items():
            log = runs / name / "log.csv"
            try:
                last = log.read_text().strip().splitlines()[-1].split(",")[0]
                self.progress.update(tid, completed=int(float(last)))
            except (OSError, IndexError, ValueError):
                continue

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _train_all(cfg, runs, procs, pending, logs, jobs, console, steps_scale, t0, bars) -> None:
    while pending or procs:
        while pending and len(procs) < max(1, jobs):
            # an agent whose teacher is another agent's run waits until that run has finished
            ready = [n for n in pending if teacher_of(cfg, n) not in (*pending, *procs)]
            if not ready:
                break
            name = ready[0]
            pending.remove(name)
            body = dict(cfg[name])
            if steps_scale != 1.0:
                body["steps"] = max(1, int(body["steps"] * steps_scale))
            cfg_file = runs / f"{name}.config.json"
            cfg_file.write_text(json.dumps(body, indent=1))
            run_dir = runs / name
            # run from the runs directory: a teacher_run names its sibling run directory
            cmd = [sys.executable, "-m", "metabot", "train", "--algo", body["algo"],
                   "--tasks", body["tasks"], "--seed", str(body["seed"]),
                   "--out", str(run_dir.resolve()), "--config", str(cfg_file.resolve()),
                   "--no-progress"]
            if (run_dir / "checkpoint.pt").is_file():
                cmd.append("--resume")
            logs[name] = open(runs / f"{name}.train.log", "a")  # noqa: SIM115
            procs[name] = subprocess.Popen(cmd, stdout=logs[name], stderr=subprocess.STDOUT,
                                           cwd=runs)
            _say(console, f"training {name}: {' '.join(cmd[2:])}")
        for name, p in list(procs.items()):
            if p.poll() is None:
                continue
            logs[name].close()
            del procs[name]
            if p.returncode != 0:
                for q in procs.values():
                    q.terminate()
                tail = (runs / f"{name}.train.log").read_text().splitlines()[-3:]
                raise ConfigError(f"training {name} failed (exit {p.returncode}): "
                                  + " | ".join(tail))
            _say(console, f"{name} trained ({time.monotonic() - t0:.0f} s)")
        bars.update(runs)
        time.sleep(1.0)


def _say(console: Any, text: str) -> None:
    if console is not None:
        console.print(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="artifact directory (default: metabot/agents/)")
    parser.add_argument("--runs", help="run directories (default: OUT/runs)")
    parser.add_argument("--jobs", type=int, default=3, help="trainings at once (default 3)")
    args = parser.parse_args(argv)
    from rich.console import Console

    try:
        build(args.out, runs_dir=args.runs, jobs=args.jobs, console=Console())
    except ConfigError as exc:
        print(f"build_agents: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
