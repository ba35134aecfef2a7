"""Message definitions of the metabot serial protocol (docs/protocol.md is normative).

Each message is a frozen dataclass plus a wire layout: scalar fields in declaration order,
then (for messages with joint arrays) a u8 joint count `n`, then each float32[n] array.
The layout string of each message is hashed (CRC-32C) into a per-message schema hash that
the frame CRC covers, so two sides that disagree on a message definition reject each
other's frames instead of misreading them (the MAVLink CRC_EXTRA idea).

Joint arrays accept numpy arrays, tuples or lists of float on encode and decode as
read-only numpy float32 views (no copy: the decoder is on the hot path).
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

import crc32c as _crc32c
import numpy as np

PROTOCOL_VERSION = 1
MAGIC = 0xB5
MAX_JOINTS = 8
MAX_PAYLOAD = 240
HEADER_SIZE = 8
CRC_SIZE = 4
MAX_RAW_FRAME = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE  # 252 bytes before COBS
MAX_ENCODED_FRAME = MAX_RAW_FRAME + 1 + (MAX_RAW_FRAME // 254)  # 253: COBS, no delimiters
MAX_WIRE_FRAME = MAX_ENCODED_FRAME + 2  # leading and trailing 0x00 delimiters

JointArray = np.ndarray | tuple | list


class MsgId(enum.IntEnum):
    HELLO = 0x01
    HELLO_ACK = 0x02
    STATE = 0x03
    COMMAND = 0x04
    HEARTBEAT = 0x05
    SET_CONFIG = 0x06
    TORQUE = 0x07
    ESTOP = 0x08
    ACK = 0x09
    NACK = 0x0A
    FAULT = 0x0B


# HELLO and HELLO_ACK keep their layout (and schema hash) in every protocol version, so
# that two sides of different versions can still tell each other which version they speak.
VERSION_FREE_IDS = frozenset({MsgId.HELLO, MsgId.HELLO_ACK})


class Mode(enum.IntEnum):
    POSITION = 1
    VELOCITY = 2
    TORQUE = 3


def modes_mask(*modes: Mode) -> int:
    """Bitmask of control modes (bit `mode`), as carried in HELLO_ACK.control_modes."""
    mask = 0
    for m in modes:
        mask |= 1 << int(m)
    return mask


class TorqueAction(enum.IntEnum):
    DISABLE = 0  # torque off
    ENABLE = 1  # (re-)enable: clears ESTOP and watchdog latches, holds until a COMMAND
    HOLD = 2  # hold the current position, drop the active command


class WatchdogAction(enum.IntEnum):
    HOLD = 0  # hold position with torque limited to hold_effort_frac * effort_max
    TORQUE_OFF = 1


class NackReason(enum.IntEnum):
    VERSION = 1
    NOT_HANDSHAKED = 2
    SESSION = 3
    ESTOPPED = 4
    WATCHDOG = 5
    DISABLED = 6
    MODE = 7
    JOINTS = 8
    RANGE = 9
    STALE_COMMAND = 10
    UNSUPPORTED = 11


class FaultCode(enum.IntEnum):
    NONE = 0
    WATCHDOG = 1
    ESTOP = 2
    POSITION_LIMIT = 3
    SERVO = 4


class Status(enum.IntFlag):
    HANDSHAKED = 0x01
    ENABLED = 0x02
    ESTOPPED = 0x04
    WATCHDOG_TRIPPED = 0x08
    HOLDING = 0x10
    LIMIT_CLAMPED = 0x20
    FAULT = 0x40
    COMMAND_EXPIRED = 0x80
    TORQUE_ON = 0x100


_SCALAR_TYPES = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "f32": "f"}


class Message:
    """Base of every message: equality compares joint arrays by value."""

    __slots__ = ()

    MSG_ID: ClassVar[MsgId]
    SCALARS: ClassVar[tuple[tuple[str, str], ...]]
    ARRAYS: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: Any) -> bool:
        """Equal as on the wire: floats compared at float32 precision, NaN equal to NaN."""
        if type(other) is not type(self):
            return NotImplemented
        floats = {n for n, t in self.SCALARS if t == "f32"}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name in self.ARRAYS or f.name in floats:
                if not np.array_equal(
                    np.asarray(a, np.float32), np.asarray(b, np.float32), equal_nan=True
                ):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    @property
    def n_joints(self) -> int:
        return len(getattr(self, self.ARRAYS[0])) if self.ARRAYS else 0


def _msg(cls):
    return dataclass(frozen=True, eq=False, slots=True)(cls)


@_msg
class Hello(Message):
    """Host -> MCU: start (or restart) a handshake. Layout frozen across versions."""

    MSG_ID = MsgId.HELLO
    SCALARS = (("protocol_version", "u16"), ("host_nonce", "u32"))
    protocol_version: int
    host_nonce: int


@_msg
class HelloAck(Message):
    """MCU -> host: who the firmware is, its session (new at every boot) and hard limits."""

    MSG_ID = MsgId.HELLO_ACK
    SCALARS = (
        ("protocol_version", "u16"),
        ("host_nonce", "u32"),
        ("firmware_id", "u32"),
        ("session_id", "u32"),
        ("control_modes", "u8"),
        ("names_digest", "u32"),
    )
    ARRAYS = ("pos_min", "pos_max", "vel_max", "effort_max")
    protocol_version: int
    host_nonce: int
    firmware_id: int
    session_id: int
    control_modes: int
    names_digest: int
    pos_min: JointArray
    pos_max: JointArray
    vel_max: JointArray
    effort_max: JointArray


@_msg
class State(Message):
    """MCU -> host, every control period: measured joints and the MCU's protocol state."""

    MSG_ID = MsgId.STATE
    SCALARS = (
        ("session_id", "u32"),
        ("t_us", "u64"),
        ("last_cmd_seq", "u32"),
        ("status", "u16"),
        ("fault", "u8"),
    )
    ARRAYS = ("positions", "velocities", "efforts")
    session_id: int
    t_us: int
    last_cmd_seq: int
    status: int
    fault: int
    positions: JointArray
    velocities: JointArray
    efforts: JointArray


@_msg
class Command(Message):
    """Host -> MCU: joint targets in one mode, valid for ttl_us after arrival."""

    MSG_ID = MsgId.COMMAND
    SCALARS = (("session_id", "u32"), ("cmd_seq", "u32"), ("ttl_us", "u32"), ("mode", "u8"))
    ARRAYS = ("targets",)
    session_id: int
    cmd_seq: int
    ttl_us: int
    mode: int
    targets: JointArray


@_msg
class Heartbeat(Message):
    """Host -> MCU: feeds the watchdog when no COMMAND is due."""

    MSG_ID = MsgId.HEARTBEAT
    SCALARS = (("session_id", "u32"), ("t_us", "u64"))
    session_id: int
    t_us: int


@_msg
class SetConfig(Message):
    """Host -> MCU: watchdog and (with n > 0) tightened limits and gains."""

    MSG_ID = MsgId.SET_CONFIG
    SCALARS = (
        ("session_id", "u32"),
        ("watchdog_ms", "u16"),
        ("watchdog_action", "u8"),
        ("hold_effort_frac", "f32"),
    )
    ARRAYS = ("pos_min", "pos_max", "vel_max", "effort_max", "kp", "kd")
    session_id: int
    watchdog_ms: int
    watchdog_action: int
    hold_effort_frac: float
    pos_min: JointArray = ()
    pos_max: JointArray = ()
    vel_max: JointArray = ()
    effort_max: JointArray = ()
    kp: JointArray = ()
    kd: JointArray = ()


@_msg
class Torque(Message):
    """Host -> MCU: enable (re-arm after ESTOP/watchdog), disable or hold."""

    MSG_ID = MsgId.TORQUE
    SCALARS = (("session_id", "u32"), ("action", "u8"))
    session_id: int
    action: int


@_msg
class Estop(Message):
    """Either direction: stop now. Honoured in every state, without a session check."""

    MSG_ID = MsgId.ESTOP
    SCALARS = (("reason", "u8"),)
    reason: int = 0


@_msg
class Ack(Message):
    MSG_ID = MsgId.ACK
    SCALARS = (("acked_seq", "u16"), ("acked_id", "u8"))
    acked_seq: int
    acked_id: int


@_msg
class Nack(Message):
    MSG_ID = MsgId.NACK
    SCALARS = (("acked_seq", "u16"), ("acked_id", "u8"), ("reason", "u8"))
    acked_seq: int
    acked_id: int
    reason: int


@_msg
class Fault(Message):
    """MCU -> host: a fault latched (watchdog trip, limit, servo error)."""

    MSG_ID = MsgId.FAULT
    SCALARS = (("session_id", "u32"), ("code", "u8"), ("joint", "u8"), ("value", "f32"))
    session_id: int
    code: int
    joint: int
    value: float


MESSAGE_TYPES: tuple[type[Message], ...] = (
    Hello,
    HelloAck,
    State,
    Command,
    Heartbeat,
    SetConfig,
    Torque,
    Estop,
    Ack,
    Nack,
    Fault,
)


def names_digest(names: list[str] | tuple[str, ...]) -> int:
    """HELLO_ACK.names_digest: CRC-32C of the joint names joined by ','."""
    return _crc32c.crc32c(",".join(names).encode("utf-8"))


def schema_string(cls: type[Message]) -> str:
    """The text whose CRC-32C is the message's schema hash (see docs/protocol.md)."""
    parts = [f"{n}:{t}" for n, t in cls.SCALARS]
    if cls.ARRAYS:
        parts.append("n:u8")
        parts += [f"{a}:f32[n]" for a in cls.ARRAYS]
    return f"{cls.MSG_ID.name}={int(cls.MSG_ID)}(" + ",".join(parts) + ")"


class MessageSpec:
    """Compiled wire layout of one message type (struct formats, schema hash)."""

    __slots__ = ("cls", "msg_id", "schema", "schema_hash", "schema_bytes", "fixed",
                 "fixed_size", "names", "arrays", "n_arrays")

    def __init__(self, cls: type[Message]):
        self.cls = cls
        self.msg_id = int(cls.MSG_ID)
        self.schema = schema_string(cls)
        self.schema_hash = _crc32c.crc32c(self.schema.encode("ascii"))
        self.schema_bytes = struct.pack("<I", self.schema_hash)
        fmt = "<" + "".join(_SCALAR_TYPES[t] for _, t in cls.SCALARS) + ("B" if cls.ARRAYS else "")
        self.fixed = struct.Struct(fmt)
        self.fixed_size = self.fixed.size
        self.names = tuple(n for n, _ in cls.SCALARS)
        self.arrays = cls.ARRAYS
        self.n_arrays = len(cls.ARRAYS)

    def pack(self, msg: Message) -> bytes:
        scalars = [getattr(msg, n) for n in self.names]
        if not self.n_arrays:
            return self.fixed.pack(*scalars)
        try:  # one stacked array: a ragged or non-numeric input fails here
            arr = np.array([getattr(msg, a) for a in self.arrays], dtype="<f4")
        except (ValueError, TypeError):
            arr = None
        if arr is None or arr.ndim != 2 or arr.shape[1] > MAX_JOINTS:
            raise ValueError(
                f"{self.cls.__name__}: joint arrays must be 1-D, equal length <= {MAX_JOINTS}"
            )
        return self.fixed.pack(*scalars, arr.shape[1]) + arr.tobytes()

    def unpack(self, payload: bytes) -> Message | None:
        """Message from a payload, or None when the payload size does not fit the layout."""
        size = len(payload)
        if not self.n_arrays:
            if size != self.fixed_size:
                return None
            return self.cls(*self.fixed.unpack(payload))
        if size < self.fixed_size:
            return None
        vals = self.fixed.unpack_from(payload)
        n = vals[-1]
        if n > MAX_JOINTS or size != self.fixed_size + 4 * n * self.n_arrays:
            return None
        rows = np.frombuffer(payload, "<f4", n * self.n_arrays, self.fixed_size)
        return self.cls(*vals[:-1], *rows.reshape(self.n_arrays, n))


SPECS: dict[int, MessageSpec] = {int(c.MSG_ID): MessageSpec(c) for c in MESSAGE_TYPES}
SPEC_BY_TYPE: dict[type, MessageSpec] = {s.cls: s for s in SPECS.values()}
