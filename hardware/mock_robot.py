"""The mock robot: an emulated MCU (the bridge's own protocol state machine) on a MuJoCo arm.

This is the one place where the task library and the wire protocol meet. `MockRobot` runs
in real time on its own thread:
  - the arm is a held-out `arm6-reach` task (seeded; its parameters are hidden from the host)
    driven by the firmware servo loop of `mock_arm` at 1 kHz;
  - host bytes go through `metabot.bridge.mcu.McuEndpoint`, so what it accepts, refuses, its
    watchdog and its limit checks are the reference firmware's rules;
  - both wire directions are throttled to the configured baud rate, delayed 0.5-2 ms with
    jitter, and can drop, corrupt or stall bytes, disconnect and reconnect, or reboot;
  - STATE streams every servo period whenever the UART is free (about 930 Hz at 1 Mbaud);
  - resets are physical: the arm is only ever driven, never teleported.
Transports: a pty (`PtyTransport`), a 127.0.0.1 TCP port (`TcpTransport`), or in-process
through pyserial's `mock://` URL (protocol_mock.py). A test-only side channel (`control()`,
served on 127.0.0.1 by `ControlServer`) reveals the hidden parameters, reports the mock's
own view (holding / torque-off / moving), changes the payload and injects faults; it is never
reachable through the robot protocol.
Imports mujoco (through mock_arm); nothing outside the mock imports this at module level.
"""

from __future__ import annotations

import json
import os
import select
import socket
import socketserver
import termios
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

import numpy as np

from metabot.bridge.mcu import DriveKind, FirmwareInfo, McuEndpoint
from metabot.bridge.messages import names_digest
from metabot.errors import ConfigError, LinkError

from .mock_arm import Effects, MockArm, servo_params_from_model
from .mock_wire import WireDirection, WireFaults

SERVO_DT = 0.001  # the firmware servo loop and physics step, 1 kHz
VEL_MAX = 5.0  # rad/s: STS3215-class no-load speed at 12 V (0.222 s / 60 deg = 4.7 rad/s)
BOOT_S = 0.05  # an MCU reboot is silent this long


def mock_rngs(seed: int, task_index: int) -> list[np.random.Generator]:
    """The mock's own random streams (effects, wire up, wire down, arm, sessions): everything
    the mock draws itself hangs off the same seed, independent of the task draw."""
    ss = np.random.SeedSequence([seed, task_index, 0x6D6F636B])
    return [np.random.default_rng(s) for s in ss.spawn(5)]


def build_mock_arm(dist, task, rng_fx: np.random.Generator,
                   rng_arm: np.random.Generator) -> MockArm:
    """The physical arm of a mock robot: the task's hidden dynamics in a MuJoCo model, driven
    by the firmware servo loop, plus the unmodeled effects drawn from `rng_fx`."""
    model = dist.build_model(task)
    servo = servo_params_from_model(model)
    servo.deadband = np.full(model.nu, float(task.param("backlash")[0]))
    # The task's delay (whole control steps, plus the sub-step command delay where the
    # distribution has one) acts in the servo; the serial link's own delays come on top.
    servo.delay_s = float(task.param("latency")[0]) * float(dist.dt) + sum(
        task.value(p.name) for p in dist.spec.params if p.target == "command_delay")
    servo.obs_noise = float(task.param("obs_noise")[0])
    effects = Effects.draw(model.nu, rng_fx)
    return MockArm(model, servo, effects, rng_arm, dt=SERVO_DT, home=np.asarray(dist.arm.home))


class MockRobot:
    """Emulated MCU + arm. `start()`, then feed host bytes with `from_host`; see module doc."""

    def __init__(self, *, task: str = "arm6-reach", split: str = "test", seed: int = 0,
                 task_index: int = 0, baud: int = 1_000_000, state_rate_hz: float = 1000.0,
                 latency: bool = True, faults: WireFaults | None = None, boot: str = "hold",
                 disconnect_every: float | None = None, disconnect_for: float = 0.5,
                 reboot_every: float | None = None):
        from metabot import tasks  # the sim side: only the mock needs it

        if boot not in ("hold", "torque_off"):
            raise ConfigError(f"boot must be 'hold' or 'torque_off', got {boot!r}")
        if baud <= 0 or state_rate_hz <= 0:
            raise ConfigError("baud and state rate must be positive")
        self.dist = tasks.get(task)
        if not hasattr(self.dist, "build_model"):
            raise ConfigError(f"task {task!r} is not an arm; the mock robot needs an arm task")
        if task_index < 0:
            raise ConfigError(f"task index must be >= 0, got {task_index}")
        self.task = self.dist.sample(task_index + 1, split=split, seed=seed)[task_index]
        self.task_args = {"task": task, "split": split, "seed": seed, "task_index": task_index}
        desc = self.dist.arm
        self.joint_names = tuple(desc.joints)
        rng_fx, rng_wire_up, rng_wire_down, rng_arm, rng_session = mock_rngs(seed, task_index)
        self.arm = build_mock_arm(self.dist, self.task, rng_fx, rng_arm)
        self.effects = self.arm.effects
        servo = self.arm.servo
        n = self.arm.n
        self.info = FirmwareInfo(
            n_joints=n, pos_min=np.asarray(desc.lower), pos_max=np.asarray(desc.upper),
            vel_max=np.full(n, VEL_MAX), effort_max=servo.tau_max.copy(),
            names_digest=names_digest(self.joint_names))
        self.baud = int(baud)
        self.state_period = 1.0 / state_rate_hz
        self.latency_means = ((float(rng_fx.uniform(0.0007, 0.0015)),
                               float(rng_fx.uniform(0.0007, 0.0015))) if latency else (0.0, 0.0))
        f = faults or WireFaults()
        self.to_mcu = WireDirection(self.baud, rng_wire_up, faults=WireFaults(**f.to_dict()),
                                    latency_mean_s=self.latency_means[0])
        self.to_host = WireDirection(self.baud, rng_wire_down, faults=WireFaults(**f.to_dict()),
                                     latency_mean_s=self.latency_means[1])
        self._rng_session = rng_session
        self._rng_garble = np.random.default_rng(seed + 7)
        self.boot_mode = boot
        self.disconnect_every = disconnect_every
        self.disconnect_for = disconnect_for
        self.reboot_every = reboot_every
        self.boots = 0
        self.host_baud: int | None = None  # set by a transport that can see the host's UART
        self._sink: Callable[[bytes], None] | None = None
        self._on_disconnect: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._pending: list[Callable[[], None]] = []
        self._thread: threading.Thread | None = None
        self._running = False
        self.t_start = time.monotonic()
        self.overruns = 0
        self.states_sent = 0
        self._boot(first=True)

    # ---- MCU lifecycle -------------------------------------------------------------------
    def _new_session(self) -> int:
        old = getattr(self, "endpoint", None)
        while True:
            sid = int(self._rng_session.integers(1, 2**32))
            if old is None or sid != old.protocol.session_id:
                return sid

    def _boot(self, first: bool = False) -> None:
        self.endpoint = McuEndpoint(self.info, self._new_session())
        self.boots += 1
        self.t_boot = time.monotonic()
        self.silent_until = 0.0 if first else self.t_boot + BOOT_S
        if self.boot_mode == "hold":  # the servos keep holding where they are, limited torque
            p = self.endpoint.protocol
            p._hold(self.arm.q_meas.astype(np.float32),
                    p.config.effort_max * p.config.hold_effort_frac)

    def _now_us(self, t: float) -> int:
        return int((t - self.t_boot) * 1e6)

    # ---- transport side ------------------------------------------------------------------
    def attach(self, sink: Callable[[bytes], None] | None,
               on_disconnect: Callable[[], None] | None = None) -> None:
        self._sink = sink
        self._on_disconnect = on_disconnect

    def from_host(self, data: bytes) -> None:
        """Bytes the host wrote, now entering the wire (thread-safe)."""
        if self.host_baud is not None and self.host_baud != self.baud:
            data = self._garble(data)
        with self._lock:
            self.to_mcu.push(data, time.monotonic())
        self._wake.set()

    def _garble(self, data: bytes) -> bytes:
        """A UART at the wrong baud rate samples noise: about the same count of wrong bytes."""
        return self._rng_garble.integers(1, 256, len(data), dtype=np.uint8).tobytes()

    # ---- run -----------------------------------------------------------------------------
    def start(self) -> MockRobot:
        if self._thread is None:
            self._running = True
            self._thread = threading.Thread(target=self._run, name="mock-robot", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._running = False
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> MockRobot:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _emit(self, data: bytes, now: float) -> None:
        if data:
            self.to_host.push(data, now)

    def _run(self) -> None:
        next_phys = time.monotonic()
        next_state = next_phys
        next_disc = (next_phys + self.disconnect_every) if self.disconnect_every else None
        next_reboot = (next_phys + self.reboot_every) if self.reboot_every else None
        ep = self.endpoint
        while self._running:
            now = time.monotonic()
            with self._lock:
                pending, self._pending = self._pending, []
                inbound = self.to_mcu.pop_due(now)
            for fn in pending:
                fn()
            if next_disc is not None and now >= next_disc:
                self._disconnect(now, self.disconnect_for)
                next_disc = now + self.disconnect_every
            if next_reboot is not None and now >= next_reboot:
                self._boot()
                next_reboot = now + self.reboot_every
            ep = self.endpoint
            silent = now < self.silent_until
            if inbound and not silent:
                self._emit(ep.receive(inbound, self._now_us(now), self.arm.q_meas), now)
            # Servo loop and physics on a 1 kHz grid, catching up at most 20 ms.
            steps = 0
            while next_phys <= now and steps < 20:
                if not silent:
                    self._emit(ep.tick(self._now_us(next_phys), self.arm.q_meas), now)
                d = ep.protocol.drive
                self.arm.step(int(d.kind), d.mode, d.targets, d.effort_limit)
                next_phys += SERVO_DT
                steps += 1
            if next_phys <= now - 0.02:
                self.overruns += 1
                next_phys = now + SERVO_DT
            if not silent and now >= next_state and not self.to_host.busy(now):
                q, qd, tau = self.arm.measured()
                self._emit(ep.state_frame(self._now_us(now), q, qd, tau), now)
                self.states_sent += 1
                next_state += self.state_period
                if next_state < now:
                    next_state = now + self.state_period
            out = self.to_host.pop_due(now)
            if out and self.host_baud is not None and self.host_baud != self.baud:
                out = self._garble(out)  # at delivery: the host's UART samples at its rate
            if out and self._sink is not None:
                try:
                    self._sink(out)
                except Exception:  # noqa: BLE001 - a vanished reader is a cut cable
                    pass
            cands = [next_phys, next_state if now < next_state else
                     max(self.to_host.free_at, now + 0.0001)]
            for q_ in (self.to_host, self.to_mcu):
                due = q_.next_due()
                if due is not None:
                    cands.append(due)
            delay = min(cands) - time.monotonic()
            if delay > 0:
                self._wake.wait(delay)
                self._wake.clear()

    # ---- faults and side channel --------------------------------------------------------
    def _disconnect(self, now: float, seconds: float) -> None:
        with self._lock:
            self.to_mcu.cut(now, seconds)
            self.to_host.cut(now, seconds)
        if self._on_disconnect is not None:
            self._on_disconnect()

    def _call(self, fn: Callable[[], object]) -> None:
        """Run fn on the mock thread (physics and MCU state are single-threaded)."""
        if self._thread is None:
            fn()
            return
        done = threading.Event()

        def wrapped():
            fn()
            done.set()

        with self._lock:
            self._pending.append(wrapped)
        self._wake.set()
        if not done.wait(2.0):
            raise LinkError("mock robot thread did not respond")

    def hidden_params(self) -> dict:
        """The held-out task and the mock's own effects: for evaluators (oracle), never the host."""
        s = self.arm.servo
        return {
            **self.task_args,
            "task_params": self.task.to_dict(),
            "oracle_features": np.asarray(self.dist.oracle_features(self.task)).tolist(),
            "servo": {"kp": s.kp.tolist(), "kd": s.kd.tolist(), "tau_max": s.tau_max.tolist(),
                      "deadband": s.deadband.tolist(), "delay_s": s.delay_s,
                      "obs_noise": s.obs_noise},
            "effects": self.effects.to_dict(),
            "latency_mean_s": {"to_mcu": self.latency_means[0],
                               "to_host": self.latency_means[1]},
            "payload_kg": self.arm.payload,
            "baud": self.baud,
        }

    def status(self) -> dict:
        """The mock's own view: what the servos are doing, independent of what the host thinks."""
        p = self.endpoint.protocol
        kind = p.drive.kind
        view = {DriveKind.OFF: "torque_off", DriveKind.HOLD: "holding",
                DriveKind.TRACK: "moving"}[DriveKind(kind)]
        speed, self.arm.max_speed = self.arm.max_speed, 0.0
        return {
            "state": view, "mode": int(p.drive.mode), "handshaked": p.handshaked,
            "armed": p.armed, "estopped": p.estopped, "watchdog_tripped": p.wd_tripped,
            "fault": int(p.fault), "session_id": p.session_id, "boots": self.boots,
            "effort_limit": np.asarray(p.drive.effort_limit, float).tolist(),
            "targets": np.asarray(p.drive.targets, float).tolist(),
            "watchdog_ms": int(p.config.watchdog_ms),
            "watchdog_action": int(p.config.watchdog_action),
            "q": self.arm.q_true.tolist(), "qd": self.arm.qd_true.tolist(),
            "max_speed_since_last_status": speed,
            "payload_kg": self.arm.payload, "time_s": time.monotonic() - self.t_start,
            "states_sent": self.states_sent, "overruns": self.overruns,
            "rx_rejected": dict(self.endpoint.decoder.rejected),
            "rx_accepted": self.endpoint.decoder.accepted,
            "bytes_dropped": self.to_mcu.bytes_dropped + self.to_host.bytes_dropped,
            "bytes_corrupted": self.to_mcu.bytes_corrupted + self.to_host.bytes_corrupted,
        }

    def set_payload(self, kg: float) -> None:
        if not 0 <= kg <= 2.0:
            raise ConfigError(f"payload must be within 0-2 kg, got {kg}")
        self._call(lambda: self.arm.set_payload(kg))

    def set_faults(self, direction: str = "both", **faults) -> None:
        dirs = {"both": (self.to_mcu, self.to_host), "to_mcu": (self.to_mcu,),
                "to_host": (self.to_host,)}
        if direction not in dirs:
            raise ConfigError(f"direction must be one of {list(dirs)}")
        for k, v in faults.items():
            if k not in WireFaults.__dataclass_fields__:
                raise ConfigError(f"unknown fault {k!r}")
            for w in dirs[direction]:
                setattr(w.faults, k, float(v))

    def reboot(self) -> None:
        self._call(self._boot)

    def disconnect(self, seconds: float) -> None:
        self._call(lambda: self._disconnect(time.monotonic(), seconds))

    def control(self, req: dict) -> dict:
        """The side channel's one entry point: {"op": ...} -> JSON-safe reply."""
        op = req.get("op")
        try:
            if op == "params":
                return {"ok": True, "params": self.hidden_params()}
            if op == "status":
                return {"ok": True, "status": self.status()}
            if op == "payload":
                self.set_payload(float(req["kg"]))
            elif op == "faults":
                self.set_faults(req.get("direction", "both"),
                                **{k: v for k, v in req.items() if k not in ("op", "direction")})
            elif op == "reboot":
                self.reboot()
            elif op == "disconnect":
                self.disconnect(float(req.get("seconds", 0.5)))
            else:
                return {"ok": False, "error": f"unknown op {op!r}"}
        except (ConfigError, KeyError, ValueError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True}


# ---- transports -----------------------------------------------------------------------------
class PtyTransport:
    """A pseudo-terminal: the host opens `path` as if it were /dev/ttyUSB0.

    The mock reads the baud rate the host set on the pty (a pty carries it without using
    it) and garbles both directions when it differs from its own, as a real UART would.
    """

    def __init__(self, mock: MockRobot):
        self.mock = mock
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.bytes_overflowed = 0
        self._want = getattr(termios, f"B{mock.baud}", None)
        self._running = True
        mock.attach(self._write)
        self._thread = threading.Thread(target=self._reader, name="mock-pty", daemon=True)
        self._thread.start()

    def _write(self, data: bytes) -> None:
        self._check_baud()
        if self.mock.host_baud is not None and self.mock.host_baud != self.mock.baud:
            data = self.mock._garble(data)
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:  # nobody reading: the UART overruns and bytes are lost
                self.bytes_overflowed += len(view)
                return
            view = view[n:]

    def _check_baud(self) -> None:
        """The host may change its baud rate at any time; a pty carries the setting."""
        if self._want is None:
            return
        try:
            speed = termios.tcgetattr(self.slave)[5]
        except termios.error:
            return
        self.mock.host_baud = self.mock.baud if speed == self._want else -int(speed)

    def _reader(self) -> None:
        while self._running:
            self._check_baud()
            try:
                r, _, _ = select.select([self.master], [], [], 0.05)
            except (OSError, ValueError):
                return
            if r:
                try:
                    data = os.read(self.master, 4096)
                except (BlockingIOError, OSError):
                    continue
                if data:
                    self._check_baud()
                    self.mock.from_host(data)

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=1)
        self.mock.attach(None)
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpTransport:
    """One host at a time on 127.0.0.1:port (`socket://127.0.0.1:port` in pyserial).

    A disconnect fault closes the connection; the host reconnects by opening it again.
    """

    def __init__(self, mock: MockRobot, port: int = 0):
        self.mock = mock
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        self._running = True
        self._lock = threading.Lock()
        mock.attach(self._write, self._drop_conn)
        self._thread = threading.Thread(target=self._serve, name="mock-tcp", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _write(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            try:
                conn.sendall(data)
            except OSError:
                self._drop_conn()

    def _drop_conn(self) -> None:
        with self._lock:
            conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while self._running:
            try:
                conn, _ = self.server.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._drop_conn()
            with self._lock:
                self.conn = conn
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        while self._running:
            try:
                data = conn.recv(4096)
            except OSError:
                break
            if not data:
                break
            self.mock.from_host(data)
        if self.conn is conn:
            self._drop_conn()

    def close(self) -> None:
        self._running = False
        self._drop_conn()
        self.server.close()
        self._thread.join(timeout=1)
        self.mock.attach(None)


class ControlServer:
    """The test-only side channel: JSON lines on 127.0.0.1 (never the robot's port)."""

    def __init__(self, mock: MockRobot, port: int = 0):
        class Handler(socketserver.StreamRequestHandler):
            def handle(self_h):
                for line in self_h.rfile:
                    try:
                        req = json.loads(line)
                        reply = mock.control(req) if isinstance(req, dict) else \
                            {"ok": False, "error": "request must be a JSON object"}
                    except json.JSONDecodeError as exc:
                        reply = {"ok": False, "error": f"bad JSON: {exc}"}
                    self_h.wfile.write((json.dumps(reply) + "\n").encode())
                    self_h.wfile.flush()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MockControl:
    """Client of the side channel: `MockControl(port).call("status")`."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rwb")

    def call(self, op: str, **kw) -> dict:
        self.file.write((json.dumps({"op": op, **kw}) + "\n").encode())
        self.file.flush()
        reply = json.loads(self.file.readline())
        if not reply.get("ok"):
            raise LinkError(f"mock side channel: {reply.get('error')}")
        return reply

    def status(self) -> dict:
        return self.call("status")["status"]

    def params(self) -> dict:
        return self.call("params")["params"]

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def write_params(mock: MockRobot, path: str | os.PathLike) -> None:
    """Write the hidden parameters for an evaluator (atomically)."""
    p = Path(path)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(mock.hidden_params(), indent=1))
    os.replace(tmp, p)


def serve_inprocess(mock: MockRobot, name: str) -> str:
    """Register a started mock for `mock://NAME` URLs; returns the URL."""
    from . import protocol_mock

    protocol_mock.register(name, mock)
    return f"mock://{name}"
