"""Open a serial port by URL and turn every way that fails into one actionable line.

pyserial's `serial_for_url` handles device paths, pty paths, `loop://`, `socket://host:port`
and (registered here) `mock://` for the in-process mock robot. Its exceptions carry an errno
buried in a message; users need to know what to do instead.
"""

from __future__ import annotations

import errno
import os

import serial

from metabot.errors import LinkError

# `mock://` resolves to metabot/hardware/protocol_mock.py (pyserial's URL-handler lookup).
if "metabot.hardware" not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append("metabot.hardware")

LIST_PORTS_HINT = "list ports with `python -m serial.tools.list_ports`"


def open_port(url: str, baudrate: int = 1_000_000, *, timeout: float = 0.005) -> serial.SerialBase:
    """Open `url` at `baudrate` or raise LinkError saying what to do."""
    is_device = "://" not in url
    kwargs = {"baudrate": baudrate, "timeout": timeout, "write_timeout": 1.0}
    if is_device:
        kwargs["exclusive"] = True  # flock: a second process gets "busy", not a shared mess
    try:
        return serial.serial_for_url(url, **kwargs)
    except ValueError as exc:  # unknown URL scheme, bad baud rate
        raise LinkError(f"cannot open {url!r}: {exc}") from None
    except (serial.SerialException, OSError) as exc:
        raise LinkError(explain_open_error(url, exc)) from None


def explain_open_error(url: str, exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    text = str(exc)
    low = text.lower()
    if code is None:  # pyserial wraps OSError text as "[Errno N] ..."
        for name in ("ENOENT", "EACCES", "EBUSY", "ECONNREFUSED", "EPERM", "ENODEV"):
            if f"[errno {getattr(errno, name)}]" in low:
                code = getattr(errno, name)
    if url.startswith("socket://"):
        if code == errno.ECONNREFUSED or "refused" in low:
            return (f"cannot connect to {url}: connection refused (is the robot or "
                    "`metabot mock-robot --tcp PORT` running on that port?)")
        return f"cannot connect to {url}: {text}"
    if code in (errno.EACCES, errno.EPERM):
        return (f"permission denied on {url}: add yourself to the dialout group "
                "(`sudo usermod -aG dialout $USER`, then log out and in) or install a udev "
                'rule granting access (e.g. MODE="0660", GROUP="dialout")')
    if code == errno.EBUSY or "exclusively lock" in low or "busy" in low:
        return (f"serial port {url} is busy: another process has it open "
                f"(find it with `fuser {url}` and close it)")
    if code in (errno.ENOENT, errno.ENODEV) or "no such file" in low \
            or ("://" not in url and not os.path.exists(url)):
        return (f"no serial port {url!r}: is the robot plugged in and powered? "
                f"({LIST_PORTS_HINT})")
    return f"cannot open serial port {url}: {text}"
