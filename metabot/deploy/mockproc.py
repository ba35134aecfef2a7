"""Start `metabot mock-robot --pty` in its own process, as the demo and the tests need it.

The mock must live in another process: in-process it shares the GIL with the control loop
and neither side keeps its deadlines, and a real MCU is another computer anyway. This
module only launches the command and reads the two lines it prints (the pty path on
stdout, the test-only control port on stderr); it imports no mujoco itself.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from metabot.errors import LinkError


def raise_priority(nice: int) -> bool:
    """Set this thread's nice value (threads started later inherit it); False if not allowed.

    A real MCU is its own computer and is never starved by the host's other work; an
    emulated one on a shared machine must ask the scheduler for that. Lowering nice needs
    CAP_SYS_NICE (root); without it nothing changes and the caller carries on.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except (PermissionError, OSError):
        return False
    return True


class MockProcess:
    """A running mock robot: `.port` (pty path), `.control` (side channel), `.close()`."""

    def __init__(
        self,
        *,
        split: str = "test",
        seed: int = 0,
        task_index: int = 0,
        task: str = "arm6-reach",
        extra_args: tuple[str, ...] = (),
        startup_timeout: float = 60.0,
        priority: int | None = None,
    ):
        cmd = [
            sys.executable, "-m", "metabot", "mock-robot", "--pty", "--control-port", "0",
            "--task", task, "--split", split, "--seed", str(seed),
            "--task-index", str(task_index), *extra_args,
        ]  # fmt: skip
        self.args = {"task": task, "split": split, "seed": seed, "task_index": task_index}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            start_new_session=True,  # a Ctrl-C meant for the demo is handled by the demo
            preexec_fn=None if priority is None else (lambda: raise_priority(priority)),
        )  # fmt: skip
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self.stderr_tail: list[str] = []
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            threading.Thread(target=self._pump, args=(name, stream), daemon=True).start()
        self.port = ""
        control_port = None
        deadline = time.monotonic() + startup_timeout
        while not (self.port and control_port):
            left = deadline - time.monotonic()
            try:
                name, line = self._lines.get(timeout=max(left, 0.01))
            except queue.Empty:
                name, line = "", ""
            if name == "out" and line.strip() and not self.port:
                self.port = line.strip()
            elif name == "err" and line.startswith("control: "):
                control_port = int(line.rsplit(":", 1)[1])
            if (name == "" and self.proc.poll() is not None) or left <= 0:
                self.close()
                raise LinkError(
                    "the mock robot did not start: " + " | ".join(self.stderr_tail[-3:])
                )
        from metabot.hardware.mock_robot import MockControl

        self.control = MockControl(control_port)

    def _pump(self, name: str, stream: Any) -> None:
        for line in stream:
            if name == "err":
                self.stderr_tail = (self.stderr_tail + [line.rstrip()])[-20:]
            self._lines.put((name, line))
        self._lines.put(("", ""))

    def params(self) -> dict:
        """The hidden parameters (test-only channel): for the oracle and the report."""
        return self.control.params()

    def status(self) -> dict:
        """The mock's own view of its servos: holding / torque_off / moving."""
        return self.control.status()

    def set_payload(self, kg: float) -> None:
        self.control.call("payload", kg=float(kg))

    def close(self) -> None:
        ctl = getattr(self, "control", None)
        if ctl is not None:
            try:
                ctl.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)

    def __enter__(self) -> MockProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
