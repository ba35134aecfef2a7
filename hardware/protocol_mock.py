"""pyserial URL handler for `mock://`: the mock robot in-process, for tests and demos.

    mock://?seed=0&split=test&task_index=0   a new mock robot, owned by (and closed with) the port
    mock://NAME                              a running MockRobot registered under NAME
                                             (`MockRobot.serve_inprocess(name)`), so a test can
                                             keep a handle on the mock and reconnect to it

Options of the first form: task, split, seed, task_index, baud, latency (0/1), boot,
drop, corrupt, delay_prob, delay_ms. The port's own baud rate is compared with the mock's:
a mismatch garbles both directions, as on a real UART. Loaded by pyserial only when a
`mock://` URL is opened; it imports the mock (and MuJoCo) at that point.
"""

from __future__ import annotations

import threading
import time
import urllib.parse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

_REGISTRY: dict = {}
_INT = ("seed", "task_index", "baud")
_FLOAT = ("drop", "corrupt", "delay_prob", "delay_ms")


def register(name: str, mock) -> None:
    _REGISTRY[name] = mock


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


class Serial(SerialBase):
    """An in-memory serial port whose other end is a MockRobot."""

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        self._rx = bytearray()
        self._cond = threading.Condition()
        self._owned = False
        self.mock = self._resolve(self.port)
        self.mock.host_baud = self._baudrate
        self.mock.attach(self._on_bytes)
        self.is_open = True

    def _resolve(self, url: str):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "mock":
            raise SerialException(f"expected a mock:// URL, got {url!r}")
        if parts.netloc:
            mock = _REGISTRY.get(parts.netloc)
            if mock is None:
                raise SerialException(f"[Errno 2] no in-process mock robot named "
                                      f"{parts.netloc!r} (known: {sorted(_REGISTRY)})")
            return mock
        from metabot.hardware.mock_robot import MockRobot
        from metabot.hardware.mock_wire import WireFaults

        kw, faults = {}, {}
        for key, values in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items():
            v = values[-1]
            try:
                if key in _INT:
                    kw[key] = int(v)
                elif key in _FLOAT:
                    faults[key] = float(v)
                elif key == "latency":
                    kw[key] = v not in ("0", "false", "no")
                elif key in ("task", "split", "boot"):
                    kw[key] = v
                else:
                    raise ValueError(f"unknown option {key!r}")
            except ValueError as exc:
                raise ValueError(f"mock:// URL: {exc}") from None
        self._owned = True
        return MockRobot(faults=WireFaults(**faults), **kw).start()

    def _on_bytes(self, data: bytes) -> None:
        with self._cond:
            self._rx += data
            self._cond.notify_all()

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self.mock.attach(None)
            if self._owned:
                self.mock.stop()
            with self._cond:
                self._cond.notify_all()
        super().close()

    def _reconfigure_port(self, *args, **kwargs) -> None:
        if getattr(self, "mock", None) is not None:
            self.mock.host_baud = self._baudrate

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            while not self._rx and self.is_open:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            out = bytes(self._rx[:size])
            del self._rx[:size]
        return out

    def write(self, data) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        data = bytes(data)
        self.mock.from_host(data)
        return len(data)

    def reset_input_buffer(self) -> None:
        with self._cond:
            self._rx.clear()

    def reset_output_buffer(self) -> None:
        pass

    @property
    def out_waiting(self) -> int:
        return 0

    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
