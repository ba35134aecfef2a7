"""Host-side handshake checks: version agreement and MCU reboot (session) detection."""

from __future__ import annotations

from metabot.errors import LinkError

from .messages import PROTOCOL_VERSION, HelloAck, Message, Nack, NackReason


class VersionMismatch(LinkError):
    """Host and firmware speak different protocol versions; nothing may move."""

    def __init__(self, host_version: int, firmware_version: int):
        self.host_version = host_version
        self.firmware_version = firmware_version
        super().__init__(
            f"protocol version mismatch: host speaks v{host_version}, "
            f"firmware speaks v{firmware_version}; update one side so both match"
        )


def check_hello_ack(
    ack: HelloAck, *, host_nonce: int | None = None, host_version: int = PROTOCOL_VERSION
) -> HelloAck:
    """Validate a HELLO_ACK against our HELLO; raise VersionMismatch or LinkError."""
    if ack.protocol_version != host_version:
        raise VersionMismatch(host_version, ack.protocol_version)
    if host_nonce is not None and ack.host_nonce != host_nonce:
        raise LinkError(
            f"HELLO_ACK answers another HELLO (nonce {ack.host_nonce:#010x}, "
            f"expected {host_nonce:#010x})"
        )
    return ack


def check_nack(msg: Message, host_version: int = PROTOCOL_VERSION) -> None:
    """Raise LinkError for a NACK received during the handshake."""
    if isinstance(msg, Nack):
        try:
            reason = NackReason(msg.reason).name
        except ValueError:
            reason = str(msg.reason)
        raise LinkError(f"firmware refused message id {msg.acked_id}: {reason}")


class SessionWatch:
    """Tracks the MCU session id; a change means the MCU rebooted and must be re-handshaken.

    `observe(session_id)` returns True exactly when the id differs from the handshaken one,
    i.e. within the first STATE after a reboot.
    """

    def __init__(self) -> None:
        self.session_id: int | None = None
        self.reboots = 0

    def start(self, session_id: int) -> None:
        self.session_id = session_id

    def observe(self, session_id: int) -> bool:
        if self.session_id is not None and session_id != self.session_id:
            self.reboots += 1
            return True
        return False
