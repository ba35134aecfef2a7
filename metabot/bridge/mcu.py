"""The MCU's protocol state machine in Python: the same rules as firmware_bridge/src/mb_firmware.c.

No physics here. The mock robot (metabot.hardware) runs this so that what it accepts,
refuses and how it drives the joints is exactly what the C reference firmware does; both
are checked against the same scenario vectors (firmware_bridge/vectors/scenarios.txt).

Rules (docs/protocol.md, "MCU state machine"):
- ESTOP is honoured in every state, without session or sequence checks: torque off, latched.
- HELLO (re)starts the handshake; a version mismatch answers HELLO_ACK (our version) + NACK.
- Before a handshake everything else is refused (NACK NOT_HANDSHAKED).
- Other frames must carry our session id (NACK SESSION) and a new sequence number
  (duplicates/reordered frames are dropped silently and counted).
- COMMAND is accepted only when armed: after TORQUE ENABLE, not after ESTOP, not after a
  watchdog trip, until the host sends TORQUE ENABLE again.
- Targets are clamped to the active limits (status LIMIT_CLAMPED); non-finite -> NACK RANGE.
- Watchdog: armed and no valid host frame for watchdog_ms -> trip: hold position with
  limited torque (default) or torque off; FAULT WATCHDOG; disarmed.
- A COMMAND lives ttl_us; then the MCU holds position (status COMMAND_EXPIRED).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .codec import Decoder, Frame, SequenceTracker, encode
from .messages import (
    MAX_JOINTS,
    PROTOCOL_VERSION,
    Ack,
    Command,
    Estop,
    Fault,
    FaultCode,
    Heartbeat,
    Hello,
    HelloAck,
    Message,
    Mode,
    Nack,
    NackReason,
    SetConfig,
    State,
    Status,
    Torque,
    TorqueAction,
    WatchdogAction,
)

WATCHDOG_MIN_MS = 20
WATCHDOG_MAX_MS = 2500
WATCHDOG_DEFAULT_MS = 100
HOLD_EFFORT_FRAC_DEFAULT = 0.3
TTL_MAX_US = 2_500_000
NO_JOINT = 0xFF


class DriveKind(enum.IntEnum):
    OFF = 0  # torque off
    HOLD = 1  # hold `targets` (positions) with torque limited to `effort_limit`
    TRACK = 2  # follow `targets` in `mode`


@dataclass(frozen=True)
class Drive:
    """What the servo hook must do now."""

    kind: DriveKind
    mode: int
    targets: np.ndarray
    effort_limit: np.ndarray


@dataclass(frozen=True)
class FirmwareInfo:
    """The firmware's identity and hard limits (reported in HELLO_ACK; config may only tighten)."""

    n_joints: int
    pos_min: np.ndarray
    pos_max: np.ndarray
    vel_max: np.ndarray
    effort_max: np.ndarray
    control_modes: int = (1 << Mode.POSITION) | (1 << Mode.VELOCITY) | (1 << Mode.TORQUE)
    firmware_id: int = 0x4D420001
    names_digest: int = 0

    def __post_init__(self):
        if not 1 <= self.n_joints <= MAX_JOINTS:
            raise ValueError(f"n_joints must be 1..{MAX_JOINTS}")
        for name in ("pos_min", "pos_max", "vel_max", "effort_max"):
            arr = np.asarray(getattr(self, name), np.float32).reshape(-1).copy()
            if arr.shape != (self.n_joints,):
                raise ValueError(f"{name} must have {self.n_joints} entries")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)


def _finite(*arrays) -> bool:
    return all(bool(np.isfinite(np.asarray(a, np.float32)).all()) for a in arrays)


@dataclass
class _Config:
    watchdog_ms: int
    watchdog_action: int
    hold_effort_frac: np.float32
    pos_min: np.ndarray
    pos_max: np.ndarray
    vel_max: np.ndarray
    effort_max: np.ndarray
    kp: np.ndarray
    kd: np.ndarray


@dataclass
class McuProtocol:
    """Protocol state of one MCU boot. `session_id` must be fresh (and non-zero) per boot."""

    info: FirmwareInfo
    session_id: int
    handshaked: bool = False
    armed: bool = False
    estopped: bool = False
    wd_tripped: bool = False
    limit_clamped: bool = False
    cmd_expired: bool = False
    fault: int = FaultCode.NONE
    last_cmd_seq: int = 0
    last_feed_us: int = 0
    cmd_expiry_us: int = 0
    rx: SequenceTracker = field(default_factory=SequenceTracker)
    config: _Config = field(init=False)
    drive: Drive = field(init=False)

    def __post_init__(self):
        n, i = self.info.n_joints, self.info
        zeros = np.zeros(n, np.float32)
        self.config = _Config(
            WATCHDOG_DEFAULT_MS, WatchdogAction.HOLD, np.float32(HOLD_EFFORT_FRAC_DEFAULT),
            i.pos_min.copy(), i.pos_max.copy(), i.vel_max.copy(), i.effort_max.copy(),
            zeros.copy(), zeros.copy(),
        )
        self.drive = Drive(DriveKind.OFF, 0, zeros, zeros)

    # -- outputs -------------------------------------------------------------------------
    @property
    def status(self) -> int:
        s = 0
        if self.handshaked:
            s |= Status.HANDSHAKED
        if self.armed:
            s |= Status.ENABLED
        if self.estopped:
            s |= Status.ESTOPPED
        if self.wd_tripped:
            s |= Status.WATCHDOG_TRIPPED
        if self.drive.kind == DriveKind.HOLD:
            s |= Status.HOLDING
        if self.limit_clamped:
            s |= Status.LIMIT_CLAMPED
        if self.fault != FaultCode.NONE:
            s |= Status.FAULT
        if self.cmd_expired:
            s |= Status.COMMAND_EXPIRED
        if self.drive.kind != DriveKind.OFF:
            s |= Status.TORQUE_ON
        return int(s)

    def state(self, now_us: int, positions, velocities, efforts) -> State:
        return State(self.session_id, now_us, self.last_cmd_seq, self.status, int(self.fault),
                     positions, velocities, efforts)

    def hello_ack(self, host_nonce: int) -> HelloAck:
        i = self.info
        return HelloAck(PROTOCOL_VERSION, host_nonce, i.firmware_id, self.session_id,
                        i.control_modes, i.names_digest, i.pos_min, i.pos_max, i.vel_max,
                        i.effort_max)

    # -- transitions ---------------------------------------------------------------------
    def _off(self) -> None:
        z = np.zeros(self.info.n_joints, np.float32)
        self.drive = Drive(DriveKind.OFF, 0, z, z)

    def _hold(self, positions, effort_limit: np.ndarray) -> None:
        pos = np.asarray(positions, np.float32).reshape(-1)[: self.info.n_joints].copy()
        self.drive = Drive(DriveKind.HOLD, int(Mode.POSITION), pos, effort_limit.copy())

    def handle(self, frame: Frame, now_us: int, positions) -> list[Message]:
        """Act on one decoded host frame; return the replies to send (in order)."""
        msg, seq = frame.msg, frame.seq
        ack = Ack(seq, frame.msg_id)

        def nack(reason: NackReason) -> list[Message]:
            return [Nack(seq, frame.msg_id, int(reason))]

        if isinstance(msg, Estop):
            self.estopped, self.armed = True, False
            self.fault = FaultCode.ESTOP
            self._off()
            return [ack]
        if isinstance(msg, Hello):
            self.armed = False
            if self.drive.kind == DriveKind.TRACK:
                self._hold(positions, self.config.effort_max)
            if msg.protocol_version != PROTOCOL_VERSION:
                self.handshaked = False
                return [self.hello_ack(msg.host_nonce), *nack(NackReason.VERSION)]
            self.handshaked = True
            self.rx.reset(seq)
            self.last_cmd_seq = 0
            self.last_feed_us = now_us
            return [self.hello_ack(msg.host_nonce)]
        if not self.handshaked:
            return nack(NackReason.NOT_HANDSHAKED)
        if not isinstance(msg, Command | Heartbeat | SetConfig | Torque):
            return nack(NackReason.UNSUPPORTED)
        if msg.session_id != self.session_id:
            return nack(NackReason.SESSION)
        if not self.rx.accept(seq):
            return []  # duplicate or reordered: never acted on twice
        self.last_feed_us = now_us
        if isinstance(msg, Heartbeat):
            return []
        if isinstance(msg, Command):
            return self._command(msg, now_us, nack)
        if isinstance(msg, SetConfig):
            return self._set_config(msg, nack) or [ack]
        return self._torque(msg, positions, nack) or [ack]

    def _command(self, msg: Command, now_us: int, nack) -> list[Message]:
        info, cfg = self.info, self.config
        if self.estopped:
            return nack(NackReason.ESTOPPED)
        if self.wd_tripped:
            return nack(NackReason.WATCHDOG)
        if not self.armed:
            return nack(NackReason.DISABLED)
        if msg.mode not in (1, 2, 3) or not (info.control_modes >> msg.mode) & 1:
            return nack(NackReason.MODE)
        targets = np.asarray(msg.targets, np.float32)
        if targets.shape != (info.n_joints,):
            return nack(NackReason.JOINTS)
        if not 0 < msg.ttl_us <= TTL_MAX_US or not _finite(targets):
            return nack(NackReason.RANGE)
        if msg.cmd_seq <= self.last_cmd_seq:
            return nack(NackReason.STALE_COMMAND)
        if msg.mode == Mode.POSITION:
            lo, hi = cfg.pos_min, cfg.pos_max
        elif msg.mode == Mode.VELOCITY:
            lo, hi = -cfg.vel_max, cfg.vel_max
        else:
            lo, hi = -cfg.effort_max, cfg.effort_max
        clamped = np.minimum(np.maximum(targets, lo), hi)
        self.limit_clamped = bool((clamped != targets).any())
        self.cmd_expired = False
        self.last_cmd_seq = msg.cmd_seq
        self.cmd_expiry_us = now_us + msg.ttl_us
        self.drive = Drive(DriveKind.TRACK, int(msg.mode), clamped, cfg.effort_max.copy())
        return []

    def _set_config(self, msg: SetConfig, nack) -> list[Message] | None:
        info = self.info
        frac = np.float32(msg.hold_effort_frac)
        if not WATCHDOG_MIN_MS <= msg.watchdog_ms <= WATCHDOG_MAX_MS:
            return nack(NackReason.RANGE)
        if msg.watchdog_action not in (WatchdogAction.HOLD, WatchdogAction.TORQUE_OFF):
            return nack(NackReason.RANGE)
        if not (np.isfinite(frac) and 0.0 <= frac <= 1.0):
            return nack(NackReason.RANGE)
        n = msg.n_joints
        if n not in (0, info.n_joints):
            return nack(NackReason.JOINTS)
        if n:
            a = [np.asarray(getattr(msg, k), np.float32) for k in
                 ("pos_min", "pos_max", "vel_max", "effort_max", "kp", "kd")]
            pmin, pmax, vmax, emax, kp, kd = a
            ok = (
                _finite(*a)
                and (pmin >= info.pos_min).all() and (pmax <= info.pos_max).all()
                and (pmin < pmax).all()
                and (vmax > 0).all() and (vmax <= info.vel_max).all()
                and (emax > 0).all() and (emax <= info.effort_max).all()
                and (kp >= 0).all() and (kd >= 0).all()
            )
            if not ok:
                return nack(NackReason.RANGE)
            c = self.config
            c.pos_min, c.pos_max, c.vel_max, c.effort_max, c.kp, c.kd = (x.copy() for x in a)
        self.config.watchdog_ms = int(msg.watchdog_ms)
        self.config.watchdog_action = int(msg.watchdog_action)
        self.config.hold_effort_frac = frac
        return None

    def _torque(self, msg: Torque, positions, nack) -> list[Message] | None:
        if msg.action == TorqueAction.ENABLE:
            self.estopped = self.wd_tripped = self.cmd_expired = False
            self.fault = FaultCode.NONE
            self.armed = True
            self._hold(positions, self.config.effort_max)
        elif msg.action == TorqueAction.DISABLE:
            self.armed = False
            self._off()
        elif msg.action == TorqueAction.HOLD:
            if self.estopped:
                return nack(NackReason.ESTOPPED)
            self._hold(positions, self.config.effort_max)
        else:
            return nack(NackReason.RANGE)
        return None

    def tick(self, now_us: int, positions) -> list[Message]:
        """Time-driven rules (watchdog, command TTL); call every control period."""
        cfg = self.config
        out: list[Message] = []
        if self.armed and now_us - self.last_feed_us > cfg.watchdog_ms * 1000:
            self.armed = False
            self.wd_tripped = True
            self.fault = FaultCode.WATCHDOG
            if cfg.watchdog_action == WatchdogAction.HOLD:
                self._hold(positions, cfg.effort_max * cfg.hold_effort_frac)
            else:
                self._off()
            elapsed_ms = np.float32((now_us - self.last_feed_us) // 1000)
            out.append(Fault(self.session_id, int(FaultCode.WATCHDOG), NO_JOINT, float(elapsed_ms)))
        if self.drive.kind == DriveKind.TRACK and now_us >= self.cmd_expiry_us:
            self.cmd_expired = True
            self._hold(positions, cfg.effort_max)
        return out


class McuEndpoint:
    """Bytes in, bytes out: decoder + protocol state + the MCU's own tx sequence counter."""

    def __init__(self, info: FirmwareInfo, session_id: int):
        self.protocol = McuProtocol(info, session_id)
        self.decoder = Decoder()
        self.tx_seq = 0

    def _send(self, msgs: list[Message]) -> bytes:
        out = []
        for m in msgs:
            out.append(encode(m, self.tx_seq))
            self.tx_seq = (self.tx_seq + 1) & 0xFFFF
        return b"".join(out)

    def receive(self, data: bytes, now_us: int, positions) -> bytes:
        replies: list[Message] = []
        for frame in self.decoder.feed(data):
            replies += self.protocol.handle(frame, now_us, positions)
        return self._send(replies)

    def tick(self, now_us: int, positions) -> bytes:
        return self._send(self.protocol.tick(now_us, positions))

    def state_frame(self, now_us: int, positions, velocities, efforts) -> bytes:
        return self._send([self.protocol.state(now_us, positions, velocities, efforts)])
