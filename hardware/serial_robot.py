"""`SerialRobot`: the Robot interface over our MCU's serial protocol (metabot.bridge).

A background reader thread decodes every byte as it arrives and keeps the latest valid
STATE of the current MCU session, so `read_state()` is a memory read and a control cycle
never waits for the wire. Commands are fire-and-forget (the MCU echoes the last applied
command sequence in STATE, which gives the round-trip time); configuration and torque
changes wait for the MCU's ACK, outside the control loop. On connect the host configures
the MCU watchdog, so a host process that dies without a word still leaves the arm holding.
A new session id in STATE means the MCU rebooted: nothing is sent until `reconnect()` and
`enable()`.
"""

from __future__ import annotations

import os
import random
import select
import threading
import time
from collections import deque
from collections.abc import Sequence

import numpy as np
import serial

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
    Message,
    Mode,
    Nack,
    NackReason,
    SequenceTracker,
    SetConfig,
    State,
    Status,
    Torque,
    TorqueAction,
    WatchdogAction,
    check_hello_ack,
    encode,
)
from metabot.bridge.messages import names_digest
from metabot.errors import ConfigError, LinkError, SafetyError

from .ports import open_port
from .robot import MODES, Robot, RobotDescription, RobotState

_MODE_IDS = {"position": Mode.POSITION, "velocity": Mode.VELOCITY, "torque": Mode.TORQUE}
WATCHDOG_RANGE_S = (0.02, 2.5)


def _nack_name(reason: int) -> str:
    try:
        return NackReason(reason).name
    except ValueError:
        return str(reason)


class SerialRobot(Robot):
    """Our MCU over a serial URL: a device path, a pty path, loop://, socket://host:port, mock://.

    watchdog_s / watchdog_action: what the MCU does if the host goes silent while enabled
    ("hold" with hold_effort_frac of the effort limit, or "torque_off"). The host asks for
    0.6 by default, above the firmware's boot default of 0.3: a 30% hold lets a
    gravity-loaded arm with a payload creep down, which is a slow drop, not a hold.
    command_ttl_s: the MCU holds position if a command is older than this.
    """

    def __init__(self, url: str, *, baudrate: int = 1_000_000,
                 joint_names: Sequence[str] | None = None, home: Sequence[float] | None = None,
                 control_rate_hz: float = 100.0, watchdog_s: float = 0.1,
                 watchdog_action: str = "hold", hold_effort_frac: float = 0.6,
                 command_ttl_s: float = 0.05, handshake_timeout_s: float = 1.0,
                 ack_timeout_s: float = 0.5, on_exit: str = "hold",
                 handle_signals: bool = True):
        super().__init__(on_exit=on_exit, handle_signals=handle_signals)
        lo, hi = WATCHDOG_RANGE_S
        if not lo <= watchdog_s <= hi:
            raise ConfigError(f"watchdog_s must be within {lo}-{hi} s, got {watchdog_s}")
        if watchdog_action not in ("hold", "torque_off"):
            raise ConfigError(f"watchdog_action must be 'hold' or 'torque_off', "
                              f"got {watchdog_action!r}")
        if not 0 <= hold_effort_frac <= 1:
            raise ConfigError(f"hold_effort_frac must be within 0-1, got {hold_effort_frac}")
        if not 0 < command_ttl_s <= 2.5:
            raise ConfigError(f"command_ttl_s must be within (0, 2.5] s, got {command_ttl_s}")
        self.url = url
        self.baudrate = int(baudrate)
        self.joint_names = tuple(joint_names) if joint_names is not None else None
        self._home = None if home is None else np.asarray(home, np.float64)
        self.control_rate_hz = float(control_rate_hz)
        self.watchdog_s = float(watchdog_s)
        self.watchdog_action = watchdog_action
        self.hold_effort_frac = float(hold_effort_frac)
        self.command_ttl_s = float(command_ttl_s)
        self.handshake_timeout_s = handshake_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self._ser: serial.SerialBase | None = None
        self._reader: threading.Thread | None = None
        self._running = False
        self._tx_lock = threading.Lock()
        # Frames are written by a writer thread, so a control cycle never blocks on the OS
        # (a loaded kernel can stall a tty write for tens of ms). Queue entries:
        # [frame, cmd_seq or None, t_enqueued]; an unwritten COMMAND is replaced by a newer
        # one (the newest target is the only one worth sending); nothing else is dropped.
        self._tx_cond = threading.Condition(self._tx_lock)
        self._txq: deque[list] = deque()
        self._written_at: dict[int, float] = {}
        self.tx_coalesced = 0
        self._writing = False
        self._fd: int | None = None  # a tty's file descriptor (written with os.write)
        self._writer: threading.Thread | None = None
        self._tx_seq = random.getrandbits(16)
        self._desc: RobotDescription | None = None
        self._reset_link_state()
        self.faults: list[Fault] = []
        self.reboots = 0
        self.nacks: dict[str, int] = {}

    def _reset_link_state(self) -> None:
        self.decoder = Decoder()
        self.rx_seq = SequenceTracker()
        self.session_id: int | None = None
        self.hello_ack: HelloAck | None = None
        self._nonce: int | None = None
        self._hello_event = threading.Event()
        self._acks: dict[int, tuple[threading.Event, list]] = {}
        self._latest: RobotState | None = None
        self._rebooted_to: int | None = None
        self._link_error: str | None = None
        self._cmd_seq = 0
        self._latched: str | None = None  # from a FAULT, before the next STATE shows it
        self.bytes_received = 0
        self.stale_frames = 0
        self._echoed_at: dict[int, float] = {}  # cmd seq -> first STATE reporting it applied

    # ---- description ---------------------------------------------------------------------
    @property
    def description(self) -> RobotDescription:
        if self._desc is None:
            raise LinkError("not connected: call connect() (or use `with robot:`) first")
        return self._desc

    def _describe(self, ack: HelloAck) -> RobotDescription:
        n = ack.n_joints
        names = self.joint_names or tuple(f"joint{i}" for i in range(n))
        if len(names) != n:
            raise LinkError(f"the firmware reports {n} joints, expected {len(names)} "
                            f"({', '.join(names)})")
        if self.joint_names is not None and ack.names_digest not in (0, names_digest(names)):
            raise LinkError(f"joint names differ: the firmware's digest is "
                            f"{ack.names_digest:#010x}, expected {names_digest(names):#010x} for "
                            f"({', '.join(names)}); is this the right arm?")
        lo = np.asarray(ack.pos_min, np.float64)
        hi = np.asarray(ack.pos_max, np.float64)
        home = np.clip(self._home if self._home is not None else np.zeros(n), lo, hi)
        modes = tuple(m for m in MODES if (ack.control_modes >> int(_MODE_IDS[m])) & 1)
        return RobotDescription(
            joint_names=names, position_lower=lo, position_upper=hi,
            velocity_limit=np.asarray(ack.vel_max, np.float64),
            effort_limit=np.asarray(ack.effort_max, np.float64), home=home,
            control_rate_hz=self.control_rate_hz, modes=modes,
            firmware=f"{ack.firmware_id:#010x} protocol v{ack.protocol_version}")

    # ---- connection ------------------------------------------------------------------------
    def connect(self) -> None:
        if self._ser is None:
            self._ser = open_port(self.url, self.baudrate)
            self._fd = self._ser.fd if type(self._ser).__module__ == "serial.serialposix" \
                else None
            try:
                self._ser.reset_input_buffer()
            except (serial.SerialException, OSError):
                pass
        self._reset_link_state()
        self._start_reader()
        try:
            self._handshake()
            self._configure()
            self.wait_for_state(max(0.5, self.handshake_timeout_s))
        except BaseException:
            self.close()
            raise

    def reconnect(self) -> None:
        """Handshake again (after a reboot or a link loss); the robot stays holding/disabled."""
        if self._ser is not None and self._link_error is not None:
            self.close()
        self._stop_reader()
        self.connect()

    def close(self) -> None:
        self._stop_reader()
        if self._ser is not None:
            try:
                self._ser.close()
            except (serial.SerialException, OSError):
                pass
            self._ser = None

    def _start_reader(self) -> None:
        self._running = True
        self._reader = threading.Thread(target=self._read_loop, name="serial-robot-rx",
                                        daemon=True)
        self._reader.start()
        self._writer = threading.Thread(target=self._write_loop, name="serial-robot-tx",
                                        daemon=True)
        self._writer.start()

    def _stop_reader(self) -> None:
        self._flush(0.25)  # a final HOLD/ESTOP must leave before the port closes
        self._running = False
        with self._tx_cond:
            self._tx_cond.notify_all()
        for th in (self._reader, self._writer):
            if th is not None:
                th.join(timeout=1.0)
        self._reader = self._writer = None

    def _handshake(self) -> None:
        t_end = time.monotonic() + self.handshake_timeout_s
        self._nonce = random.getrandbits(32)
        while True:
            self._send(Hello(PROTOCOL_VERSION, self._nonce))
            if self._hello_event.wait(min(0.2, max(0.0, t_end - time.monotonic()))):
                break
            if self._link_error:
                raise LinkError(f"{self.url}: {self._link_error}")
            if time.monotonic() >= t_end:
                raise LinkError(self._explain_silence())
        ack = check_hello_ack(self.hello_ack, host_nonce=self._nonce)
        self._desc = self._describe(ack)
        self.session_id = ack.session_id

    def _explain_silence(self) -> str:
        t = self.handshake_timeout_s
        if self.bytes_received == 0:
            return (f"no reply from {self.url} within {t:.1f} s: the device is silent (is it "
                    "powered, is the firmware running, is this the robot's port?)")
        if self.decoder.accepted == 0:
            return (f"received {self.bytes_received} bytes from {self.url} in {t:.1f} s but "
                    f"no valid frame: wrong baud rate? (host uses {self.baudrate}; it must "
                    "match the firmware's)")
        return (f"{self.url} sends valid frames but did not answer HELLO within {t:.1f} s "
                "(is another host talking to it?)")

    def _configure(self) -> None:
        action = WatchdogAction.HOLD if self.watchdog_action == "hold" else \
            WatchdogAction.TORQUE_OFF
        self._request(SetConfig(self.session_id, int(round(self.watchdog_s * 1000)), int(action),
                                self.hold_effort_frac), "SET_CONFIG")

    # ---- reader thread ---------------------------------------------------------------------
    def _reader_for(self, ser: serial.SerialBase):
        """A function returning whatever bytes arrived (waiting at most 5 ms).

        A tty fd or a socket is read directly, everything available in one call: pyserial's
        socket handler reports at most one byte waiting, so `read(in_waiting)` would cost one
        Python loop per byte (100k/s at 1 Mbaud) and fall behind on a busy machine.
        """
        sock = getattr(ser, "_socket", None)
        fd = self._fd if self._fd is not None else (sock.fileno() if sock is not None else None)
        if fd is None:
            return lambda: ser.read(ser.in_waiting or 1)

        def read() -> bytes:
            if not select.select([fd], [], [], 0.005)[0]:
                return b""
            try:
                data = os.read(fd, 65536) if sock is None else sock.recv(65536)
            except BlockingIOError:
                return b""
            if not data:
                raise serial.SerialException("the port or connection was closed")
            return data

        return read

    def _read_loop(self) -> None:
        read = self._reader_for(self._ser)
        while self._running:
            try:
                data = read()
            except (serial.SerialException, OSError, TypeError, AttributeError,
                    ValueError) as exc:
                if self._running:
                    self._link_error = f"serial link lost: {exc}"
                return
            if not data:
                continue
            now = time.monotonic()
            self.bytes_received += len(data)
            for frame in self.decoder.feed(data):
                self._dispatch(frame, now)

    def _dispatch(self, frame, now: float) -> None:
        msg = frame.msg
        if isinstance(msg, HelloAck):
            if msg.host_nonce == self._nonce and not self._hello_event.is_set():
                self.hello_ack = msg
                self.rx_seq.reset(frame.seq)
                self._hello_event.set()
            return
        if self.session_id is None:
            return
        sid = getattr(msg, "session_id", self.session_id)
        if sid != self.session_id:
            if isinstance(msg, State) and self._rebooted_to != sid:
                self._rebooted_to = sid  # the MCU rebooted: stop everything until re-handshake
                self.reboots += 1
            return
        if not self.rx_seq.accept(frame.seq):
            self.stale_frames += 1
            return
        if isinstance(msg, State):
            st = msg.status
            if msg.last_cmd_seq not in self._echoed_at:
                self._echoed_at[msg.last_cmd_seq] = now
                if len(self._echoed_at) > 512:
                    self._echoed_at.pop(next(iter(self._echoed_at)))
            self._latest = RobotState(
                positions=np.array(msg.positions, np.float64),
                velocities=np.array(msg.velocities, np.float64),
                efforts=np.array(msg.efforts, np.float64),
                received_at=now, device_time_us=msg.t_us, seq=frame.seq,
                enabled=bool(st & Status.ENABLED), holding=bool(st & Status.HOLDING),
                torque_on=bool(st & Status.TORQUE_ON), estopped=bool(st & Status.ESTOPPED),
                watchdog_tripped=bool(st & Status.WATCHDOG_TRIPPED), fault=msg.fault,
                command_seq=msg.last_cmd_seq,
                extra={"limit_clamped": bool(st & Status.LIMIT_CLAMPED),
                       "command_expired": bool(st & Status.COMMAND_EXPIRED)})
        elif isinstance(msg, Ack | Nack):
            waiter = self._acks.get(msg.acked_seq)
            if waiter is not None:
                waiter[1].append(msg)
                waiter[0].set()
            elif isinstance(msg, Nack):
                name = _nack_name(msg.reason)
                self.nacks[name] = self.nacks.get(name, 0) + 1
        elif isinstance(msg, Fault):
            self.faults.append(msg)
            if msg.code == FaultCode.WATCHDOG:
                self._latched = "its watchdog tripped"
            elif msg.code == FaultCode.ESTOP:
                self._latched = "e-stopped"
        elif isinstance(msg, Estop):
            self._latched = "e-stopped by the MCU"

    # ---- sending ---------------------------------------------------------------------------
    def _send(self, msg: Message, cmd_seq: int | None = None) -> int:
        """Write one frame now without blocking, or queue it behind a write in progress.

        The common case writes on the caller's thread (a handoff to another thread costs up
        to a GIL switch interval). On a tty the write is one non-blocking os.write: pyserial's
        own write waits for the tty to drain after every write, which a loaded kernel can
        stall for tens of ms. Whatever does not fit, and every frame behind it, goes to the
        writer thread, so a control cycle never waits on the OS; a queued COMMAND not yet
        started is replaced by a newer one (the newest target is the only one worth sending).
        Queue entries: [bytes, cmd_seq or None, t_enqueued, started].
        """
        if self._ser is None or self._writer is None:
            raise LinkError("not connected")
        if self._link_error is not None:
            raise LinkError(f"{self.url}: {self._link_error}")
        with self._tx_cond:
            seq = self._tx_seq
            self._tx_seq = (seq + 1) & 0xFFFF
            frame = encode(msg, seq)
            direct = not self._txq and not self._writing
            if direct:
                self._writing = True
            else:
                q = self._txq
                if cmd_seq is not None and q and q[-1][1] is not None and not q[-1][3]:
                    q[-1] = [frame, cmd_seq, time.monotonic(), False]
                    self.tx_coalesced += 1
                else:
                    q.append([frame, cmd_seq, time.monotonic(), False])
                self._tx_cond.notify_all()
        if direct:
            self._write_frame(frame, cmd_seq, block=False)
            if self._link_error is not None:
                raise LinkError(f"{self.url}: {self._link_error}")
        return seq

    def _write_frame(self, frame: bytes, cmd_seq: int | None, *, block: bool) -> None:
        """Write with `_writing` held (set by the caller); always releases it."""
        rest = b""
        try:
            if self._fd is None:  # sockets, mock://: their write does not wait to drain
                self._ser.write(frame)
            else:
                rest = self._write_fd(frame, block)
            if not rest and cmd_seq is not None:
                self._written_at[cmd_seq] = time.monotonic()
                if len(self._written_at) > 4096:
                    self._written_at.pop(next(iter(self._written_at)))
        except (serial.SerialException, OSError, AttributeError, TypeError) as exc:
            self._link_error = f"serial link lost: write failed: {exc}"
        finally:
            with self._tx_cond:
                self._writing = False
                if self._link_error is not None:
                    self._txq.clear()
                elif rest:  # the tail of a started frame goes first, never coalesced
                    self._txq.appendleft([rest, cmd_seq, time.monotonic(), True])
                self._tx_cond.notify_all()

    def _write_fd(self, data: bytes, block: bool, timeout: float = 1.0) -> bytes:
        """os.write on the (O_NONBLOCK) tty; returns what is left when not blocking."""
        view = memoryview(data)
        t_end = time.monotonic() + timeout
        while view:
            try:
                view = view[os.write(self._fd, view):]
                continue
            except BlockingIOError:
                pass
            if not block:
                return bytes(view)
            left = t_end - time.monotonic()
            if left <= 0 or not select.select([], [self._fd], [], left)[1]:
                raise serial.SerialException("write timeout: the port takes no data for 1 s")
        return b""

    def _write_loop(self) -> None:
        while True:
            with self._tx_cond:
                while (not self._txq or self._writing) and self._running:
                    self._tx_cond.wait()
                if not self._txq or self._link_error is not None:
                    return
                frame, cmd_seq, _, _ = self._txq.popleft()
                self._writing = True
            self._write_frame(frame, cmd_seq, block=True)

    def _flush(self, timeout: float) -> None:
        t_end = time.monotonic() + timeout
        with self._tx_cond:
            while (self._txq or self._writing) and self._writer is not None \
                    and self._writer.is_alive():
                left = t_end - time.monotonic()
                if left <= 0:
                    return
                self._tx_cond.wait(left)

    reports_write_times = True

    def flush(self, timeout: float = 0.1) -> None:
        self._flush(timeout)

    def command_sent_at(self, cmd_seq: int) -> float | None:
        """When the command's bytes were handed to the OS (None: not yet, or coalesced)."""
        return self._written_at.get(cmd_seq)

    def command_echoed_at(self, cmd_seq: int) -> float | None:
        return self._echoed_at.get(cmd_seq)

    def _request(self, msg: Message, what: str, timeout: float | None = None,
                 tries: int = 3) -> None:
        """Send and wait for the ACK (outside any control cycle); NACK -> LinkError.

        Only idempotent messages go through here (SET_CONFIG, TORQUE), so a lost frame or
        ACK is simply sent again under a new sequence number.
        """
        timeout = self.ack_timeout_s if timeout is None else timeout
        for _ in range(tries):
            event, box = threading.Event(), []
            with self._tx_lock:
                seq = self._tx_seq
                self._acks[seq] = (event, box)
            try:
                sent = self._send(msg)
                if sent != seq:  # another thread sent in between; wait on the right one
                    self._acks[sent] = self._acks.pop(seq)
                    seq = sent
                if event.wait(timeout):
                    if isinstance(box[0], Nack):
                        raise LinkError(f"{what} refused by the MCU: {_nack_name(box[0].reason)}")
                    return
            finally:
                self._acks.pop(seq, None)
            self._check_link()
        raise LinkError(f"{what}: no answer from the MCU within {tries} x {timeout * 1e3:.0f} ms")

    def _check_link(self) -> None:
        if self._rebooted_to is not None:
            raise LinkError(f"the MCU rebooted (session {self.session_id:#010x} -> "
                            f"{self._rebooted_to:#010x}); nothing moves until reconnect() "
                            "and enable()")
        if self._link_error is not None:
            raise LinkError(f"{self.url}: {self._link_error}")
        if self.session_id is None:
            raise LinkError("not connected: call connect() first")

    @property
    def rebooted(self) -> bool:
        return self._rebooted_to is not None

    def read_state(self) -> RobotState | None:
        return self._latest

    def _send_command(self, targets: np.ndarray, mode: str) -> int:
        self._check_link()
        s = self._latest
        why = self._latched
        if why is None and s is not None and (s.estopped or s.watchdog_tripped):
            why = "e-stopped" if s.estopped else "its watchdog tripped"
        if why is not None:
            raise SafetyError(f"the MCU is latched ({why}); it holds the arm until enable()")
        self._cmd_seq += 1
        self._send(Command(self.session_id, self._cmd_seq, int(self.command_ttl_s * 1e6),
                           int(_MODE_IDS[mode]), targets.astype(np.float32)),
                   cmd_seq=self._cmd_seq)
        return self._cmd_seq

    def heartbeat(self) -> None:
        """Feed the MCU watchdog while not commanding (e.g. between episodes)."""
        self._check_link()
        self._send(Heartbeat(self.session_id, int(time.monotonic() * 1e6)))

    def enable(self) -> None:
        self._check_link()
        t = time.monotonic()
        self._request(Torque(self.session_id, int(TorqueAction.ENABLE)), "enable")
        self._estop_latched = False
        self._latched = None
        deadline = t + max(0.5, 4 * self.ack_timeout_s)
        while True:  # wait until a STATE shows the latches cleared
            s = self._latest
            if s is not None and s.received_at > t and s.enabled and not s.watchdog_tripped:
                return
            if time.monotonic() > deadline:
                raise LinkError("enable: the MCU did not report ENABLED")
            time.sleep(0.0005)

    def hold(self) -> None:
        self._check_link()
        self._request(Torque(self.session_id, int(TorqueAction.HOLD)), "hold")

    def disable(self) -> None:
        self._check_link()
        self._request(Torque(self.session_id, int(TorqueAction.DISABLE)), "disable")

    def _estop(self) -> None:
        self._latched = "e-stopped"
        for _ in range(2):  # honoured in every state; sent twice in case one is corrupted
            self._send(Estop(0))

    @property
    def last_fault(self) -> str | None:
        if not self.faults:
            return None
        f = self.faults[-1]
        try:
            return FaultCode(f.code).name
        except ValueError:
            return str(f.code)

    def link_stats(self) -> dict:
        return {"bytes_received": self.bytes_received, "frames_accepted": self.decoder.accepted,
                "frames_rejected": dict(self.decoder.rejected), "stale_frames": self.stale_frames,
                "lost_frames": self.rx_seq.lost, "reboots": self.reboots, "nacks": dict(self.nacks),
                "faults": len(self.faults), "tx_coalesced": self.tx_coalesced}

