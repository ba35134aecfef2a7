"""A fixed-rate control loop scheduled against absolute deadlines.

Cycle k is due at t0 + k * period (not "sleep one period after computing"), so compute time
does not accumulate into drift. Inside a cycle the loop never waits for the robot: it acts on
the latest state the backend's reader has, runs the policy, passes the action through the
safety layer and sends. A command sent later than deadline + tolerance counts as missed; if
the loop falls more than a period behind it skips the lost cycles (counted as missed) rather
than bursting to catch up. Round-trip time comes from the command sequence the device echoes
in its state, where the backend reports one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from metabot.errors import ConfigError, SafetyError

from .cyclelog import CycleLogWriter
from .realtime import boost_thread
from .robot import Robot, RobotState
from .safety import INTERVENTION_NAMES, LINK_LOSS, SafetyConfig, SafetyLayer

Policy = Callable[[RobotState, int], np.ndarray]


@dataclass
class LoopStats:
    rate_hz: float
    seconds: float
    cycles: int
    commands_sent: int
    period_p50_us: float
    period_p99_us: float
    jitter_p50_us: float
    jitter_p99_us: float
    jitter_max_us: float
    missed_deadlines: int
    missed_fraction: float
    skipped_cycles: int
    rtt_p50_us: float | None
    rtt_p99_us: float | None
    rtt_samples: int
    interventions: dict
    stop_reason: str
    # The loop's own timing (when send_command returned), before the OS took the bytes;
    # equal to the above for a backend that writes synchronously.
    loop_jitter_p99_us: float = 0.0
    loop_missed_deadlines: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _pct(x: np.ndarray, q: float) -> float | None:
    return float(np.percentile(x, q)) if len(x) else None


class ControlLoop:
    """Run `policy(state, k) -> action` at `rate_hz` on `robot` through a safety layer.

    on_link_loss: "stop" raises SafetyError once no valid state arrived within the safety
    config's link_timeout_s (the device's own watchdog then holds the arm); "continue"
    keeps cycling without sending until states return.
    """

    def __init__(self, robot: Robot, rate_hz: float, *, mode: str = "position",
                 safety: SafetyLayer | SafetyConfig | None = None,
                 log_path: str | None = None, log_meta: dict | None = None,
                 tolerance_s: float | None = None, spin_s: float = 0.0003,
                 on_link_loss: str = "stop"):
        if not rate_hz > 0:
            raise ConfigError(f"rate must be > 0 Hz, got {rate_hz}")
        if on_link_loss not in ("stop", "continue"):
            raise ConfigError(f"on_link_loss must be 'stop' or 'continue', got {on_link_loss!r}")
        self.robot = robot
        self.rate_hz = float(rate_hz)
        self.period = 1.0 / self.rate_hz
        self.mode = mode
        self.safety = (safety if isinstance(safety, SafetyLayer)
                       else SafetyLayer(robot.description, self.period, safety))
        # Late = more than a quarter period after the deadline, whatever the rate: the policy's
        # own compute (0.2-0.5 ms for an ONNX agent plus observation) must fit in it.
        self.tolerance_s = 0.25 * self.period if tolerance_s is None else float(tolerance_s)
        self.spin_s = spin_s
        self.on_link_loss = on_link_loss
        self.log_path = log_path
        self.log_meta = log_meta or {}

    def run(self, policy: Policy, *, seconds: float | None = None, cycles: int | None = None,
            should_stop: Callable[[], bool] | None = None) -> LoopStats:
        with boost_thread():
            return self._run(policy, seconds, cycles, should_stop)

    def _run(self, policy, seconds, cycles, should_stop) -> LoopStats:
        if seconds is None and cycles is None and should_stop is None:
            raise ConfigError("give seconds, cycles or should_stop")
        n_cycles = cycles if cycles is not None else (
            int(round(seconds * self.rate_hz)) if seconds is not None else None)
        robot, safety, T, tol = self.robot, self.safety, self.period, self.tolerance_s
        log = None
        if self.log_path:
            log = CycleLogWriter(self.log_path, {
                "rate_hz": self.rate_hz, "mode": self.mode, "tolerance_s": tol,
                "description": robot.description.to_dict(), "safety": safety.config.to_dict(),
                "max_step": safety.max_step.tolist(),
                "interventions": {str(b): n for b, n in INTERVENTION_NAMES.items()},
                "meta": self.log_meta})
        robot.wait_for_state(max(1.0, 4 * safety.config.link_timeout_s))
        sent_times: dict[int, float] = {}
        last_echo = None
        rtts: list[float] = []
        t_sent_list: list[float] = []
        k_sent: list[int] = []
        t_wire: list[float] = []  # when the OS took each command (async backends)
        pending: list[tuple[int, int, float, bool]] = []  # (index, seq, deadline, loop_late)
        wire_late = 0
        async_tx = robot.reports_write_times
        missed = skipped = k = 0
        stop_reason = "done"
        link_lost_since = None
        t0 = time.monotonic() + T  # first deadline one period out, after set-up costs
        try:
            while n_cycles is None or k < n_cycles:
                if should_stop is not None and should_stop():
                    stop_reason = "stopped"
                    break
                deadline = t0 + k * T
                _sleep_until(deadline, self.spin_s)
                t_wake = time.monotonic()
                state = robot.read_state()
                new_rtt = None
                if state is not None and state.command_seq is not None \
                        and state.command_seq != last_echo:
                    last_echo = state.command_seq
                    new_rtt = self._round_trip(state, sent_times.pop(state.command_seq, None))
                    if new_rtt is not None:
                        rtts.append(new_rtt)
                action = policy(state, k) if state is not None else None
                now = time.monotonic()
                if action is None:
                    action = np.full(robot.description.n_joints, np.nan)
                dec = safety.filter(action, state, now, self.mode)
                seq = t_sent = None
                if dec.command is not None:
                    seq = robot.send_command(dec.command, self.mode)
                    t_sent = time.monotonic()
                    sent_times[seq] = t_sent
                    if len(sent_times) > 256:
                        sent_times.pop(next(iter(sent_times)))
                    t_sent_list.append(t_sent)
                    k_sent.append(k)
                    t_wire.append(t_sent)
                    if async_tx:
                        pending.append((len(t_wire) - 1, seq, deadline, t_sent - deadline > tol))
                    late = t_sent - deadline > tol
                    link_lost_since = None
                else:
                    late = True  # nothing sent by the deadline: a missed deadline too
                    if link_lost_since is None:
                        link_lost_since = now
                missed += late
                if pending:
                    wire_late += self._resolve(pending, t_wire, time.monotonic())
                if log is not None:
                    log.write(_record(k, t0, deadline, t_wake, now, t_sent, late, state, action,
                                      dec.command, dec.interventions, seq, new_rtt))
                if dec.interventions & LINK_LOSS and self.on_link_loss == "stop":
                    age = (now - state.received_at) if state is not None else float("inf")
                    stop_reason = "link_loss"
                    raise SafetyError(
                        f"link lost: no valid state for {age * 1e3:.0f} ms "
                        f"(limit {safety.config.link_timeout_s * 1e3:.0f} ms); "
                        "the device watchdog holds the arm")
                k += 1
                behind = time.monotonic() - (t0 + k * T)
                if behind > T:  # more than a whole period late: drop the lost cycles
                    lost = int(behind // T)
                    if n_cycles is not None:
                        lost = min(lost, n_cycles - k)
                    skipped += lost
                    missed += lost
                    k += lost
        except BaseException as exc:
            if stop_reason == "done":
                stop_reason = type(exc).__name__
            raise
        finally:
            if pending:
                robot.flush(0.1)
                wire_late += self._resolve(pending, t_wire, float("inf"))
            t_eff = np.asarray(t_wire, dtype=float)
            stats = self._stats(t_eff, np.asarray(k_sent), missed + wire_late, skipped,
                                k, np.asarray(rtts), stop_reason, t0)
            own = self._stats(np.asarray(t_sent_list), np.asarray(k_sent), missed, skipped,
                              k, np.asarray(rtts), stop_reason, t0)
            stats.loop_jitter_p99_us = own.jitter_p99_us
            stats.loop_missed_deadlines = own.missed_deadlines
            self.stats = stats
            if log is not None:
                log.close(stats.to_dict())
        return stats

    def _round_trip(self, state: RobotState, t_sent: float | None) -> float | None:
        """Command sent -> first state echoing it. From the backend's own timestamps where it
        keeps them (when the OS took the bytes, when the echo arrived); otherwise from this
        cycle's state, which rounds the round trip up to the next control cycle."""
        seq = state.command_seq
        echoed = self.robot.command_echoed_at(seq)
        written = self.robot.command_sent_at(seq)
        start = written if written is not None else t_sent
        if start is None:
            return None
        return (echoed if echoed is not None else state.received_at) - start

    def _resolve(self, pending: list, t_wire: list, now: float) -> int:
        """Replace loop send times by the times the OS took the bytes, for an asynchronous
        backend; count commands written late (or never: replaced by a newer one) that the
        loop itself sent on time, so no cycle counts twice. Unresolved entries wait."""
        late = 0
        keep = []
        for i, seq, dl, loop_late in pending:
            tw = self.robot.command_sent_at(seq)
            if tw is None and now - dl < 1.0:
                keep.append((i, seq, dl, loop_late))
                continue
            if tw is None:
                t_wire[i] = float("nan")
                late += not loop_late
            else:
                t_wire[i] = tw
                late += (tw - dl > self.tolerance_s) and not loop_late
        pending[:] = keep
        return late

    def _stats(self, t_sent, k_sent, missed, skipped, k, rtts, reason, t0) -> LoopStats:
        T = self.period
        consecutive = np.diff(k_sent) == 1 if len(k_sent) > 1 else np.zeros(0, bool)
        periods = np.diff(t_sent)[consecutive] if len(t_sent) > 1 else np.zeros(0)
        periods = periods[np.isfinite(periods)]
        t_sent = t_sent[np.isfinite(t_sent)]
        jitter = np.abs(periods - T)
        us = 1e6
        cycles = max(k, 1)
        return LoopStats(
            rate_hz=self.rate_hz,
            seconds=float(t_sent[-1] - t0) if len(t_sent) else 0.0,
            cycles=k, commands_sent=int(len(t_sent)),
            period_p50_us=(_pct(periods, 50) or 0.0) * us,
            period_p99_us=(_pct(periods, 99) or 0.0) * us,
            jitter_p50_us=(_pct(jitter, 50) or 0.0) * us,
            jitter_p99_us=(_pct(jitter, 99) or 0.0) * us,
            jitter_max_us=float(jitter.max() * us) if len(jitter) else 0.0,
            missed_deadlines=int(missed), missed_fraction=missed / cycles,
            skipped_cycles=int(skipped),
            rtt_p50_us=None if not len(rtts) else _pct(rtts, 50) * us,
            rtt_p99_us=None if not len(rtts) else _pct(rtts, 99) * us,
            rtt_samples=int(len(rtts)),
            interventions=dict(self.safety.counts), stop_reason=reason)


def _record(k, t0, deadline, t_wake, now, t_sent, late, state, action, command, mask, seq,
            rtt) -> dict:
    st = None
    if state is not None:
        st = {"t": state.received_at - t0, "age": now - state.received_at, "seq": state.seq,
              "q": state.positions, "qd": state.velocities, "tau": state.efforts,
              "enabled": state.enabled, "holding": state.holding, "cmd_seq": state.command_seq}
    return {"k": k, "deadline": deadline - t0, "wake": t_wake - t0,
            "sent": None if t_sent is None else t_sent - t0, "late": bool(late), "state": st,
            "action": np.asarray(action, dtype=float), "command": command,
            "interventions": int(mask), "cmd_seq": seq,
            "rtt_us": None if rtt is None else rtt * 1e6}


def _sleep_until(deadline: float, spin_s: float) -> None:
    """time.sleep to `spin_s` before the deadline, then spin: sleep alone overshoots ~0.1 ms."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if left > spin_s:
            time.sleep(left - spin_s)
