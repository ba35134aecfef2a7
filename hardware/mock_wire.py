"""One direction of the mock robot's serial wire: baud-rate throttling, latency, faults.

A pty or a local socket moves bytes instantly; a 1 Mbaud UART behind a USB adapter does
not. Each chunk entering the wire is held until the line could have carried it (10 bits
per byte, 8N1), plus a transport latency (USB frames, adapter buffers) drawn per chunk
around a hidden mean with jitter, never reordering bytes. Faults act on the bytes in
flight: drop or corrupt single bytes, stall the line, or cut it entirely (disconnect).
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class WireFaults:
    """Fault injection, per direction. Probabilities are per byte (drop, corrupt) or per chunk."""

    drop: float = 0.0
    corrupt: float = 0.0
    delay_prob: float = 0.0
    delay_ms: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def any(self) -> bool:
        return bool(self.drop or self.corrupt or self.delay_prob)


class WireDirection:
    def __init__(self, baud: int, rng: np.random.Generator, *, latency_mean_s: float = 0.001,
                 latency_jitter_s: float = 0.0003, latency_range_s=(0.0005, 0.002),
                 faults: WireFaults | None = None):
        self.byte_time = 10.0 / baud
        self.rng = rng
        self.latency_mean_s = latency_mean_s
        self.latency_jitter_s = latency_jitter_s
        self.latency_range_s = latency_range_s
        self.faults = faults or WireFaults()
        self.free_at = 0.0  # when the line has carried every byte given to it so far
        self.last_delivery = 0.0
        self.down_until = 0.0  # disconnected: bytes are lost
        self.queue: deque[tuple[float, bytes]] = deque()
        self.bytes_in = self.bytes_dropped = self.bytes_corrupted = 0

    def busy(self, now: float) -> bool:
        """True while the UART is still shifting out earlier bytes (no new frame fits)."""
        return self.free_at > now

    def push(self, data: bytes, now: float) -> None:
        if not data:
            return
        self.bytes_in += len(data)
        if now < self.down_until:
            self.bytes_dropped += len(data)
            return
        data = self._apply_faults(data)
        done = max(now, self.free_at) + len(data) * self.byte_time
        self.free_at = done
        if self.latency_mean_s > 0:
            lat = self.latency_mean_s + self.latency_jitter_s * self.rng.standard_normal()
            lat = min(max(lat, self.latency_range_s[0]), self.latency_range_s[1])
        else:
            lat = 0.0
        deliver = max(done + lat, self.last_delivery)
        f = self.faults
        if f.delay_prob and self.rng.random() < f.delay_prob:
            deliver += f.delay_ms * 1e-3
        self.last_delivery = deliver
        if data:
            self.queue.append((deliver, data))

    def _apply_faults(self, data: bytes) -> bytes:
        f = self.faults
        if not (f.drop or f.corrupt):
            return data
        arr = np.frombuffer(data, np.uint8).copy()
        if f.corrupt:
            hit = self.rng.random(arr.size) < f.corrupt
            if hit.any():
                bits = self.rng.integers(0, 8, int(hit.sum()))
                arr[hit] ^= (1 << bits).astype(np.uint8)
                self.bytes_corrupted += int(hit.sum())
        if f.drop:
            keep = self.rng.random(arr.size) >= f.drop
            self.bytes_dropped += int(arr.size - keep.sum())
            arr = arr[keep]
        return arr.tobytes()

    def pop_due(self, now: float) -> bytes:
        out = []
        q = self.queue
        while q and q[0][0] <= now:
            out.append(q.popleft()[1])
        return b"".join(out)

    def next_due(self) -> float | None:
        return self.queue[0][0] if self.queue else None

    def cut(self, now: float, seconds: float) -> None:
        """Disconnect for `seconds`: bytes in flight and bytes sent meanwhile are lost."""
        self.down_until = now + seconds
        self.bytes_dropped += sum(len(b) for _, b in self.queue)
        self.queue.clear()
        self.free_at = min(self.free_at, now)
