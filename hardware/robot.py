"""The small `Robot` interface every backend implements, and its safe-exit context manager.

A backend is anything that can report joint state and accept joint commands: our MCU over
the serial protocol (`SerialRobot`), or later a DYNAMIXEL/Feetech bus driven directly. This
module therefore assumes nothing about an MCU: no sessions, no frames, no watchdog messages.
What it does own is the one rule that must hold for every backend: every way out of a
`with robot:` block (normal end, exception, Ctrl-C, SIGTERM, a NaN action) leaves the arm
safe: holding its current position with limited torque by default, torque-off when
configured, and torque-off after an e-stop.
"""

from __future__ import annotations

import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from metabot.errors import ConfigError, LinkError, SafetyError

MODES = ("position", "velocity", "torque")
EXIT_ACTIONS = ("hold", "torque_off")


@dataclass(frozen=True)
class RobotDescription:
    """What the host knows about the arm: joints, limits (SI units: rad, rad/s, N m), rate."""

    joint_names: tuple[str, ...]
    position_lower: np.ndarray
    position_upper: np.ndarray
    velocity_limit: np.ndarray
    effort_limit: np.ndarray
    home: np.ndarray
    control_rate_hz: float
    modes: tuple[str, ...] = ("position",)
    firmware: str = ""

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)

    def to_dict(self) -> dict:
        return {
            "joint_names": list(self.joint_names),
            "position_lower": self.position_lower.tolist(),
            "position_upper": self.position_upper.tolist(),
            "velocity_limit": self.velocity_limit.tolist(),
            "effort_limit": self.effort_limit.tolist(),
            "home": self.home.tolist(),
            "control_rate_hz": self.control_rate_hz,
            "modes": list(self.modes),
            "firmware": self.firmware,
        }

    @classmethod
    def from_dict(cls, d: dict) -> RobotDescription:
        arr = {k: np.asarray(d[k], dtype=np.float64) for k in
               ("position_lower", "position_upper", "velocity_limit", "effort_limit", "home")}
        return cls(joint_names=tuple(d["joint_names"]), control_rate_hz=float(d["control_rate_hz"]),
                   modes=tuple(d.get("modes", ("position",))), firmware=d.get("firmware", ""),
                   **arr)


@dataclass(frozen=True)
class RobotState:
    """One valid state report, as received. `received_at` is the host's time.monotonic()."""

    positions: np.ndarray
    velocities: np.ndarray
    efforts: np.ndarray
    received_at: float
    device_time_us: int = 0
    seq: int = 0
    enabled: bool = False  # tracking host commands
    holding: bool = False  # torque on, holding a position on its own (hold/watchdog)
    torque_on: bool = False
    estopped: bool = False
    watchdog_tripped: bool = False
    fault: int = 0
    command_seq: int | None = None  # last host command the device applied, if it reports it
    extra: dict = field(default_factory=dict)

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.received_at


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM so that `with robot:` unwinds and makes it safe."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__(128 + signum)
        self.signum = signum


class Robot(ABC):
    """Abstract arm. Backends implement the underscored methods; the public ones add checks.

    on_exit: what leaving the context does, "hold" (current position, limited torque; the
    default, because torque-off drops a gravity-loaded arm) or "torque_off".
    """

    def __init__(self, *, on_exit: str = "hold", handle_signals: bool = True):
        if on_exit not in EXIT_ACTIONS:
            raise ConfigError(f"on_exit must be one of {EXIT_ACTIONS}, got {on_exit!r}")
        self.on_exit = on_exit
        self.handle_signals = handle_signals
        self._saved_handlers: dict[int, object] = {}
        self._estop_latched = False

    # ---- backend hooks -------------------------------------------------------------------
    @property
    @abstractmethod
    def description(self) -> RobotDescription: ...

    @abstractmethod
    def connect(self) -> None:
        """Open the link and handshake. Raises LinkError with a one-line reason."""

    @abstractmethod
    def close(self) -> None:
        """Release the link. Does not command the arm (see `safe_stop`)."""

    @abstractmethod
    def read_state(self) -> RobotState | None:
        """The latest valid state, or None before the first. Never waits for a reply."""

    @abstractmethod
    def _send_command(self, targets: np.ndarray, mode: str) -> int:
        """Send one checked command; return its sequence number (for round-trip timing)."""

    @abstractmethod
    def enable(self) -> None:
        """Torque on and start tracking commands (after a handshake, e-stop or watchdog)."""

    @abstractmethod
    def disable(self) -> None:
        """Torque off. A gravity-loaded arm will fall."""

    @abstractmethod
    def hold(self) -> None:
        """Hold the current position with limited torque; ignore commands until enabled."""

    @abstractmethod
    def _estop(self) -> None: ...

    # ---- optional: backends that write asynchronously ---------------------------------------
    reports_write_times = False

    def command_sent_at(self, cmd_seq: int) -> float | None:
        """When the command left the host (asynchronous backends); None: never sent."""
        return None

    def flush(self, timeout: float = 0.1) -> None:
        """Wait until queued frames are handed to the OS (asynchronous backends)."""
        return None

    def command_echoed_at(self, cmd_seq: int) -> float | None:
        """When the first state saying the device applied this command arrived (host time);
        None where the backend does not track it. With `command_sent_at` it gives the link's
        true round trip, not one rounded up to the next control cycle."""
        return None

    # ---- public API ----------------------------------------------------------------------
    def estop(self) -> None:
        """Emergency stop: torque off, latched until `enable()`."""
        self._estop_latched = True
        self._estop()

    def send_command(self, targets: Sequence[float] | np.ndarray, mode: str = "position") -> int:
        """Send a command after the last-line checks: refuse non-finite, clamp to limits.

        The full safety layer (step and velocity limits, link loss) sits in front of this in
        `metabot.hardware.safety`; this check only guarantees nothing out of range is passed.
        """
        d = self.description
        if mode not in d.modes:
            raise SafetyError(f"mode {mode!r} not supported by this robot (has {list(d.modes)})")
        t = np.asarray(targets, dtype=np.float64).reshape(-1)
        if t.shape[0] != d.n_joints:
            raise SafetyError(f"command has {t.shape[0]} values, robot has {d.n_joints} joints")
        if not np.all(np.isfinite(t)):
            raise SafetyError("refused a non-finite command (NaN/Inf)")
        if mode == "position":
            t = np.clip(t, d.position_lower, d.position_upper)
        elif mode == "velocity":
            t = np.clip(t, -d.velocity_limit, d.velocity_limit)
        else:
            t = np.clip(t, -d.effort_limit, d.effort_limit)
        return self._send_command(t, mode)

    def wait_for_state(self, timeout: float = 1.0, *, newer_than: float = -1.0) -> RobotState:
        """Block (outside any control cycle) until a state received after `newer_than`."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.read_state()
            if s is not None and s.received_at > newer_than:
                return s
            if time.monotonic() > deadline:
                raise LinkError(f"no state from the robot within {timeout:.2f} s")
            time.sleep(0.0005)

    def home(self, *, speed: float = 0.5, rate_hz: float = 100.0, **kw) -> float:
        """Drive to the home pose (see `move_to`); returns the remaining error in rad."""
        return self.move_to(self.description.home, speed=speed, rate_hz=rate_hz, **kw)

    def move_to(self, goal, *, speed: float = 0.5, rate_hz: float = 100.0,
                settle_s: float = 0.2, timeout: float = 10.0, max_error: float = 0.3) -> float:
        """Drive to `goal` at most `speed` rad/s along a straight joint-space line, then hold
        the goal until the arm is still for `settle_s`; return the remaining error (rad).

        A physical reset: the arm is driven, never teleported. A position servo under load
        settles short of its target (P-loop sag), so the move ends when the arm is still,
        and fails (SafetyError) only if it stays more than `max_error` away. Uses only
        `send_command`, so it works for every backend; the robot must be enabled.
        """
        d = self.description
        start = self.wait_for_state().positions.copy()
        goal = np.clip(np.asarray(goal, np.float64), d.position_lower, d.position_upper)
        dist = float(np.max(np.abs(goal - start)))
        duration = max(dist / max(speed, 1e-6), 1.0 / rate_hz)
        period = 1.0 / rate_hz
        t0 = time.monotonic()
        anchor = None  # (time, positions) at the start of the current still window
        k = 0
        while True:
            k += 1
            deadline = t0 + k * period
            _sleep_until(deadline)
            frac = min(1.0, (deadline - t0) / duration)
            self.send_command(start + frac * (goal - start))
            if frac < 1.0:
                continue
            s = self.read_state()
            if s is None:
                continue
            err = float(np.max(np.abs(s.positions - goal)))
            # Still = within 0.02 rad over settle_s: servos hunt by a few encoder counts around
            # their target (backlash, stiction), and their reported velocity is too noisy.
            if anchor is None or np.max(np.abs(s.positions - anchor[1])) > 0.02:
                anchor = (deadline, s.positions.copy())
            settled = deadline - anchor[0] >= settle_s
            if settled or deadline - t0 > duration + timeout:
                if err > max_error:
                    raise SafetyError(f"move: {err:.3f} rad from the goal after the move "
                                      f"(limit {max_error:.3f} rad); is the arm blocked?")
                return err

    def safe_stop(self, torque_off: bool | None = None) -> None:
        """Best effort: leave the arm holding (default) or torque-off. Never raises."""
        off = self._estop_latched if torque_off is None else torque_off
        off = off or self.on_exit == "torque_off"
        try:
            if off:
                self.disable()
            else:
                self.hold()
        except Exception:  # noqa: BLE001 - the link may be gone; the device watchdog covers it
            pass

    # ---- context manager -----------------------------------------------------------------
    def __enter__(self) -> Robot:
        self._install_signal_handlers()
        try:
            self.connect()
        except BaseException:
            self._restore_signal_handlers()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        # A second Ctrl-C/SIGTERM must not interrupt making the arm safe.
        blocked = self._block_signals()
        try:
            self.safe_stop()
        finally:
            try:
                self.close()
            finally:
                self._restore_signal_handlers()
                self._restore_signals(blocked)  # a pending signal is delivered now
        return False

    def _install_signal_handlers(self) -> None:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return

        def on_term(signum, frame):
            raise Terminated(signum)

        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None:
                self._saved_handlers[sig] = signal.signal(sig, on_term)
        # SIGINT already raises KeyboardInterrupt; make sure nobody set it to ignore.
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            self._saved_handlers[signal.SIGINT] = signal.signal(
                signal.SIGINT, signal.default_int_handler)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._saved_handlers.items():
            signal.signal(sig, handler)
        self._saved_handlers.clear()

    def _block_signals(self) -> set | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        sigs = {signal.SIGINT, signal.SIGTERM}
        return signal.pthread_sigmask(signal.SIG_BLOCK, sigs)

    def _restore_signals(self, old: set | None) -> None:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _sleep_until(deadline: float, spin_s: float = 0.0002) -> None:
    """Sleep to just before `deadline`, then spin: sleep alone oversleeps by ~0.1 ms."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if left > spin_s:
            time.sleep(left - spin_s)
