"""The MCU protocol state machine (metabot.bridge.mcu) that the mock robot runs."""

from __future__ import annotations

import numpy as np
import pytest

from metabot.bridge import (
    PROTOCOL_VERSION,
    Ack,
    Command,
    Decoder,
    Estop,
    Fault,
    FaultCode,
    Heartbeat,
    Hello,
    HelloAck,
    Nack,
    NackReason,
    SessionWatch,
    SetConfig,
    State,
    Status,
    Torque,
    VersionMismatch,
    check_hello_ack,
    encode,
)
from metabot.bridge.mcu import DriveKind, FirmwareInfo, McuEndpoint

N = 6
POS = np.linspace(-0.5, 0.5, N).astype(np.float32)


def make_mcu(session: int = 0x1111) -> McuEndpoint:
    info = FirmwareInfo(N, np.full(N, -2.0), np.full(N, 2.0), np.full(N, 3.0), np.full(N, 4.0))
    return McuEndpoint(info, session)


class Host:
    """A minimal host: numbered frames out, decoded replies back."""

    def __init__(self, mcu: McuEndpoint):
        self.mcu, self.seq, self.rx, self.t = mcu, 0, Decoder(), 0

    def send(self, msg, dt: int = 1000, **kw) -> list:
        self.seq += 1
        self.t += dt
        return [f.msg for f in self.rx.feed(self.mcu.receive(encode(msg, self.seq, **kw),
                                                               self.t, POS))]

    def tick(self, dt: int) -> list:
        self.t += dt
        return [f.msg for f in self.rx.feed(self.mcu.tick(self.t, POS))]

    def state(self) -> State:
        z = np.zeros(N, np.float32)
        (f,) = self.rx.feed(self.mcu.state_frame(self.t, POS, z, z))
        return f.msg

    def handshake(self) -> HelloAck:
        (ack,) = self.send(Hello(PROTOCOL_VERSION, 42))
        check_hello_ack(ack, host_nonce=42)
        assert self.send(Torque(ack.session_id, 1)) == [Ack(self.seq, 7)]
        return ack


def test_full_session_tracks_clamped_commands():
    mcu = make_mcu()
    h = Host(mcu)
    ack = h.handshake()
    assert ack.session_id == 0x1111 and len(ack.pos_min) == N
    assert mcu.protocol.drive.kind == DriveKind.HOLD
    assert h.send(Command(0x1111, 1, 50_000, 1, np.full(N, 9.0))) == []
    d = mcu.protocol.drive
    assert d.kind == DriveKind.TRACK and np.all(d.targets == 2.0)  # MCU-side limit check
    st = h.state()
    assert st.last_cmd_seq == 1 and st.status & Status.LIMIT_CLAMPED and st.status & Status.ENABLED


def test_nothing_moves_before_handshake_or_on_version_mismatch():
    mcu = make_mcu()
    h = Host(mcu)
    (nack,) = h.send(Command(0x1111, 1, 50_000, 1, POS))
    assert nack == Nack(1, 4, NackReason.NOT_HANDSHAKED)
    replies = h.send(Hello(PROTOCOL_VERSION + 1, 5), version=PROTOCOL_VERSION + 1)
    ack, nack = replies
    assert isinstance(ack, HelloAck) and nack.reason == NackReason.VERSION
    with pytest.raises(VersionMismatch, match=f"v{PROTOCOL_VERSION + 1}.*v{PROTOCOL_VERSION}"):
        check_hello_ack(ack, host_version=PROTOCOL_VERSION + 1)
    assert h.send(Torque(0x1111, 1))[0].reason == NackReason.NOT_HANDSHAKED
    assert mcu.protocol.drive.kind == DriveKind.OFF


def test_duplicate_command_frame_is_never_acted_on_twice():
    mcu = make_mcu()
    h = Host(mcu)
    h.handshake()
    wire = encode(Command(0x1111, 1, 50_000, 1, POS), 100)
    mcu.receive(wire, 5000, POS)
    mcu.receive(wire, 5001, POS)
    mcu.receive(encode(Command(0x1111, 2, 50_000, 1, -POS), 99), 5002, POS)  # reordered
    assert mcu.protocol.rx.duplicates == 1 and mcu.protocol.rx.reordered == 1
    assert mcu.protocol.last_cmd_seq == 1 and np.allclose(mcu.protocol.drive.targets, POS)


def test_estop_latches_until_reenabled():
    mcu = make_mcu()
    h = Host(mcu)
    h.handshake()
    h.send(Command(0x1111, 1, 50_000, 1, POS))
    assert h.send(Estop(1)) == [Ack(h.seq, 8)]
    assert mcu.protocol.drive.kind == DriveKind.OFF
    assert h.send(Command(0x1111, 2, 50_000, 1, POS))[0].reason == NackReason.ESTOPPED
    assert h.state().fault == FaultCode.ESTOP
    h.send(Torque(0x1111, 1))
    assert h.send(Command(0x1111, 3, 50_000, 1, POS)) == []
    assert mcu.protocol.drive.kind == DriveKind.TRACK


@pytest.mark.parametrize("action, kind", [(0, DriveKind.HOLD), (1, DriveKind.OFF)])
def test_watchdog_trip_holds_with_limited_torque_or_cuts_it(action, kind):
    mcu = make_mcu()
    h = Host(mcu)
    h.handshake()
    assert h.send(SetConfig(0x1111, 20, action, 0.25))[0] == Ack(h.seq, 6)
    h.send(Command(0x1111, 1, 1_000_000, 1, POS))
    assert h.tick(19_000) == []
    (fault,) = h.tick(2_000)
    assert isinstance(fault, Fault) and fault.code == FaultCode.WATCHDOG
    d = mcu.protocol.drive
    assert d.kind == kind
    if kind == DriveKind.HOLD:
        assert np.allclose(d.effort_limit, 1.0) and np.allclose(d.targets, POS)
    assert h.send(Command(0x1111, 2, 50_000, 1, POS))[0].reason == NackReason.WATCHDOG
    h.send(Heartbeat(0x1111, 0))  # a heartbeat alone does not re-arm
    assert h.send(Command(0x1111, 3, 50_000, 1, POS))[0].reason == NackReason.WATCHDOG
    h.send(Torque(0x1111, 1))
    assert h.send(Command(0x1111, 4, 50_000, 1, POS)) == []


def test_set_config_watchdog_bounds():
    mcu = make_mcu()
    h = Host(mcu)
    h.handshake()
    for ms, ok in ((19, False), (20, True), (2500, True), (2501, False)):
        (r,) = h.send(SetConfig(0x1111, ms, 0, 0.3))
        assert isinstance(r, Ack) == ok, ms


def test_reboot_is_detected_within_one_state_and_needs_a_new_handshake():
    mcu = make_mcu(0x1111)
    h = Host(mcu)
    watch = SessionWatch()
    watch.start(h.handshake().session_id)
    h.send(Command(0x1111, 1, 50_000, 1, POS))
    assert not watch.observe(h.state().session_id)
    h.mcu = make_mcu(0x2222)  # MCU reboots: new session id, torque off
    assert watch.observe(h.state().session_id)
    assert h.send(Command(0x1111, 2, 50_000, 1, POS))[0].reason == NackReason.NOT_HANDSHAKED
    ack = h.handshake()
    assert ack.session_id == 0x2222
    assert h.send(Command(0x1111, 3, 50_000, 1, POS))[0].reason == NackReason.SESSION
    assert h.send(Command(0x2222, 3, 50_000, 1, POS)) == []


def test_python_mcu_reproduces_committed_scenarios():
    """scenarios.txt (which the C firmware must also reproduce) matches mcu.py today."""
    import importlib.util
    import sys
    from pathlib import Path

    tools = Path(__file__).resolve().parents[1] / "firmware_bridge" / "tools"
    sys.path.insert(0, str(tools))
    try:
        spec = importlib.util.spec_from_file_location("gen_scenarios", tools / "gen_scenarios.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(tools))
    assert mod.SCENARIOS_PATH.read_text() == mod.build_scenarios()
