"""Fuzz both decoders (metabot.bridge and the C twin) with mutated frames, side by side.

    python firmware_bridge/fuzz/fuzz.py --frames 1000000 --json bench/fuzz.json

Each case is one stream chunk: [garbage?] + MUTATED(frame) + a fresh valid frame, or a
replayed (duplicate) or older (reordered) valid frame. Both decoders read the same single
stream (state carries across cases, as on a wire); the Python side is fed in random chunk
sizes to exercise the streaming boundaries. Checked per case:
- no corrupt frame is accepted: every accepted frame re-encodes to a frame that was sent
  intact (a CRC-32C collision or a parser bug would show up here),
- the trailing valid frame is always accepted as new (resynchronization after garbage),
- duplicates and reordered frames pass the CRC but are flagged by SequenceTracker,
- C and Python make exactly the same decisions (accepts, sequence verdicts, rejections).
No crash and no hang: the C harness runs under a timeout; exceptions abort the run.

It then drives both MCU state machines (metabot.bridge.mcu and mb_firmware.c) with random
host traffic (gen_scenarios.random_scenarios) and compares every reply byte and drive.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from cobs import cobs
from crc32c import crc32c

from metabot.bridge import MESSAGE_TYPES, REASONS, Decoder, SequenceTracker, encode

ROOT = Path(__file__).resolve().parents[1]
MUTATIONS = ("bitflip", "truncate", "insert", "substitute", "random", "delete", "raw_bitflip",
             "raw_burst")
_RANGES = {"u8": 0xFF, "u16": 0xFFFF, "u32": 0xFFFFFFFF, "u64": 0xFFFFFFFFFFFFFFFF}


def build_harness(build_dir: Path) -> Path:
    """Compile the C fuzz harness with gcc (no make needed)."""
    build_dir.mkdir(parents=True, exist_ok=True)
    exe = build_dir / "fuzz_harness"
    subprocess.run(
        ["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'include'}",
         f"-I{ROOT / 'src'}", "-o", str(exe), str(ROOT / "fuzz" / "fuzz_harness.c"),
         str(ROOT / "src" / "mb_codec.c")],
        check=True,
    )
    return exe


def message_pool(rng: random.Random, size: int = 256) -> list:
    """Random messages of every type, random field values and joint counts 0..8."""
    pool = []
    for i in range(size):
        cls = MESSAGE_TYPES[i % len(MESSAGE_TYPES)]
        vals = [
            rng.uniform(-10, 10) if t == "f32" else rng.randint(0, _RANGES[t])
            for _, t in cls.SCALARS
        ]
        n = rng.randint(0, 8)
        arrays = [np.float32(rng.uniform(-4, 4)) * np.ones(n, np.float32) +
                  np.arange(n, dtype=np.float32) for _ in cls.ARRAYS]
        pool.append(cls(*vals, *arrays))
    return pool


def mutate(rng: random.Random, frame: bytes) -> tuple[str, bytes]:
    kind = MUTATIONS[rng.randrange(len(MUTATIONS))]
    b = bytearray(frame)
    if kind.startswith("raw_"):  # damage under the COBS layer: header, payload and CRC checks
        raw = bytearray(cobs.decode(frame[1:-1]))
        if kind == "raw_bitflip":
            for _ in range(rng.randint(1, 3)):
                i = rng.randrange(len(raw))
                raw[i] ^= 1 << rng.randrange(8)
        else:  # a burst of up to 8 random bytes
            i = rng.randrange(len(raw))
            for j in range(i, min(len(raw), i + rng.randint(1, 8))):
                raw[j] = rng.getrandbits(8)
            if bytes(raw) == cobs.decode(frame[1:-1]):
                raw[i] ^= 0x01
        return kind, b"\x00" + cobs.encode(bytes(raw)) + b"\x00"
    if kind == "bitflip":
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        b = b[: rng.randrange(1, len(b))]
    elif kind == "insert":
        i = rng.randrange(1, len(b))
        b[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4)))
    elif kind == "substitute":
        i = rng.randrange(len(b))
        b[i] = (b[i] + rng.randint(1, 255)) & 0xFF
    elif kind == "delete":
        i = rng.randrange(len(b))
        del b[i : i + rng.randint(1, 3)]
    else:  # random bytes of random length, sometimes without any delimiter
        b = bytearray(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
    return kind, bytes(b)


def _line(accepted: list[str], rejected: Counter) -> str:
    rej = ",".join(f"{r}={rejected[r]}" for r in REASONS if rejected[r])
    return ",".join(accepted) + "|" + rej


def _cases(rng: random.Random, pool: list, frames: int, chunk: int):
    """Yield chunks of (kind, stream bytes, CRCs of intact frames sent, trailer CRC)."""
    seq = 0
    sent: list[bytes] = []
    out = []
    for _ in range(frames):
        r = rng.random()
        seq = (seq + 1) & 0xFFFF
        if r < 0.02 and sent:
            old = sent[-1]
            out.append(("duplicate", old, {crc32c(old)}, None))
        elif r < 0.04 and len(sent) > 3:
            old = sent[-rng.randint(2, 3)]
            out.append(("reordered", old, {crc32c(old)}, None))
        else:
            orig = encode(pool[rng.randrange(len(pool))], seq)
            kind, data = mutate(rng, orig)
            if rng.random() < 0.2:  # garbage before, without delimiters
                data = bytes(rng.getrandbits(8) | 1 for _ in range(rng.randint(1, 40))) + data
            seq = (seq + 1) & 0xFFFF
            trailer = encode(pool[rng.randrange(len(pool))], seq)
            sent = [*sent[-7:], trailer]
            tc = crc32c(trailer)
            out.append((kind, data + trailer, {crc32c(orig), tc}, tc))
        if len(out) == chunk:
            yield out
            out = []
    if out:
        yield out


def run_fuzz(frames: int, seed: int = 0, build_dir: Path | None = None,
             timeout_s: float = 3600.0) -> dict:
    rng = random.Random(seed)
    pool = message_pool(rng)
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_harness(Path(build_dir or tmp))
        proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        jobs: queue.Queue = queue.Queue(maxsize=4)

        def writer() -> None:
            try:
                while (blob := jobs.get()) is not None:
                    proc.stdin.write(blob)
                proc.stdin.close()
            except BrokenPipeError:
                pass

        th = threading.Thread(target=writer, daemon=True)
        th.start()
        t0 = time.perf_counter()
        dec, tracker = Decoder(), SequenceTracker()
        tags = {"new": "A", "duplicate": "D", "reordered": "R"}
        counts, flagged = Counter(), Counter()
        corrupt = resync_failures = mismatches = intact_accepted = n_bytes = i = 0
        first_mismatch = None
        for chunk in _cases(rng, pool, frames, 4096):
            blob = b"".join(struct.pack("<I", len(c[1])) + c[1] for c in chunk)
            jobs.put(blob + b"\xff\xff\xff\xff")  # + flush marker
            for kind, data, intact, trailer_crc in chunk:
                counts[kind] += 1
                n_bytes += len(data)
                before = dict(dec.rejected)
                got, pos = [], 0
                while pos < len(data):  # random chunking exercises streaming boundaries
                    step = rng.randint(1, 64)
                    got += dec.feed(data[pos : pos + step])
                    pos += step
                accepted = []
                for f in got:
                    c = crc32c(encode(f.msg, f.seq, compat_flags=f.compat_flags,
                                      incompat_flags=f.incompat_flags, version=f.version))
                    verdict = tracker.check(f.seq)
                    accepted.append(f"{tags[verdict]}:{c:08x}")
                    if c in intact:
                        intact_accepted += 1
                    else:
                        corrupt += 1
                    if verdict != "new":
                        flagged[verdict] += 1
                if trailer_crc is None:  # a replay: must be flagged, never acted on
                    ok = bool(accepted) and all(a[0] != "A" for a in accepted)
                else:  # resync: the valid frame after the damage is accepted as new
                    ok = bool(accepted) and accepted[-1] == f"A:{trailer_crc:08x}"
                resync_failures += not ok
                rejected = Counter({r: dec.rejected[r] - before[r] for r in REASONS})
                py_line = _line(accepted, rejected)
                c_line = proc.stdout.readline().decode().rstrip("\n")
                if c_line != py_line:
                    mismatches += 1
                    if first_mismatch is None:
                        first_mismatch = {"case": i, "python": py_line, "c": c_line,
                                          "hex": data.hex()}
                i += 1
        jobs.put(None)
        th.join()
        try:
            rc = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "timeout"
        elapsed = time.perf_counter() - t0
    return {
        "frames": frames,
        "seed": seed,
        "cases_by_kind": dict(sorted(counts.items())),
        "mutated_frames": sum(counts[m] for m in MUTATIONS),
        "stream_bytes": n_bytes,
        "corrupt_accepted": corrupt,
        "intact_accepted": intact_accepted,
        "resync_failures": resync_failures,
        "duplicates_flagged": flagged["duplicate"],
        "reordered_flagged": flagged["reordered"],
        "rejected_by_reason": {r: dec.rejected[r] for r in REASONS},
        "python_c_mismatches": mismatches,
        "first_mismatch": first_mismatch,
        "c_harness_exit": rc,
        "elapsed_s": round(elapsed, 2),
    }


def run_mcu_fuzz(n_scenarios: int, steps: int, seed: int = 0,
                 build_dir: Path | None = None) -> dict:
    """Random host traffic through metabot.bridge.mcu and the C firmware: same bytes out?"""
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from gen_scenarios import random_scenarios
    finally:
        sys.path.remove(str(ROOT / "tools"))
    t0 = time.perf_counter()
    text = random_scenarios(n_scenarios, steps, seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(build_dir or tmp)
        out.mkdir(parents=True, exist_ok=True)
        exe = out / "test_scenarios"
        subprocess.run(
            ["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'include'}",
             f"-I{ROOT / 'src'}", "-o", str(exe), str(ROOT / "tests" / "test_scenarios.c"),
             str(ROOT / "src" / "mb_codec.c"), str(ROOT / "src" / "mb_firmware.c")],
            check=True,
        )
        path = out / "random_scenarios.txt"
        path.write_text(text)
        r = subprocess.run([str(exe), str(path)], capture_output=True, text=True, timeout=600)
    m = re.search(r"scenarios: (\d+) scenarios, (\d+) steps, (\d+) failures", r.stdout)
    return {
        "scenarios": n_scenarios,
        "steps": int(m.group(2)) if m else None,
        "seed": seed,
        "python_c_disagreements": int(m.group(3)) if m else None,
        "first_disagreement": r.stdout.split("\n", 3)[:3] if r.returncode else None,
        "exit": r.returncode,
        "elapsed_s": round(time.perf_counter() - t0, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mcu-scenarios", type=int, default=200,
                    help="random MCU scenarios (each --mcu-steps host steps); 0 to skip")
    ap.add_argument("--mcu-steps", type=int, default=1000)
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    args = ap.parse_args()
    res = run_fuzz(args.frames, args.seed)
    res["command"] = (
        f"python firmware_bridge/fuzz/fuzz.py --frames {args.frames} --seed {args.seed} "
        f"--mcu-scenarios {args.mcu_scenarios} --mcu-steps {args.mcu_steps}"
    )
    res["ok"] = (res["corrupt_accepted"] == 0 and res["resync_failures"] == 0
                 and res["python_c_mismatches"] == 0 and res["c_harness_exit"] == 0)
    if args.mcu_scenarios:
        mcu = run_mcu_fuzz(args.mcu_scenarios, args.mcu_steps, args.seed)
        res["mcu_state_machine"] = mcu
        res["ok"] = res["ok"] and mcu["python_c_disagreements"] == 0 and mcu["exit"] == 0
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, args.json)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
