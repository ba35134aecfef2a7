"""Exported agents on the mock robot's physics, stepped synchronously (no link, no real time).

`metabot demo` drives mock robots through the real serial stack in real time: the honest
end-to-end check, but slow (20 robots x 1 goal take 8 minutes), and with one evaluation goal
per robot its S(k) is dominated by which goal each robot drew. This runs the same physical arm
(`build_mock_arm`: the draw's hidden dynamics under the firmware servo loop, with backlash,
stiction and encoder quantization that training never saw) as fast as the CPU allows, with the
serial link replaced by one fixed delay between reading the state and the servos acting on the
new command (`link_delay_ms`; the demo's link measures about 5 ms: state age + both wires).
Same draws, goal seeds, episode plan and homing rule as the demo, so goal 0 of every robot is
the demo's goal (each trial starts on a freshly built arm, where the demo keeps one robot
running); the numbers are "measured on the mock robot's physics", never on hardware.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from metabot.bridge.mcu import DriveKind
from metabot.deploy.demo import AGENT_NAMES, BUDGETS, TASK, curve_plan, split_summary

SERVO_HZ = 1000  # the mock's firmware loop and physics rate
TRACK = int(DriveKind.TRACK)
HOME_SPEED = 1.5  # rad/s, as the deploy loop's homing between episodes
HOME_TOL = 0.03  # rad
HOME_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Draw:
    """One mock robot and what to measure on it."""

    split: str
    task_index: int
    seed: int
    goals: int
    budgets: tuple[int, ...]
    link_delay_ms: float
    agents: dict[str, str]


class _SyncArm:
    """A mock arm at the control rate: `cycle(target)` holds the previous target for the link
    delay, then the new one, for one control period of 1 kHz servo steps."""

    def __init__(self, draw: Draw, period_s: float):
        from metabot import tasks
        from metabot.hardware.mock_robot import build_mock_arm, mock_rngs

        self.dist = tasks.get(TASK)
        self.task = self.dist.sample(draw.task_index + 1, split=draw.split,
                                     seed=draw.seed)[draw.task_index]
        rng_fx, _, _, rng_arm, _ = mock_rngs(draw.seed, draw.task_index)
        self.arm = build_mock_arm(self.dist, self.task, rng_fx, rng_arm)
        self.n_servo = int(round(period_s * SERVO_HZ))
        self.n_late = min(int(round(draw.link_delay_ms * SERVO_HZ / 1000)), self.n_servo)
        self.limit = self.arm.servo.tau_max
        self.target = np.asarray(self.dist.arm.home, dtype=np.float64)

    def cycle(self, target: np.ndarray) -> None:
        for s in range(self.n_servo):
            t = self.target if s < self.n_late else target
            self.arm.step(TRACK, 1, t, self.limit)  # mode 1: position
        self.target = np.asarray(target, dtype=np.float64)

    def measured(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.arm.measured()


def _home(sync: _SyncArm, desc: Any, period_s: float) -> None:
    """The deploy loop's homing: ramp the target to home, then wait until the arm is still
    (a weak servo may rest away from home: that sag is what the agent adapts to)."""
    home = np.asarray(desc.home, dtype=np.float64)
    step = HOME_SPEED * period_s
    q_hist: list[np.ndarray] = []
    settled, at_home_for = 0, 0
    while True:
        target = sync.target + np.clip(home - sync.target, -step, step)
        q = sync.measured()[0]
        q_hist.append(q)
        at_home = bool(np.allclose(target, home))
        still = len(q_hist) > 5 and float(np.max(np.abs(q - q_hist[-6]))) < 0.02
        settled = settled + 1 if (at_home and still) else 0
        at_home_for = at_home_for + 1 if at_home else 0
        err = float(np.max(np.abs(q - home)))
        if (settled >= 3 and err < HOME_TOL) or settled >= 10 or (
            at_home_for * period_s > HOME_TIMEOUT_S
        ):
            return
        sync.cycle(target)


def _episode(sync: _SyncArm, agent: Any, desc: Any, goal: np.ndarray, steps: int, forget: bool,
             period_s: float, privileged: np.ndarray | None) -> dict[str, float]:
    """One segment as the deploy loop runs it: home, then `steps` agent steps to `goal`."""
    from metabot.sim import arm as armlib

    _home(sync, desc, period_s)
    if forget:
        agent.reset()
    else:
        agent.new_episode()
    sent = [sync.target.copy()] * max(desc.command_history, 2)
    prev_applied = np.zeros(desc.n_joints)
    ret, errs, reward = 0.0, [], 0.0
    for j in range(steps + 1):
        q, qd, eff = sync.measured()
        obs = armlib.observe(desc, q, qd, eff, goal, np.stack(sent))
        if j > 0:
            applied = armlib.target_to_action(desc, sent[0], sent[1])
            err = float(np.linalg.norm(armlib.forward_kinematics(desc, q) - goal))
            reward = float(armlib.reward_from_error(err, applied, prev_applied))
            ret += reward
            errs.append(err)
            prev_applied = applied
            agent.record_applied(applied)
        if j == steps:
            break
        action = agent.act(obs, reward=reward, privileged=privileged)
        target = np.clip(armlib.action_to_target(desc, action, sent[0]), desc.lower, desc.upper)
        sync.cycle(target)
        sent = [target, *sent[:-1]]
    e = np.asarray(errs) * 1e3
    return {"return": ret, "mean_tip_error_mm": float(e.mean()),
            "final_tip_error_mm": float(e[-1])}


def run_draw(draw: Draw) -> dict[str, Any]:
    """Every agent's trials on one mock robot, as the demo plans them (`curve_plan`), in the
    demo's raw result layout; each trial starts on a freshly built arm."""
    from metabot import runtime
    from metabot.deploy.loop import arm_from_metadata
    from metabot.deploy.session import episode_steps

    agents = {n: runtime.load(p) for n, p in draw.agents.items()}
    meta = agents["rma"].metadata
    desc = arm_from_metadata(meta)
    period = 1.0 / float(meta["task"]["control_rate_hz"])
    L = episode_steps(meta)
    out: dict[str, Any] = {"job": {"kind": "curve", "split": draw.split, "seed": draw.seed,
                                   "task_index": draw.task_index}, "agents": {}}
    for name in AGENT_NAMES:
        segments = []
        for trial in curve_plan(desc, L, seed=draw.seed, split=draw.split,
                                task_index=draw.task_index, goals=draw.goals,
                                budgets=draw.budgets if name == "rma" else (0,)):
            sync = _SyncArm(draw, period)
            priv = sync.dist.oracle_features(sync.task) if name == "oracle" else None
            for seg in trial:
                res = _episode(sync, agents[name], desc, seg.goal, seg.steps, seg.forget,
                               period, priv)
                segments.append({"tag": seg.tag, **res})
        out["agents"][name] = {"segments": segments}
    out["hidden"] = {"task_params": sync.task.to_dict(), "effects": sync.arm.effects.to_dict()}
    return out


def evaluate(agent_paths: dict[str, str], *, draws: int = 20, goals: int = 4, split: str = "test",
             seed: int = 0, budgets: tuple[int, ...] = BUDGETS, link_delay_ms: float = 5.0,
             jobs: int = 2, progress: Any = None) -> dict[str, Any]:
    """S(k) of the adaptive agent on `draws` mock robots x `goals` goals, against dr and the
    oracle on the same robots and goals (the demo's `split_summary`: returns averaged per
    robot first, the interval over robots)."""
    t0 = time.monotonic()
    work = [Draw(split, i, seed, goals, tuple(budgets), link_delay_ms, dict(agent_paths))
            for i in range(draws)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = []
        for r in pool.map(run_draw, work):
            results.append(r)
            if progress is not None:
                progress(len(results), draws)
    out = split_summary(results, split, tuple(budgets), seed)
    out["gap_by_latency"] = gap_by_param(out["draws"], "latency", max(budgets))
    out.update({
        "measured_on": "the mock robot's physics, stepped synchronously (no serial link)",
        "seed": seed, "link_delay_ms": link_delay_ms, "agents": dict(agent_paths),
        "wall_s": time.monotonic() - t0,
    })  # fmt: skip
    return out


def gap_by_param(draws: list[dict], param: str, k: int) -> dict[str, dict[str, Any]]:
    """Where the oracle-dr gap lies and how much of it the adaptive agent closes after k
    steps, grouped by the value of one hidden parameter (first element) of the robots.

    Sums over a group's robots (goal-averaged returns), so the groups add up to the whole
    split's S(k) numerator and denominator. No share where the oracle gains less than one
    return point per robot over dr: a ratio of two noise terms says nothing."""
    groups: dict[str, dict[str, Any]] = {}
    for d in draws:
        key = f"{d['hidden'][param][0]:g}"
        g = groups.setdefault(key, {"robots": 0, "oracle_minus_dr": 0.0, "adaptive_minus_dr": 0.0})
        r = d["return"]
        g["robots"] += 1
        g["oracle_minus_dr"] += r["oracle"] - r["dr"]
        g["adaptive_minus_dr"] += r[f"rma k={k}"] - r["dr"]
    for g in groups.values():
        gap = g["oracle_minus_dr"]
        g["share"] = g["adaptive_minus_dr"] / gap if gap >= g["robots"] else None
    return {key: groups[key] for key in sorted(groups, key=float)}
