"""metabot.bridge: the serial wire protocol between robot computer and MCU.

docs/protocol.md is the normative spec; firmware_bridge/ holds the C99 twin. This package
imports nothing of metabot except metabot.errors.
"""

from .codec import REASONS, Decoder, Frame, SequenceTracker, decode_frame, encode
from .handshake import SessionWatch, VersionMismatch, check_hello_ack, check_nack
from .messages import (
    MAGIC,
    MAX_ENCODED_FRAME,
    MAX_JOINTS,
    MAX_PAYLOAD,
    MAX_WIRE_FRAME,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    SPECS,
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
    MsgId,
    Nack,
    NackReason,
    SetConfig,
    State,
    Status,
    Torque,
    TorqueAction,
    WatchdogAction,
    modes_mask,
    names_digest,
    schema_string,
)

__all__ = [
    "MAGIC", "MAX_ENCODED_FRAME", "MAX_JOINTS", "MAX_PAYLOAD", "MAX_WIRE_FRAME",
    "MESSAGE_TYPES", "PROTOCOL_VERSION", "REASONS", "SPECS", "Ack", "Command", "Decoder",
    "Estop", "Fault", "FaultCode", "Frame", "Hello", "HelloAck", "Heartbeat", "Message", "Mode",
    "MsgId", "Nack", "NackReason", "SequenceTracker", "SessionWatch", "SetConfig", "State",
    "Status", "Torque", "TorqueAction", "VersionMismatch", "WatchdogAction", "check_hello_ack",
    "check_nack", "decode_frame", "encode", "modes_mask", "names_digest", "schema_string",
]
