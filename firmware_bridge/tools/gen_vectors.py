"""Generate the shared test vectors and the C schema-hash header from metabot.bridge.

    python firmware_bridge/tools/gen_vectors.py          # rewrite the committed files
    python firmware_bridge/tools/gen_vectors.py --check  # exit 1 if they are stale

Writes firmware_bridge/vectors/vectors.txt (frame vectors, format below),
firmware_bridge/vectors/scenarios.txt (MCU state machine scenarios, see gen_scenarios.py)
and firmware_bridge/src/mb_schema.h.

vectors.txt, one vector per line, space separated, '#' starts a comment:
    frame  NAME HEX EXPECT FIELDS   one wire frame; EXPECT is 'ok' or a rejection reason;
                                    for 'ok', FIELDS is the decoded frame (see fields_string)
                                    and re-encoding it must give HEX byte for byte
    stream NAME HEX EVENTS -        a byte stream; EVENTS lists, in order, 'ok:<msg_id>' for
                                    each accepted frame and the reason of each rejected one
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
from pathlib import Path

import numpy as np
from cobs import cobs
from crc32c import crc32c

from metabot.bridge import (
    MAGIC,
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    SPECS,
    Ack,
    Command,
    Decoder,
    Estop,
    Fault,
    Frame,
    Heartbeat,
    Hello,
    HelloAck,
    Nack,
    SetConfig,
    State,
    Torque,
    encode,
)

ROOT = Path(__file__).resolve().parents[1]
VECTORS = ROOT / "vectors" / "vectors.txt"
SCHEMA_H = ROOT / "src" / "mb_schema.h"


def f32_bits(x: float) -> str:
    return f"0x{struct.unpack('<I', struct.pack('<f', float(x)))[0]:08x}"


def fields_string(frame: Frame) -> str:
    """Canonical text of a decoded frame: header fields, then the message in wire order.

    Integers in decimal, floats as their IEEE-754 bit pattern (so NaN payloads compare).
    """
    spec = SPECS[frame.msg_id]
    msg = frame.msg
    vals = [frame.seq, frame.msg_id, frame.version, frame.incompat_flags, frame.compat_flags]
    out = [str(v) for v in vals]
    for name, typ in msg.SCALARS:
        v = getattr(msg, name)
        out.append(f32_bits(v) if typ == "f32" else str(int(v)))
    if spec.arrays:
        out.append(str(msg.n_joints))
        for a in spec.arrays:
            out += [f32_bits(x) for x in np.asarray(getattr(msg, a), np.float32)]
    return ",".join(out)


def raw_frame(
    msg_id: int,
    payload: bytes,
    *,
    seq: int = 0,
    version: int = PROTOCOL_VERSION,
    incompat: int = 0,
    compat: int = 0,
    magic: int = MAGIC,
    length: int | None = None,
    schema_hash: int | None = None,
    crc_xor: int = 0,
) -> bytes:
    """Hand-built raw frame (before COBS) for crafting corrupt-but-well-formed vectors."""
    plen = len(payload) if length is None else length
    hdr = struct.pack("<BBBBHBB", magic, version, incompat, compat, seq, msg_id, plen)
    if schema_hash is None:
        schema_hash = SPECS[msg_id].schema_hash if msg_id in SPECS else 0
    crc = crc32c(struct.pack("<I", schema_hash), crc32c(hdr + payload)) ^ crc_xor
    return hdr + payload + struct.pack("<I", crc)


def wire(raw: bytes) -> bytes:
    return b"\x00" + cobs.encode(raw) + b"\x00"


def _raw_of(frame_bytes: bytes) -> bytes:
    return cobs.decode(frame_bytes.strip(b"\x00"))


def valid_messages() -> list[tuple[str, object, int, dict]]:
    """(name, message, seq, encode kwargs): every type, typical and edge values."""
    six = np.linspace(-1.5, 1.5, 6, dtype=np.float32)
    eight = np.array([0.0, -0.0, 1e-45, -3.4028235e38, 3.4028235e38, math.inf, -math.inf,
                      1.17549435e-38], np.float32)
    nan = np.array([math.nan, 0.5], np.float32)
    u32, u64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF
    lim = np.array([-3.1, -2.0, -2.5, -3.1, -2.0, -3.1], np.float32)
    return [
        ("hello", Hello(PROTOCOL_VERSION, 0x12345678), 0, {}),
        ("hello_max", Hello(0xFFFF, u32), 0xFFFF, {}),
        ("hello_other_version_header", Hello(2, 1), 3, {"version": 2}),
        ("hello_ack_6", HelloAck(1, 0x12345678, 0x4D420001, 0xCAFEBABE, 0x0E, 0xDEADBEEF,
                                 lim, -lim, np.full(6, 3.0, np.float32),
                                 np.full(6, 1.5, np.float32)), 1, {}),
        ("hello_ack_other_version_header", HelloAck(7, 1, 2, 3, 0, 0, (), (), (), ()), 9,
         {"version": 7}),
        ("state_6", State(0xCAFEBABE, 1_234_567_890_123, 42, 0x0123, 0, six, six * 2, six * 3),
         513, {}),
        ("state_8_edges", State(u32, u64, u32, 0xFFFF, 255, eight, eight[::-1].copy(),
                                np.zeros(8, np.float32)), 65535, {}),
        ("state_nan", State(1, 0, 0, 0, 0, nan, nan, nan), 2, {}),
        ("state_0_joints", State(1, 2, 3, 4, 5, (), (), ()), 4, {}),
        ("state_compat_flags", State(1, 2, 3, 4, 5, (0.25,), (0.5,), (1.0,)), 5,
         {"compat_flags": 0xFF}),
        ("command_position", Command(0xCAFEBABE, 1, 20_000, 1, six), 100, {}),
        ("command_velocity_8", Command(7, u32, u32, 2, eight), 101, {}),
        ("command_torque_1", Command(7, 3, 1, 3, (0.125,)), 102, {}),
        ("heartbeat", Heartbeat(0xCAFEBABE, 987_654_321), 7, {}),
        ("heartbeat_max", Heartbeat(u32, u64), 8, {}),
        ("set_config_watchdog_only", SetConfig(0xCAFEBABE, 100, 0, 0.3), 9, {}),
        ("set_config_6", SetConfig(0xCAFEBABE, 2500, 1, 1.0, lim, -lim,
                                   np.full(6, 2.0, np.float32), np.full(6, 1.0, np.float32),
                                   np.full(6, 40.0, np.float32), np.full(6, 0.5, np.float32)),
         10, {}),
        ("set_config_8", SetConfig(1, 20, 0, 0.0, *(eight,) * 6), 11, {}),
        ("torque_enable", Torque(0xCAFEBABE, 1), 12, {}),
        ("torque_hold", Torque(0xCAFEBABE, 2), 13, {}),
        ("estop", Estop(0), 14, {}),
        ("estop_reason", Estop(255), 15, {}),
        ("ack", Ack(65535, 4), 16, {}),
        ("nack", Nack(17, 4, 6), 17, {}),
        ("fault", Fault(0xCAFEBABE, 1, 255, 123.0), 18, {}),
        ("fault_nan", Fault(0, 3, 2, math.nan), 19, {}),
    ]


def rejected_frames() -> list[tuple[str, bytes, str]]:
    """(name, wire bytes, reason) for corrupt frames, one per rejection path."""
    state = encode(State(1, 2, 3, 4, 0, (0.5,) * 6, (0.0,) * 6, (1.0,) * 6), 77)
    cmd_raw = _raw_of(encode(Command(1, 2, 1000, 1, (0.5,) * 6), 5))
    out = []
    # CRC: flip one bit in every region of the frame (header seq, payload, crc itself).
    for pos, name in ((4, "seq"), (12, "payload"), (len(cmd_raw) - 1, "crc_byte")):
        bad = bytearray(cmd_raw)
        bad[pos] ^= 0x10
        out.append((f"crc_flip_{name}", wire(bytes(bad)), "crc"))
    out.append(("crc_wrong_schema_hash",
                wire(raw_frame(4, cmd_raw[8:-4], schema_hash=SPECS[3].schema_hash)), "crc"))
    out.append(("crc_swapped_ids_same_size",
                wire(raw_frame(9, struct.pack("<HB", 1, 2), schema_hash=SPECS[8].schema_hash)),
                "crc"))
    # COBS: a code byte pointing past the end.
    out.append(("cobs_overrun", b"\x00\x05\x01\x02\x00", "cobs"))
    body = bytearray(state[1:-1])
    body[0] = 0xFE
    out.append(("cobs_bad_first_code", b"\x00" + bytes(body) + b"\x00", "cobs"))
    # Length: shorter than header + crc; header length disagrees with the frame.
    out.append(("length_short", wire(b"\xb5\x01\x00\x00\x00\x00\x08\x01\x00\x00\x00"), "length"))
    out.append(("length_empty_raw", b"\x00\x01\x00", "length"))
    out.append(("length_field_too_big", wire(raw_frame(8, b"\x00", length=2)), "length"))
    out.append(("length_field_too_small", wire(raw_frame(3, b"\x00" * 30, length=29)), "length"))
    out.append(("truncated_state", state[:40] + b"\x00", "length"))
    # Header checks.
    out.append(("magic", wire(raw_frame(8, b"\x00", magic=0xB4)), "magic"))
    out.append(("version_state", wire(raw_frame(3, _raw_of(state)[8:-4], version=2)), "version"))
    out.append(("version_zero_estop", wire(raw_frame(8, b"\x00", version=0)), "version"))
    out.append(("incompat_flag", wire(raw_frame(8, b"\x00", incompat=0x01)), "incompat"))
    out.append(("incompat_high_bit", wire(raw_frame(5, b"\x00" * 12, incompat=0x80)), "incompat"))
    out.append(("unknown_id_0", wire(raw_frame(0, b"")), "unknown_id"))
    out.append(("unknown_id_7f", wire(raw_frame(0x7F, b"\x01\x02")), "unknown_id"))
    # Payload layout (CRC valid, layout wrong).
    out.append(("payload_estop_too_long", wire(raw_frame(8, b"\x00\x00")), "payload"))
    out.append(("payload_ack_too_short", wire(raw_frame(9, b"\x00\x00")), "payload"))
    cmd9 = struct.pack("<IIIBB", 1, 2, 3, 1, 9) + b"\x00" * 36
    out.append(("payload_9_joints", wire(raw_frame(4, cmd9)), "payload"))
    cmd_n = struct.pack("<IIIBB", 1, 2, 3, 1, 6) + b"\x00" * 20
    out.append(("payload_n_disagrees", wire(raw_frame(4, cmd_n)), "payload"))
    out.append(("payload_state_no_count", wire(raw_frame(3, b"\x01" * 19)), "payload"))
    # Oversize: longer than any valid encoded frame.
    out.append(("oversize_254", b"\x00" + b"\x07" * 254 + b"\x00", "oversize"))
    out.append(("oversize_600", b"\x00" + bytes(range(1, 201)) * 3 + b"\x00", "oversize"))
    return out


def streams() -> list[tuple[str, bytes, str]]:
    a = encode(Heartbeat(1, 2), 1)
    b = encode(Command(1, 2, 1000, 1, (0.5,) * 6), 2)
    c = encode(Estop(0), 3)
    return [
        ("garbage_then_frame", b"\x13\x37garbage\xff\xfe" + a, "cobs,ok:5"),
        ("garbage_no_delimiter_then_frame", bytes(range(1, 250)) * 2 + b, "oversize,ok:4"),
        ("back_to_back_single_delimiters", a[:-1] + b[:-1] + c, "ok:5,ok:4,ok:8"),
        ("idle_fill", b"\x00" * 10 + a + b"\x00" * 5 + c, "ok:5,ok:8"),
        ("corrupt_between_valid", a + b[:20] + b"\x00" + c, "ok:5,length,ok:8"),
        ("duplicate_passes_decoder", a + a, "ok:5,ok:5"),
        ("lone_delimiters", b"\x00\x00\x00", ""),
    ]


def build_vectors() -> str:
    lines = [
        "# metabot bridge shared test vectors (generated by firmware_bridge/tools/gen_vectors.py)",
        f"# protocol_version {PROTOCOL_VERSION}",
        "# kind name hex expect fields",
    ]
    for name, msg, seq, kw in valid_messages():
        data = encode(msg, seq, **kw)
        frames = Decoder().feed(data)
        assert len(frames) == 1, name
        lines.append(f"frame {name} {data.hex()} ok {fields_string(frames[0])}")
    for name, data, reason in rejected_frames():
        d = Decoder()
        assert d.feed(data) == [] and d.last_reason == reason, (name, d.rejected)
        lines.append(f"frame {name} {data.hex()} {reason} -")
    for name, data, events in streams():
        assert stream_events(data) == events, (name, stream_events(data))
        lines.append(f"stream {name} {data.hex()} {events or '-'} -")
    return "\n".join(lines) + "\n"


def stream_events(data: bytes) -> str:
    """Events of the Python decoder fed one byte at a time (the C decoder's granularity)."""
    d = Decoder()
    ev = []
    for i in range(len(data)):
        before = dict(d.rejected)
        for f in d.feed(data[i : i + 1]):
            ev.append(f"ok:{f.msg_id}")
        ev += [r for r in d.rejected if d.rejected[r] != before[r]]
    return ",".join(ev)


def build_schema_header() -> str:
    lines = [
        "/* Generated by firmware_bridge/tools/gen_vectors.py from metabot/bridge/messages.py. */",
        "/* Schema hash = CRC-32C of the schema string; the frame CRC covers it. */",
        "#ifndef MB_SCHEMA_H",
        "#define MB_SCHEMA_H",
        "",
    ]
    for cls in MESSAGE_TYPES:
        spec = SPECS[int(cls.MSG_ID)]
        lines.append(f"/* {spec.schema} */")
        lines.append(f"#define MB_SCHEMA_HASH_{cls.MSG_ID.name} 0x{spec.schema_hash:08X}u")
    lines += ["", "#endif", ""]
    return "\n".join(lines)


def outputs() -> dict[Path, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gen_scenarios import SCENARIOS_PATH, build_scenarios

    return {
        SCHEMA_H: build_schema_header(),
        VECTORS: build_vectors(),
        SCENARIOS_PATH: build_scenarios(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if committed files are stale")
    args = ap.parse_args()
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale (run firmware_bridge/tools/gen_vectors.py):", *stale, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
