"""Throughput of the Python bridge codec on the 6-joint STATE + COMMAND exchange.

The issue's target: at least 10x what a 1 Mbaud 8N1 link carries (100,000 bytes/s), so the
codec is never the link's bottleneck. `metabot bench link --codec --json OUT` calls this.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from metabot.bridge import Command, Decoder, State, encode

WIRE_BYTES_PER_S = 100_000  # 1 Mbaud, 8N1: 10 bits per byte
N_JOINTS = 6


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def run_codec_bench(seconds: float = 2.0, seed: int = 0) -> dict:
    """Encode + decode STATE and COMMAND frames for `seconds`; return bytes/s and details.

    Each exchange encodes a fresh STATE (MCU side) and COMMAND (host side) from float32
    arrays and decodes both through streaming Decoders, as the link does per control step.
    """
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-1, 1, (64, N_JOINTS)).astype(np.float32)
    host_rx, mcu_rx = Decoder(), Decoder()
    exchanges = wire_bytes = 0
    frame_sizes = None
    deadline = time.perf_counter() + seconds
    t0, c0 = time.perf_counter(), time.process_time()
    while True:
        for k in range(256):
            p = pos[k & 63]
            seq = exchanges & 0xFFFF
            s = encode(State(0xC0FFEE01, exchanges * 1000, exchanges, 0x103, 0, p, p, p), seq)
            c = encode(Command(0xC0FFEE01, exchanges + 1, 20_000, 1, p), seq)
            fs, fc = host_rx.feed(s), mcu_rx.feed(c)
            if len(fs) != 1 or len(fc) != 1:
                raise RuntimeError("codec bench: a frame failed to round-trip")
            wire_bytes += len(s) + len(c)
            exchanges += 1
            frame_sizes = (len(s), len(c))
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - t0
    cpu = max(time.process_time() - c0, 1e-9)
    codec = wire_bytes / elapsed
    return {
        "codec_bytes_per_s": round(codec),
        "wire_bytes_per_s": WIRE_BYTES_PER_S,
        "ratio_to_wire": round(codec / WIRE_BYTES_PER_S, 2),
        "target_ratio": 10,
        "meets_target": codec >= 10 * WIRE_BYTES_PER_S,
        # Per CPU-second of this process: what the codec costs, independent of how many
        # other processes share the cores (wall-clock numbers swing with machine load).
        "codec_bytes_per_cpu_s": round(wire_bytes / cpu),
        "cpu_fraction": round(cpu / elapsed, 2),
        "load_avg_1min": _loadavg(),
        "exchanges_per_s": round(exchanges / elapsed),
        "exchange_wire_bytes": sum(frame_sizes),
        "state_frame_bytes": frame_sizes[0],
        "command_frame_bytes": frame_sizes[1],
        "n_joints": N_JOINTS,
        "seconds": round(elapsed, 3),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
