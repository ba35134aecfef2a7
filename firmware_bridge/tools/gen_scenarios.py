"""MCU state-machine scenarios, run by metabot.bridge.mcu and by the C reference firmware.

scenarios.txt, one line per item, space separated:
    scenario NAME N_JOINTS SESSION_ID POSITIONS   (POSITIONS: N float32 bit patterns, comma
                                                   separated; what servo_read reports)
    rx    T_US HEX   TX DRIVE   host bytes arrive at T_US
    tick  T_US -     TX DRIVE   time passes (watchdog, command TTL)
    state T_US -     TX DRIVE   the MCU sends its STATE (velocities and efforts are zero)
TX is the exact MCU output for the step (hex, '-' for none); DRIVE is
KIND:MODE:STATUS:TARGETS:EFFORT_LIMITS with STATUS in hex and arrays as float32 bits.
Every scenario uses the firmware limits below (also in firmware_bridge/tests/test_scenarios.c).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from metabot.bridge import (
    Command,
    Estop,
    Heartbeat,
    Hello,
    SetConfig,
    State,
    Torque,
    encode,
)
from metabot.bridge.mcu import FirmwareInfo, McuEndpoint

SCENARIOS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "scenarios.txt"

POS_LIMIT, VEL_LIMIT, EFFORT_LIMIT = 2.0, 3.0, 4.0
FIRMWARE_ID, NAMES_DIGEST = 0x4D420001, 0x1234ABCD


def firmware_info(n: int, control_modes: int = 0x0E) -> FirmwareInfo:
    return FirmwareInfo(
        n, np.full(n, -POS_LIMIT), np.full(n, POS_LIMIT), np.full(n, VEL_LIMIT),
        np.full(n, EFFORT_LIMIT), control_modes, FIRMWARE_ID, NAMES_DIGEST,
    )


def _bits(a) -> str:
    a = np.asarray(a, np.float32).reshape(-1)
    return ",".join(f"{struct.unpack('<I', x.tobytes())[0]:08x}" for x in a) or "-"


class Recorder:
    """Drives a McuEndpoint like the C scenario runner does and records each step."""

    def __init__(self, name: str, n: int = 6, session: int = 0xC0FFEE01):
        self.n, self.session = n, session
        self.positions = (np.arange(1, n + 1, dtype=np.float32) * np.float32(0.1)).astype(
            np.float32
        )
        self.mcu = McuEndpoint(firmware_info(n), session)
        self.host_seq = 0
        self.lines = [f"scenario {name} {n} {session} {_bits(self.positions)}"]

    def _drive(self) -> str:
        p = self.mcu.protocol
        d = p.drive
        return f"{int(d.kind)}:{d.mode}:{p.status:x}:{_bits(d.targets)}:{_bits(d.effort_limit)}"

    def raw(self, t: int, data: bytes) -> Recorder:
        out = self.mcu.receive(data, t, self.positions)
        self.lines.append(f"rx {t} {data.hex()} {out.hex() or '-'} {self._drive()}")
        return self

    def send(self, t: int, msg, seq: int | None = None, **kw) -> Recorder:
        if seq is None:
            self.host_seq += 1
            seq = self.host_seq
        return self.raw(t, encode(msg, seq, **kw))

    def tick(self, t: int) -> Recorder:
        out = self.mcu.tick(t, self.positions)
        self.lines.append(f"tick {t} - {out.hex() or '-'} {self._drive()}")
        return self

    def state(self, t: int) -> Recorder:
        z = np.zeros(self.n, np.float32)
        out = self.mcu.state_frame(t, self.positions, z, z)
        self.lines.append(f"state {t} - {out.hex()} {self._drive()}")
        return self

    def handshake(self, t: int = 1000, enable: bool = True) -> Recorder:
        self.send(t, Hello(1, 0xABCD))
        if enable:
            self.send(t + 10, Torque(self.session, 1))
        return self


def build_scenarios() -> str:
    S = 0xC0FFEE01
    six = np.array([0.5, -0.5, 1.0, -1.0, 1.5, -1.5], np.float32)
    far = np.array([5.0, -5.0, 0.0, 2.0, -2.0, 1.9], np.float32)
    cmd = lambda seq, mode=1, tgt=six, ttl=100_000, s=S: Command(s, seq, ttl, mode, tgt)  # noqa: E731
    out: list[str] = []

    r = Recorder("no_command_before_handshake")
    r.state(0).send(10, cmd(1)).send(20, Torque(S, 1)).send(30, Heartbeat(S, 0))
    r.send(40, SetConfig(S, 100, 0, 0.3)).tick(1_000_000).state(1_000_001)
    out += r.lines

    r = Recorder("handshake_enable_track")
    r.handshake().send(2000, cmd(1)).state(2100).send(3000, cmd(2, 2, six * 10)).state(3100)
    r.send(4000, cmd(3, 3, six)).tick(4500).state(4600)
    out += r.lines

    r = Recorder("version_mismatch")
    r.send(100, Hello(2, 77)).send(200, Torque(S, 1)).send(300, cmd(1)).state(400)
    r.send(500, Hello(2, 78), version=2).send(600, Hello(1, 79)).send(700, Torque(S, 1))
    r.send(800, cmd(1)).state(900)
    out += r.lines

    r = Recorder("session_and_unsupported")
    r.handshake().send(2000, cmd(1, s=S + 1)).send(2100, Torque(S ^ 0xFFFF, 1))
    r.send(2200, State(S, 0, 0, 0, 0, six, six, six)).send(2300, cmd(1)).state(2400)
    out += r.lines

    r = Recorder("duplicate_and_reordered")
    r.handshake()
    c5 = encode(cmd(5), 50)
    c6 = encode(cmd(6, tgt=-six), 51)
    r.raw(2000, c5).raw(2010, c5).raw(2020, c6).raw(2030, c5).raw(2040, c6 + c6)
    r.send(2050, cmd(6), seq=52).send(2060, cmd(4), seq=53).send(2070, cmd(7), seq=54)
    r.send(2080, cmd(8), seq=54 + 40000).state(2090)
    out += r.lines

    r = Recorder("estop_latches")
    r.send(10, Estop(1)).state(20).handshake(100).send(200, cmd(1)).state(210)
    r.send(300, Estop(0), seq=0).state(310).send(400, cmd(2)).send(500, Torque(S, 2))
    r.send(600, Heartbeat(S, 600)).send(700, Torque(S, 1)).state(710).send(800, cmd(3)).state(810)
    out += r.lines

    r = Recorder("watchdog_hold_then_reenable")
    r.handshake().send(1100, SetConfig(S, 50, 0, 0.25)).send(2000, cmd(1))
    r.tick(40_000).tick(52_010).tick(52_011).state(52_100).tick(70_000)
    r.send(80_000, cmd(2)).send(81_000, Heartbeat(S, 1)).send(82_000, cmd(3))
    r.send(83_000, Torque(S, 1)).send(84_000, cmd(4)).state(84_100)
    out += r.lines

    r = Recorder("watchdog_torque_off")
    r.handshake().send(1100, SetConfig(S, 20, 1, 0.5)).send(1200, cmd(1)).tick(21_199)
    r.tick(21_201).state(21_300).send(30_000, cmd(2))
    out += r.lines

    r = Recorder("watchdog_fed_by_heartbeats")
    r.handshake().send(1100, SetConfig(S, 20, 0, 0.3))
    for k in range(1, 6):
        r.send(1100 + k * 15_000, Heartbeat(S, k)).tick(1100 + k * 15_000 + 14_000)
    r.tick(1100 + 5 * 15_000 + 20_001).state(200_000)
    out += r.lines

    r = Recorder("set_config_validation")
    lim = np.full(6, 1.0, np.float32)
    ok = (-lim, lim, np.full(6, 2.0, np.float32), np.full(6, 3.0, np.float32),
          np.full(6, 10.0, np.float32), np.full(6, 0.1, np.float32))
    r.handshake()
    r.send(1100, SetConfig(S, 19, 0, 0.3)).send(1200, SetConfig(S, 2501, 0, 0.3))
    r.send(1300, SetConfig(S, 100, 2, 0.3)).send(1400, SetConfig(S, 100, 0, 1.5))
    r.send(1500, SetConfig(S, 100, 0, math.nan))
    r.send(1600, SetConfig(S, 100, 0, 0.3, *(a[:5] for a in ok)))
    r.send(1700, SetConfig(S, 100, 0, 0.3, -lim * 3, *ok[1:]))
    r.send(1800, SetConfig(S, 100, 0, 0.3, lim, -lim, *ok[2:]))
    r.send(1900, SetConfig(S, 100, 0, 0.3, *ok[:2], np.zeros(6, np.float32), *ok[3:]))
    r.send(2000, SetConfig(S, 100, 0, 0.3, *ok[:3], ok[3] * 2, *ok[4:]))
    r.send(2100, SetConfig(S, 100, 0, 0.3, *ok[:4], -ok[4], ok[5]))
    r.send(2200, SetConfig(S, 2500, 0, 0.3, *ok)).send(2300, cmd(1, 1, far))
    r.send(2400, cmd(2, 2, far)).send(2500, cmd(3, 3, far)).state(2600)
    out += r.lines

    r = Recorder("command_validation")
    bad = six.copy()
    bad[2] = np.nan
    r.handshake().send(2000, cmd(1, 0)).send(2100, cmd(1, 4)).send(2200, cmd(1, tgt=six[:5]))
    r.send(2300, cmd(1, ttl=0)).send(2400, cmd(1, ttl=2_500_001)).send(2500, cmd(1, tgt=bad))
    inf = six.copy()
    inf[0] = np.inf
    r.send(2600, cmd(1, tgt=inf)).send(2700, cmd(1, ttl=2_500_000)).send(2800, cmd(1))
    r.send(2900, cmd(0xFFFFFFFF, 1, far)).state(3000).send(3100, cmd(5)).state(3200)
    out += r.lines

    r = Recorder("ttl_expiry")
    r.handshake().send(2000, cmd(1, ttl=10_000)).tick(11_999).tick(12_000).state(12_100)
    r.send(13_000, cmd(2, ttl=1)).tick(13_000).tick(13_001).state(13_100)
    out += r.lines

    r = Recorder("hello_while_tracking_disarms")
    r.handshake().send(2000, cmd(1)).send(3000, Hello(1, 5)).state(3100).send(3200, cmd(2))
    r.send(3300, Torque(S, 1)).send(3400, cmd(3)).send(3500, Torque(S, 0)).state(3600)
    r.send(3700, cmd(4)).send(3800, Torque(S, 2)).state(3900).send(4000, Torque(S, 9))
    out += r.lines

    r = Recorder("garbage_and_split_frames", n=3, session=7)
    good = encode(Hello(1, 1), 1)
    r.raw(10, b"\xde\xad\xbe\xef").raw(20, good[:5]).raw(30, good[5:])
    r.raw(40, encode(Torque(7, 1), 2)[:-3] + b"\x00" + encode(Torque(7, 1), 3))
    r.state(50)
    out += r.lines

    r = Recorder("reboot_new_session", session=0x0BADF00D)
    r.send(10, Torque(S, 1)).send(20, cmd(9)).handshake(30).send(100, cmd(1, s=0x0BADF00D))
    r.state(200)
    out += r.lines

    header = "# MCU scenarios (generated by firmware_bridge/tools/gen_scenarios.py, format there)"
    return "\n".join([header, *out]) + "\n"


def random_scenarios(n_scenarios: int, steps: int, seed: int = 0) -> str:
    """Randomized host traffic (valid and invalid values, replays, silences) for fuzzing the
    two state machines against each other; same file format as scenarios.txt."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    for k in range(n_scenarios):
        n = int(rng.integers(1, 9))
        session = int(rng.integers(1, 2**32))
        r = Recorder(f"random_{seed}_{k}", n=n, session=session)
        t, cmd_seq = 0, 0

        def arr(scale: float, n: int = n) -> np.ndarray:
            a = rng.uniform(-scale, scale, n).astype(np.float32)
            if rng.random() < 0.05:
                a[rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
            return a

        for _ in range(steps):
            t += int(rng.choice([0, 100, 1000, 5000, 30_000, 150_000]))
            sid = session if rng.random() > 0.05 else int(rng.integers(1, 2**32))
            u = rng.random()
            if u < 0.15:
                r.tick(t)
                continue
            if u < 0.25:
                r.state(t)
                continue
            kind = rng.choice(["hello", "torque", "command", "command", "command", "config",
                               "heartbeat", "estop"],
                              p=[0.08, 0.14, 0.3, 0.15, 0.1, 0.1, 0.1, 0.03])
            if kind == "hello":
                msg = Hello(1 if rng.random() > 0.2 else 2, int(rng.integers(2**32)))
            elif kind == "torque":
                msg = Torque(sid, int(rng.choice([0, 1, 1, 1, 2, 3])))
            elif kind == "command":
                cmd_seq += int(rng.choice([1, 1, 1, 0, -1]))
                m = len(r.positions) if rng.random() > 0.05 else max(0, n - 1)
                tgt = arr(3.0)[:m]
                msg = Command(sid, max(cmd_seq, 0), int(rng.choice([0, 1, 5000, 50_000,
                                                                   2_500_000, 2_500_001])),
                              int(rng.choice([1, 1, 2, 3, 0, 4])), tgt)
            elif kind == "config":
                full = rng.random() < 0.5
                lims = ()
                if full:
                    lo = -rng.uniform(0.1, 2.2, n).astype(np.float32)
                    hi = rng.uniform(0.1, 2.2, n).astype(np.float32)
                    lims = (lo, hi, rng.uniform(-0.5, 3.5, n).astype(np.float32),
                            rng.uniform(-0.5, 4.5, n).astype(np.float32), arr(10), arr(1))
                msg = SetConfig(sid, int(rng.choice([10, 20, 50, 100, 2500, 3000])),
                                int(rng.choice([0, 0, 1, 2])),
                                float(rng.choice([0.0, 0.3, 1.0, 1.5, np.nan])), *lims)
            elif kind == "heartbeat":
                msg = Heartbeat(sid, t)
            else:
                msg = Estop(int(rng.integers(256)))
            v = rng.random()
            if v < 0.05 and r.host_seq > 0:  # replay of an old or equal sequence number
                r.send(t, msg, seq=r.host_seq - int(rng.integers(0, 3)))
            else:
                r.send(t, msg, version=2 if (kind == "hello" and msg.protocol_version == 2
                                             and rng.random() < 0.5) else 1)
        out += r.lines
    return "# random MCU scenarios (gen_scenarios.random_scenarios)\n" + "\n".join(out) + "\n"
