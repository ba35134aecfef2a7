"""Python bridge codec: round trips, shared vectors, streaming resync, sequence tracking."""

from __future__ import annotations

import importlib.util
import math
import struct
import sys
from pathlib import Path

import crc32c
import numpy as np
import pytest

from metabot.bridge import (
    MAX_JOINTS,
    MAX_WIRE_FRAME,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    REASONS,
    Command,
    Decoder,
    Estop,
    Fault,
    Heartbeat,
    Hello,
    HelloAck,
    SequenceTracker,
    SessionWatch,
    SetConfig,
    State,
    VersionMismatch,
    check_hello_ack,
    encode,
)
from metabot.errors import LinkError

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "firmware_bridge" / "tools"


def _load(name: str, path: Path):
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(path.parent))


@pytest.fixture(scope="module")
def gen():
    return _load("gen_vectors", TOOLS / "gen_vectors.py")


def test_crc32c_check_value():
    assert crc32c.crc32c(b"123456789") == 0xE3069283


def test_every_message_type_round_trips(gen):
    kinds = {type(m) for _, m, _, _ in gen.valid_messages()}
    assert kinds == set(MESSAGE_TYPES)
    for name, msg, seq, kw in gen.valid_messages():
        wire = encode(msg, seq, **kw)
        assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1], name
        assert len(wire) <= MAX_WIRE_FRAME
        (frame,) = Decoder().feed(wire)
        assert frame.msg == msg and frame.seq == seq and frame.msg_id == int(msg.MSG_ID), name
        assert encode(frame.msg, frame.seq, **kw) == wire


def test_shared_vectors_decisions_fields_and_bytes(gen):
    """The committed vectors.txt is what the Python codec does (the C test checks the rest)."""
    n = 0
    for line in (ROOT / "firmware_bridge/vectors/vectors.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        kind, name, hexdata, expect, fields = line.split(" ")
        data = bytes.fromhex(hexdata)
        if kind == "frame":
            d = Decoder()
            frames = d.feed(data)
            if expect == "ok":
                assert len(frames) == 1, name
                assert gen.fields_string(frames[0]) == fields, name
                f = frames[0]
                assert encode(f.msg, f.seq, version=f.version, compat_flags=f.compat_flags) == data
            else:
                assert frames == [] and d.last_reason == expect, (name, d.rejected)
        else:
            assert gen.stream_events(data) == ("" if expect == "-" else expect), name
        n += 1
    assert n >= 50


def test_generated_files_are_fresh(gen):
    for path, text in gen.outputs().items():
        assert path.read_text() == text, f"stale {path}: run firmware_bridge/tools/gen_vectors.py"


def test_every_rejection_reason_has_a_vector(gen):
    reasons = {reason for _, _, reason in gen.rejected_frames()}
    assert reasons == set(REASONS)


def test_joint_arrays_accept_tuples_and_numpy_and_decode_to_float32():
    a = encode(Command(1, 2, 3, 1, (0.1, 0.2)), 5)
    b = encode(Command(1, 2, 3, 1, np.array([0.1, 0.2], np.float32)), 5)
    assert a == b
    (f,) = Decoder().feed(a)
    assert f.msg.targets.dtype == np.float32 and f.msg.targets.tolist() == pytest.approx([0.1, 0.2])


@pytest.mark.parametrize(
    "msg",
    [
        Command(1, 2, 3, 1, np.zeros(MAX_JOINTS + 1)),
        State(1, 2, 3, 4, 5, (1.0, 2.0), (1.0,), (1.0, 2.0)),
        Command(1, 2, 3, 1, np.zeros((2, 3))),
        Hello(-1, 0),
        Heartbeat(1 << 32, 0),
        Estop(256),
    ],
)
def test_encode_rejects_malformed_messages(msg):
    with pytest.raises(ValueError):
        encode(msg, 0)


def test_decoder_resyncs_after_garbage_and_split_feeds():
    rng = np.random.default_rng(0)
    frames = [encode(Heartbeat(7, i), i) for i in range(50)]
    stream = b""
    for i, f in enumerate(frames):
        garbage = bytes(rng.integers(1, 256, int(rng.integers(0, 30)), dtype=np.uint8))
        stream += garbage + f if i % 3 == 0 else f
    d = Decoder()
    got = []
    pos = 0
    while pos < len(stream):
        step = int(rng.integers(1, 40))
        got += d.feed(stream[pos : pos + step])
        pos += step
    assert [f.msg.t_us for f in got] == list(range(50))
    assert d.accepted == 50 and d.total_rejected > 0


def test_decoder_bounds_memory_on_endless_garbage():
    d = Decoder()
    for _ in range(100):
        assert d.feed(b"\x55" * 1000) == []
    assert len(d._buf) <= 253
    (f,) = d.feed(encode(Estop(3), 9))
    assert f.msg == Estop(3) and d.rejected["oversize"] == 1


def test_corrupted_frames_never_accepted():
    wire = encode(State(1, 2, 3, 4, 0, (0.5,) * 6, (0.1,) * 6, (0.2,) * 6), 10)
    for i in range(1, len(wire) - 1):
        for bit in range(8):
            bad = bytearray(wire)
            bad[i] ^= 1 << bit
            assert Decoder().feed(bytes(bad)) == [], (i, bit)
    # a flipped byte that becomes 0x00 splits the frame: both halves are rejected
    bad = bytearray(wire)
    bad[20] = 0
    assert Decoder().feed(bytes(bad)) == []


def test_nan_and_special_floats_survive_bit_exact():
    vals = np.array([math.nan, -0.0, math.inf, 1e-45], np.float32)
    (f,) = Decoder().feed(encode(State(1, 2, 3, 4, 5, vals, vals, vals), 1))
    assert f.msg.positions.tobytes() == vals.tobytes()


def test_schema_hash_in_crc_rejects_mismatched_definitions(gen):
    """Same bytes, different message definition: the CRC fails (no silent misread)."""
    payload = struct.pack("<HB", 1, 2)  # ACK layout
    raw = gen.raw_frame(9, payload, schema_hash=0x12345678)
    d = Decoder()
    assert d.feed(gen.wire(raw)) == [] and d.rejected["crc"] == 1


def test_sequence_tracker_duplicates_reorders_wrap():
    t = SequenceTracker()
    assert t.check(65534) == "new"
    assert t.check(65535) == "new"
    assert t.check(65535) == "duplicate"
    assert t.check(0) == "new"  # wraps
    assert t.check(65535) == "reordered"
    assert t.check(3) == "new" and t.lost == 2
    assert t.check(3 + 0x8000) == "reordered"  # too far ahead is treated as old
    t.reset()
    assert t.check(100) == "new"
    assert (t.duplicates, t.reordered) == (1, 2)


def test_version_mismatch_names_both_versions():
    ack_v2 = encode(HelloAck(2, 5, 1, 9, 0, 0, (), (), (), ()), 0, version=2)
    (f,) = Decoder().feed(ack_v2)  # HELLO_ACK is decodable across versions
    with pytest.raises(VersionMismatch) as e:
        check_hello_ack(f.msg, host_nonce=5)
    assert "v1" in str(e.value) and "v2" in str(e.value)
    assert isinstance(e.value, LinkError)
    with pytest.raises(LinkError):
        check_hello_ack(HelloAck(1, 6, 1, 9, 0, 0, (), (), (), ()), host_nonce=5)
    # other messages of another version are rejected by the decoder, with the reason counted
    d = Decoder()
    assert d.feed(encode(Heartbeat(1, 2), 3, version=PROTOCOL_VERSION + 1)) == []
    assert d.rejected["version"] == 1


def test_session_watch_detects_reboot():
    w = SessionWatch()
    w.start(0xAAAA)
    assert not w.observe(0xAAAA)
    assert w.observe(0xBBBB) and w.reboots == 1


def test_set_config_defaults_and_fault_float():
    (f,) = Decoder().feed(encode(SetConfig(1, 100, 0, 0.3), 1))
    assert f.msg.n_joints == 0 and f.msg.hold_effort_frac == pytest.approx(0.3)
    (g,) = Decoder().feed(encode(Fault(1, 1, 255, 12.5), 2))
    assert g.msg.value == 12.5
