"""Opt-in real-time scheduling for the control loop and the mock robot (Linux).

A deadline loop on a busy machine misses deadlines because the kernel runs other work
first, not because the loop is slow. Robot controllers therefore run at SCHED_FIFO
priority (as ros2_control does). Call `enable_realtime()` before starting threads (new
threads inherit the policy); it reports what it got instead of failing where the user may
not raise priorities (no CAP_SYS_NICE / rtprio limit).
"""

from __future__ import annotations

import os
import sys


def enable_realtime(priority: int = 40) -> str:
    """Try SCHED_FIFO at `priority`; return a one-word description of the policy in effect."""
    sys.setswitchinterval(0.0001)  # a waiting thread gets the GIL within 0.1 ms, not 5 ms
    if not hasattr(os, "sched_setscheduler"):
        return "unsupported"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (PermissionError, OSError) as exc:
        return f"SCHED_OTHER ({exc.strerror or exc}; raise the rtprio limit to allow it)"
    return f"SCHED_FIFO:{priority}"


def current_policy() -> str:
    if not hasattr(os, "sched_getscheduler"):
        return "unsupported"
    pol = os.sched_getscheduler(0)
    if pol == os.SCHED_FIFO:
        return f"SCHED_FIFO:{os.sched_getparam(0).sched_priority}"
    return {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_RR: "SCHED_RR"}.get(pol, str(pol))


class boost_thread:
    """Context: raise this thread above its SCHED_FIFO siblings (reader threads, a local
    mock) while it runs the control loop; a no-op outside SCHED_FIFO."""

    def __init__(self, delta: int = 5):
        self.delta = delta
        self.old: int | None = None

    def __enter__(self) -> boost_thread:
        if hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) == os.SCHED_FIFO:
            self.old = os.sched_getparam(0).sched_priority
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.old + self.delta))
            except OSError:
                self.old = None
        return self

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(self.old))
