"""`metabot deploy` as a Python function: connect, home, run episodes, adapt, report.

    from metabot.deploy.session import deploy
    report = deploy("AGENT.onnx", "/dev/ttyUSB0", episodes=5, out_dir="deploy_out")

The robot side only: numpy, onnxruntime, pyserial (no torch, no mujoco).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from metabot.deploy.loop import (
    Deployment,
    Segment,
    arm_from_metadata,
    needs_privileged,
    sample_goals,
)
from metabot.errors import ConfigError

# Host-side link-loss limit and MCU watchdog used by deploy. The artifact's control period is
# 20 ms; 0.1 s is five periods: long enough that one slow cycle on a busy host does not stop
# the run, short enough that a dead link is noticed before the arm travels far.
LINK_TIMEOUT_S = 0.1
WATCHDOG_S = 0.25


def ftdi_latency_warning(url: str) -> str | None:
    """A warning when `url` is an FTDI adapter whose latency timer is above 1 ms (Linux).

    FTDI adapters hold received bytes up to their latency timer (16 ms by default), which
    makes every STATE up to 16 ms old; docs/deploy_real_arm.md says how to set it to 1 ms.
    """
    if "://" in url:
        return None
    try:
        dev = os.path.basename(os.path.realpath(url))
        path = Path("/sys/bus/usb-serial/devices") / dev / "latency_timer"
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    if value <= 1:
        return None
    return (
        f"{url} is an FTDI adapter with a {value} ms latency timer: states reach the host up "
        f"to {value} ms late. Set it to 1 ms: echo 1 | sudo tee {path} "
        "(or a udev rule, see docs/deploy_real_arm.md)"
    )


def open_robot(
    url: str,
    metadata: dict,
    *,
    baudrate: int = 1_000_000,
    watchdog_s: float = WATCHDOG_S,
    watchdog_action: str = "hold",
    handle_signals: bool = True,
):
    """A SerialRobot configured from the artifact: joint names (checked at handshake), home
    pose and control rate; the MCU watchdog holds the arm if this process dies."""
    from metabot.hardware.serial_robot import SerialRobot

    arm = arm_from_metadata(metadata)
    return SerialRobot(
        url,
        baudrate=baudrate,
        joint_names=arm.joints,
        home=arm.home,
        control_rate_hz=float(metadata["task"]["control_rate_hz"]),
        watchdog_s=watchdog_s,
        watchdog_action=watchdog_action,
        handle_signals=handle_signals,
    )


def episode_steps(metadata: dict) -> int:
    """The training episode length recorded in the artifact (task ranges), else 2 s."""
    ranges = metadata.get("task", {}).get("ranges", {})
    steps = ranges.get("episode_steps")
    if isinstance(steps, int) and steps > 0:
        return steps
    return int(round(2.0 * float(metadata["task"]["control_rate_hz"])))


def deploy(
    agent_path: str | os.PathLike,
    robot_url: str,
    *,
    episodes: int = 5,
    out_dir: str | os.PathLike = "deploy_out",
    steps: int | None = None,
    seed: int = 0,
    baudrate: int = 1_000_000,
    link_timeout_s: float = LINK_TIMEOUT_S,
    watchdog_s: float = WATCHDOG_S,
    home_speed: float = 1.0,
    max_step: float | None = None,
    realtime: bool = True,
    console: Any = None,
) -> dict[str, Any]:
    """Run `episodes` episodes of the agent on the robot with online adaptation; write
    report.json, adaptation_curve.png and cycles.jsonl into `out_dir`; return the report.

    realtime: ask for SCHED_FIFO before any thread starts (a robot controller should not
    wait behind batch work); where that is not allowed it runs as it is and says so."""
    from metabot import runtime
    from metabot.deploy import report
    from metabot.hardware.realtime import current_policy, enable_realtime
    from metabot.hardware.safety import SafetyConfig

    if episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {episodes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    agent = runtime.load(agent_path, seed=seed)
    if needs_privileged(agent):  # refuse before touching the robot
        raise ConfigError(
            f"{agent_path}: the {agent.algorithm} agent needs the true dynamics (privileged "
            "features), which a real robot cannot report; deploy an adaptive or dr agent"
        )
    meta = agent.metadata
    arm = arm_from_metadata(meta)
    n_steps = steps or episode_steps(meta)
    warning = ftdi_latency_warning(robot_url)
    if warning and console is not None:
        console.print(f"[yellow]warning:[/] {warning}")
    goals = sample_goals(arm, episodes, seed)
    segments = [
        Segment(goals[i], n_steps, forget=(i == 0), tag=f"episode {i + 1}")
        for i in range(episodes)
    ]
    scheduler = enable_realtime() if realtime else current_policy()
    t_start = time.time()
    with open_robot(robot_url, meta, baudrate=baudrate, watchdog_s=watchdog_s) as robot:
        robot.enable()
        dep = Deployment(
            agent, robot, arm=arm,
            safety=SafetyConfig(link_timeout_s=link_timeout_s, max_step=max_step),
            log_path=str(out / "cycles.jsonl"), home_speed=home_speed,
            first_home_speed=min(home_speed, 0.5),  # the first move: the arm may be anywhere
        )  # fmt: skip
        with _progress(console, f"deploy {agent.algorithm}", episodes * n_steps) as tick:
            results = dep.run(segments, progress=tick, log_meta={"robot": robot_url})
        loop_stats = dep.loop.stats.to_dict()
        link = robot.link_stats() if hasattr(robot, "link_stats") else {}
    eps = [
        {**r.summary(), "per_step": {
            "tip_error_mm": (r.tip_error_m * 1e3).tolist(), "reward": r.rewards.tolist(),
            "act_us": (r.act_s * 1e6).tolist(), "applied_action": r.applied.tolist()}}
        for r in results
    ]
    act_s = np.concatenate([r.act_s for r in results])
    rep = {
        "agent": str(agent_path),
        "algorithm": agent.algorithm,
        "adaptation": meta["adaptation"]["kind"],
        "training": meta.get("training", {}),
        "robot": robot_url,
        "control_rate_hz": dep.rate_hz,
        "episode_steps": n_steps,
        "seed": seed,
        "started_unix": t_start,
        "wall_s": time.time() - t_start,
        "episodes": eps,
        "return": [e["return"] for e in eps],
        "final_tip_error_mm": [e["final_tip_error_mm"] for e in eps],
        "adaptation_latency": report.percentiles_us(act_s),
        "loop": {**loop_stats, "scheduler": scheduler},
        "link": link,
        "files": {
            "report": str(out / "report.json"),
            "curve": str(out / "adaptation_curve.png"),
            "cycle_log": str(out / "cycles.jsonl"),
        },
    }
    report.plot_episode_curve(
        out / "adaptation_curve.png", rep["return"], rep["final_tip_error_mm"],
        f"{agent.algorithm} on {robot_url}: online adaptation",
    )  # fmt: skip
    report.write_json(out / "report.json", rep)
    return rep


class _progress:
    """A rich progress bar (or nothing without a console); yields tick(done, total)."""

    def __init__(self, console: Any, label: str, total: int):
        self.console, self.label, self.total = console, label, total
        self.bar = None

    def __enter__(self):
        if self.console is None:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        self.bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            "steps", TimeRemainingColumn(), console=self.console, refresh_per_second=4,
        )  # fmt: skip
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        last = [0.0]

        def tick(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] > 0.1 or done >= total:  # redraws cost the control loop time
                last[0] = now
                self.bar.update(task, completed=done)

        return tick

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
