"""Replay a cycle log: summarize it, and re-run the safety layer on the logged inputs.

`verify` rebuilds the safety layer from the log header and feeds it, cycle by cycle, the
logged action and state (with the logged state age), checking that it reproduces the sent
command and the intervention mask exactly. A mismatch means the log and this code disagree
about what was (or should have been) sent: the question to ask after an incident.
"""

from __future__ import annotations

import numpy as np

from .cyclelog import read_cyclelog
from .robot import RobotDescription, RobotState
from .safety import INTERVENTION_NAMES, SafetyConfig, SafetyLayer


def summarize(path: str) -> dict:
    header, recs, summary = read_cyclelog(path)
    rate = float(header["rate_hz"])
    T = 1.0 / rate
    sent = [(r["k"], r["sent"]) for r in recs if r.get("sent") is not None]
    ks = np.array([k for k, _ in sent])
    ts = np.array([t for _, t in sent])
    cons = np.diff(ks) == 1 if len(ks) > 1 else np.zeros(0, bool)
    periods = np.diff(ts)[cons] if len(ts) > 1 else np.zeros(0)
    jitter = np.abs(periods - T)
    rtt = np.array([r["rtt_us"] for r in recs if r.get("rtt_us") is not None])
    counts = {name: 0 for name in INTERVENTION_NAMES.values()}
    for r in recs:
        for bit, name in INTERVENTION_NAMES.items():
            if r["interventions"] & bit:
                counts[name] += 1

    def pct(x, q):
        return float(np.percentile(x, q) * 1e6) if len(x) else None

    return {
        "path": str(path), "rate_hz": rate, "mode": header.get("mode"),
        "joints": header["description"]["joint_names"], "cycles": len(recs),
        "commands_sent": len(sent), "duration_s": float(ts[-1]) if len(ts) else 0.0,
        "period_p50_us": pct(periods, 50), "jitter_p99_us": pct(jitter, 99),
        "late_commands": sum(1 for r in recs if r.get("late")),
        "rtt_p50_us": float(np.percentile(rtt, 50)) if len(rtt) else None,
        "interventions": counts, "complete": summary is not None,
        "stop_reason": (summary or {}).get("stop_reason", "log ends without a summary"),
        "meta": header.get("meta", {}),
    }


def verify(path: str) -> dict:
    header, recs, _ = read_cyclelog(path)
    desc = RobotDescription.from_dict(header["description"])
    safety = SafetyLayer(desc, 1.0 / float(header["rate_hz"]),
                         SafetyConfig(**header["safety"]))
    mode = header.get("mode", "position")
    mismatches = []
    for r in recs:
        st = r["state"]
        if st is None:
            state, now = None, 0.0
        else:
            state = RobotState(positions=np.asarray(st["q"], float),
                               velocities=np.asarray(st["qd"], float),
                               efforts=np.asarray(st["tau"], float), received_at=0.0)
            now = float(st["age"])
        dec = safety.filter(np.asarray(r["action"], float), state, now, mode)
        want = r["command"]
        same_cmd = (dec.command is None and want is None) or (
            dec.command is not None and want is not None
            and np.array_equal(dec.command, np.asarray(want, float)))
        if not same_cmd or dec.interventions != r["interventions"]:
            mismatches.append(r["k"])
    return {"cycles": len(recs), "mismatches": len(mismatches),
            "first_mismatches": mismatches[:10]}


def play(path: str, robot, *, move_speed: float = 0.5):
    """Send a log's commands to a robot again, at the logged rate, through a fresh safety
    layer built from the logged config. The robot must be connected and enabled; it is first
    driven (not teleported) to the first logged command. Returns the loop's LoopStats."""
    from .loop import ControlLoop

    header, recs, _ = read_cyclelog(path)
    mode = header.get("mode", "position")
    cmds = [np.asarray(r["command"], float) for r in recs if r["command"] is not None]
    if not cmds:
        return None
    if mode == "position":
        robot.move_to(cmds[0], speed=move_speed)
    loop = ControlLoop(robot, float(header["rate_hz"]), mode=mode,
                       safety=SafetyConfig(**header["safety"]))
    return loop.run(lambda state, k: cmds[min(k, len(cmds) - 1)], cycles=len(cmds))
