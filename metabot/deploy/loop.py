"""The online adaptation run: an exported agent drives a robot through the hardware loop.

One `ControlLoop` (metabot.hardware.loop) runs for the whole deployment, so the cycle log is
one continuous, replayable record and the timing statistics cover everything the arm did.
Inside it a small state machine alternates two phases per segment:

  HOME   a velocity-limited straight joint-space move back to the home pose (a physical
         reset: the arm is driven, never teleported), then settle;
  RUN    `steps` control steps toward the segment's goal. Each cycle: the latest state ->
         `metabot.sim.arm.observe` (the same numpy function the training env uses) ->
         `agent.act(obs, reward=previous step's reward, privileged=...)` ->
         `action_to_target` (absolute, or a step from the last target sent) -> the safety
         layer -> the wire. The observation's command history is the targets actually sent.

Adaptation: context agents (rma, rl2) adapt every step through their history window or
hidden state; the runtime keeps it. The command the safety layer actually sent is fed back
with `agent.record_applied` (converted back to action space), so the history holds what
the arm was told, not what the policy wished. Head-only gradient agents explore during an
episode and take their `agent.adapt` step between episodes (during the next HOME phase,
when the arm is only homing). A segment with `forget=True` starts a new task: the agent's
memory is reset; otherwise only the episode boundary is marked (`new_episode`).

Imports numpy, the runtime and the hardware layer only: no torch, no mujoco (a test runs
a deployment in a subprocess where importing either fails).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metabot.errors import ArtifactError, ConfigError
from metabot.runtime.agent import STEP_KINDS
from metabot.runtime.robot import arm_from_metadata
from metabot.sim import arm as armlib

__all__ = ["Deployment", "Segment", "SegmentResult", "arm_from_metadata", "needs_privileged",
           "sample_goals"]

# Goal region of the arm reach tasks; the same constants as metabot.sim.arm_env (which
# imports mujoco, so the robot side cannot import them; tests/test_deploy_loop.py checks
# they agree).
GOAL_SPREAD = 0.4
GOAL_MIN_Z = 0.04
GOAL_MIN_RADIUS = 0.08


def sample_goals(desc: armlib.ArmDescription, n: int, seed: int) -> np.ndarray:
    """Reachable goals as the training env draws them: FK of a random pose about home."""
    rng = np.random.default_rng(seed)
    home, up, down = armlib._scales(desc)
    goals = np.empty((0, 3))
    while len(goals) < n:
        u = rng.uniform(-GOAL_SPREAD, GOAL_SPREAD, size=(2 * n, desc.n_joints))
        q = home + np.where(u >= 0, u * up, u * down)
        g = armlib.forward_kinematics(desc, q)
        ok = (g[:, 2] >= GOAL_MIN_Z) & (np.hypot(g[:, 0], g[:, 1]) >= GOAL_MIN_RADIUS)
        goals = np.concatenate([goals, g[ok]])
    return goals[:n]


def needs_privileged(agent: Any) -> bool:
    """True for agents whose graph reads the true dynamics (the oracle baseline)."""
    inputs = {t["name"] for t in agent.metadata["inputs"]}
    return bool(agent.privileged_dim) and "privileged" in inputs


@dataclass(frozen=True)
class Segment:
    """One stretch of agent control: home first, then `steps` steps toward `goal`."""

    goal: np.ndarray
    steps: int
    forget: bool = False  # a new task: reset the agent's memory (not only the episode)
    tag: str = ""


@dataclass
class SegmentResult:
    """What one segment did, measured on the robot (tip errors from FK of measured q)."""

    index: int
    tag: str
    goal: list[float]
    steps: int
    rewards: np.ndarray  # [steps]
    tip_error_m: np.ndarray  # [steps]: after each step
    applied: np.ndarray  # [steps, A] actions as sent after the safety layer
    act_s: np.ndarray  # [steps] agent.act wall time
    cycle_t: np.ndarray  # [steps] time of each cycle's policy call (monotonic)
    interventions: dict[str, int]
    home_s: float  # time spent homing before the segment
    home_error_rad: float  # max joint error from home when the segment started
    adapt: dict[str, Any] = field(default_factory=dict)

    @property
    def ret(self) -> float:
        return float(np.sum(self.rewards))

    def summary(self) -> dict[str, Any]:
        from metabot.deploy.report import percentiles_us, smoothness

        err_mm = self.tip_error_m * 1e3
        periods = np.diff(self.cycle_t)
        return {
            "index": self.index,
            "tag": self.tag,
            "goal": self.goal,
            "steps": self.steps,
            "return": self.ret,
            "final_tip_error_mm": float(err_mm[-1]) if err_mm.size else None,
            "mean_tip_error_mm": float(err_mm.mean()) if err_mm.size else None,
            "smoothness": smoothness(self.applied),
            "safety_interventions": self.interventions,
            "adaptation_latency": percentiles_us(self.act_s),
            "cycle_period": percentiles_us(periods),
            "home_s": self.home_s,
            "home_error_rad": self.home_error_rad,
            "adapt": self.adapt,
        }


class Deployment:
    """Run `agent` on `robot` over a list of segments (see module docstring).

    `privileged`: a callable returning the oracle features, for agents that take them (the
    oracle baseline in the demo reads them from the mock's test-only channel).
    `on_step(segment_index, step)`: called once per RUN cycle before acting (the demo changes
    the mock's payload from here); keep it fast, it runs inside the control cycle.
    """

    def __init__(
        self,
        agent: Any,
        robot: Any,
        *,
        arm: armlib.ArmDescription | None = None,
        safety: Any = None,
        log_path: str | None = None,
        privileged: Callable[[], np.ndarray] | None = None,
        on_step: Callable[[int, int], None] | None = None,
        home_speed: float = 1.5,
        first_home_speed: float = 0.5,
        home_tol: float = 0.03,
        home_timeout: float = 1.0,
        rate_hz: float | None = None,
    ):
        self.agent = agent
        self.robot = robot
        meta = agent.metadata
        self.arm = arm if arm is not None else arm_from_metadata(meta)
        self.kind = meta["adaptation"]["kind"]
        self.rate_hz = float(rate_hz or meta["task"]["control_rate_hz"])
        if not self.rate_hz > 0:
            raise ArtifactError("the artifact records no control rate")
        names = tuple(robot.description.joint_names)
        if names != tuple(self.arm.joints):
            raise ConfigError(
                f"joint map mismatch: the robot reports joints {list(names)}, the agent was "
                f"trained on {list(self.arm.joints)} (see docs/bring_your_own_arm.md)"
            )
        if needs_privileged(agent) and privileged is None:
            raise ConfigError(
                f"the {agent.algorithm} agent needs privileged features (the true dynamics); "
                "only an evaluator with the mock robot's test channel can provide them"
            )
        self.privileged = privileged
        self.on_step = on_step
        self.safety = safety
        self.log_path = log_path
        self.home_speed = float(home_speed)
        self.first_home_speed = float(first_home_speed)
        self.home_tol = float(home_tol)
        self.home_timeout = float(home_timeout)
        self.loop = None

    def run(
        self,
        segments: Sequence[Segment],
        *,
        progress: Callable[[int, int], None] | None = None,
        log_meta: dict | None = None,
    ) -> list[SegmentResult]:
        """Drive all segments in one control loop; returns one result per segment."""
        from metabot.hardware.loop import ControlLoop

        if not segments:
            raise ConfigError("nothing to run: no segments")
        loop = ControlLoop(
            self.robot, self.rate_hz, safety=self.safety, log_path=self.log_path,
            log_meta={"agent": self.agent.metadata.get("training", {}),
                      "algorithm": self.agent.algorithm, **(log_meta or {})},
        )  # fmt: skip
        self.loop = loop
        machine = _Machine(self, loop, list(segments), progress)
        loop.run(machine.policy, should_stop=machine.done)
        return machine.results


class _Machine:
    """The per-cycle state machine (HOME -> RUN per segment); one instance per run."""

    def __init__(self, dep: Deployment, loop: Any, segments: list[Segment], progress):
        self.dep, self.loop, self.segments, self.progress = dep, loop, segments, progress
        self.arm = dep.arm
        self.period = 1.0 / dep.rate_hz
        self.home = np.asarray(self.arm.home, dtype=np.float64)
        self.err_slice = self.arm.error_slice  # goal - tip in arm.observe's layout
        self.results: list[SegmentResult] = []
        self.seg = 0
        self.phase = "home"
        self.home_started: float | None = None
        self.q_hist: list[np.ndarray] = []
        self.at_home_since: float | None = None
        self.settled = 0
        self.target: np.ndarray | None = None
        self.transitions: list[dict] = []  # head agents: every episode so far
        self._pending_adapt = False
        self.adapt_info: dict[str, Any] = {}  # the last adapt step, reported with the next run
        self._new_segment_buffers()
        self.total_steps = sum(s.steps for s in segments)
        self.steps_done = 0

    def done(self) -> bool:
        return self.seg >= len(self.segments)

    def _new_segment_buffers(self) -> None:
        self.j = 0
        self.rewards, self.errs, self.applied = [], [], []
        self.act_s, self.cycle_t, self.obs_log, self.sample_log = [], [], [], []
        self.prev_applied = np.zeros(self.arm.n_joints)
        self.home_error = 0.0
        self.home_s = 0.0
        self.counts0 = dict(self.loop.safety.counts)

    # -- the policy called by ControlLoop every cycle ---------------------------------------
    def policy(self, state, k: int) -> np.ndarray:
        now = time.monotonic()
        q = np.asarray(state.positions, dtype=np.float64)
        if self.phase == "home":
            return self._home_step(q, np.asarray(state.velocities), now)
        return self._run_step(state, q, now)

    def _home_step(self, q: np.ndarray, qd: np.ndarray, now: float) -> np.ndarray:
        if self.home_started is None:
            self.home_started = now
            self.q_hist: list[np.ndarray] = []
            self.at_home_since: float | None = None
            self.target = q.copy() if self.target is None else self.target
            if self._pending_adapt:  # between episodes, while the arm only homes
                self._adapt()
        # The first move starts wherever the arm is: slower.
        speed = self.dep.first_home_speed if not self.results else self.dep.home_speed
        step = speed * self.period
        self.target = self.target + np.clip(self.home - self.target, -step, step)
        at_home = bool(np.allclose(self.target, self.home))
        err = float(np.max(np.abs(q - self.home)))
        # Settled: the command is home and the arm has stopped moving. A weak servo under
        # gravity may rest farther than home_tol from home (sag); that is the dynamics the
        # agent adapts to, so it is recorded (home_error_rad), not waited out.
        # Stillness over 5 cycles (100 ms at 50 Hz), not one: encoder noise of a few counts
        # per reading must not count as motion.
        self.q_hist.append(q)
        still = len(self.q_hist) > 5 and float(np.max(np.abs(q - self.q_hist[-6]))) < 0.02
        if at_home and self.at_home_since is None:
            self.at_home_since = now
        self.settled = self.settled + 1 if (at_home and still) else 0
        waited = now - self.at_home_since if self.at_home_since is not None else 0.0
        if (self.settled >= 3 and err < self.dep.home_tol) or self.settled >= 10 or (
            waited > self.dep.home_timeout
        ):
            self._start_segment(err, now)
        return self.target.copy()

    def _start_segment(self, home_err: float, now: float) -> None:
        seg = self.segments[self.seg]
        home_s = now - (self.home_started or now)
        self.home_started = None
        self.settled = 0
        self._new_segment_buffers()
        self.home_s, self.home_error = home_s, home_err
        if seg.forget:
            self.dep.agent.reset()
            self.transitions = []
        else:
            self.dep.agent.new_episode()
        # The targets sent so far, newest first (the observation's command history and the
        # base of delta actions): the episode starts from the homing target, as in sim.
        start = self.loop.safety.last_command
        start = np.asarray(self.target if start is None else start, dtype=np.float64)
        self.sent = [start.copy() for _ in range(max(self.arm.command_history, 2))]
        self.phase = "run"

    def _run_step(self, state, q: np.ndarray, now: float) -> np.ndarray:
        seg = self.segments[self.seg]
        agent, arm = self.dep.agent, self.arm
        goal = np.asarray(seg.goal, dtype=np.float64)
        if self.j > 0:  # the command the safety layer actually sent last cycle
            self.sent = [np.asarray(self.loop.safety.last_command, np.float64), *self.sent[:-1]]
        # One forward kinematics per cycle: the observation holds (goal - tip) / ERR_SCALE.
        obs = armlib.observe(arm, q, state.velocities, state.efforts, goal, np.stack(self.sent))
        if self.j > 0:
            # the previous step's outcome: reward and tip error from the state it produced
            applied = armlib.target_to_action(arm, self.sent[0], self.sent[1])
            err = float(np.linalg.norm(obs[self.err_slice].astype(np.float64))) * armlib.ERR_SCALE
            r = float(armlib.reward_from_error(err, applied, self.prev_applied))
            self.errs.append(err)
            self.rewards.append(r)
            self.applied.append(applied)
            self.prev_applied = applied
            agent.record_applied(applied)
            self.steps_done += 1
            if self.progress is not None:
                self.progress(self.steps_done, self.total_steps)
        if self.j >= seg.steps:
            self._finish_segment()
            return self.target.copy()
        if self.dep.on_step is not None:
            self.dep.on_step(self.seg, self.j)
        priv = self.dep.privileged() if self.dep.privileged is not None else None
        t0 = time.perf_counter()
        if self.dep.kind in STEP_KINDS:
            action = agent.act(obs, reward=self.rewards[-1] if self.rewards else 0.0,
                               privileged=priv, explore=True)
            self.sample_log.append(agent.last_sample.copy())
        else:
            action = agent.act(obs, reward=self.rewards[-1] if self.rewards else 0.0,
                               privileged=priv)
        self.act_s.append(time.perf_counter() - t0)
        self.cycle_t.append(now)
        self.obs_log.append(obs)
        self.target = armlib.action_to_target(arm, action, self.sent[0])
        self.j += 1
        return self.target.copy()

    def _finish_segment(self) -> None:
        seg = self.segments[self.seg]
        counts = self.loop.safety.counts
        inter = {k: counts[k] - self.counts0.get(k, 0) for k in counts}
        n = seg.steps
        res = SegmentResult(
            index=self.seg, tag=seg.tag, goal=[float(v) for v in seg.goal], steps=n,
            rewards=np.asarray(self.rewards), tip_error_m=np.asarray(self.errs),
            applied=np.asarray(self.applied).reshape(n, self.arm.n_joints),
            act_s=np.asarray(self.act_s), cycle_t=np.asarray(self.cycle_t),
            interventions={k: v for k, v in inter.items() if v}, home_s=self.home_s,
            home_error_rad=self.home_error, adapt=self.adapt_info,
        )  # fmt: skip
        self.adapt_info = {}
        self.results.append(res)
        if self.dep.kind in STEP_KINDS:
            ends = np.zeros(n)
            ends[-1] = 1.0
            self.transitions.append({
                "obs": np.asarray(self.obs_log), "actions": np.asarray(self.sample_log),
                "rewards": np.asarray(self.rewards), "ends": ends})
            self._pending_adapt = True
        self.seg += 1
        self.phase = "home"

    def _adapt(self) -> None:
        """The adapt() step (head or context) on every episode so far, between episodes."""
        self._pending_adapt = False
        if not self.transitions:
            return
        tr = {k: np.concatenate([t[k] for t in self.transitions]) for k in self.transitions[0]}
        t0 = time.perf_counter()
        info = self.dep.agent.adapt(tr)
        info["latency_ms"] = (time.perf_counter() - t0) * 1e3
        self.adapt_info = info
