"""Robot interface, safety layer, control loop, cycle log and port errors (no MuJoCo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from metabot.hardware import safety as S
from metabot.hardware.cyclelog import read_cyclelog
from metabot.hardware.loop import ControlLoop
from metabot.hardware.replay import summarize, verify
from metabot.hardware.robot import Robot, RobotDescription, RobotState
from metabot.hardware.safety import SafetyConfig, SafetyLayer

from metabot.errors import ConfigError, LinkError, SafetyError

N = 3
DESC = RobotDescription(
    joint_names=("a", "b", "c"), position_lower=np.full(N, -1.0), position_upper=np.full(N, 1.0),
    velocity_limit=np.full(N, 2.0), effort_limit=np.full(N, 1.5), home=np.zeros(N),
    control_rate_hz=100.0, modes=("position", "velocity", "torque"))


class FakeRobot(Robot):
    """Records what the interface does; its state is always fresh and tracks the command."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.calls: list[str] = []
        self.sent: list[np.ndarray] = []
        self.q = np.zeros(N)
        self.stale = False
        self._t = time.monotonic()

    @property
    def description(self):
        return DESC

    def connect(self):
        self.calls.append("connect")

    def close(self):
        self.calls.append("close")

    def read_state(self):
        if not self.stale:
            self._t = time.monotonic()
        return RobotState(self.q.copy(), np.zeros(N), np.zeros(N), received_at=self._t,
                          command_seq=len(self.sent))

    def _send_command(self, targets, mode):
        self.sent.append(targets.copy())
        self.q = targets.copy()
        return len(self.sent)

    def enable(self):
        self.calls.append("enable")

    def disable(self):
        self.calls.append("disable")

    def hold(self):
        self.calls.append("hold")

    def _estop(self):
        self.calls.append("estop")


def state(q, t=0.0):
    return RobotState(np.asarray(q, float), np.zeros(N), np.zeros(N), received_at=t)


# ---- safety layer ---------------------------------------------------------------------------
def test_safety_clamps_position_and_step():
    sl = SafetyLayer(DESC, 0.01, SafetyConfig(max_step=0.1))
    d = sl.filter([5.0, -0.05, 0.0], state([0, 0, 0]), now=0.0)
    assert d.command.tolist() == [0.1, -0.05, 0.0]
    assert d.interventions == S.POSITION_CLAMP | S.STEP_CLAMP
    assert set(d.names) == {"position_clamp", "step_clamp"}
    # next step is measured from the last command, not the measured position
    d = sl.filter([5.0, 0.0, 0.0], state([0, 0, 0]), now=0.0)
    assert d.command[0] == pytest.approx(0.2)


def test_safety_does_not_flag_float32_rounding_of_limits():
    sl = SafetyLayer(DESC, 0.01, SafetyConfig(max_step=10.0))
    over = DESC.position_upper[0] + 5e-7  # a float64 limit vs its float32 copy on the wire
    d = sl.filter([over, 0.0, 0.0], state([0, 0, 0]), now=0.0)
    assert d.command[0] <= DESC.position_upper[0]  # still clipped
    assert d.interventions == 0 and sl.counts["position_clamp"] == 0


def test_safety_default_step_is_velocity_times_period():
    sl = SafetyLayer(DESC, 0.01)
    d = sl.filter([1.0, 0, 0], state([0, 0, 0]), now=0.0)
    assert d.command[0] == pytest.approx(2.0 * 0.01)


def test_safety_nonfinite_holds_last_command():
    sl = SafetyLayer(DESC, 0.01, SafetyConfig(max_step=1.0))
    first = sl.filter([0.3, 0.2, 0.1], state([0, 0, 0]), now=0.0).command
    d = sl.filter([np.nan, 0.0, np.inf], state([0.5, 0.5, 0.5]), now=0.0)
    assert d.interventions & S.NONFINITE
    assert np.array_equal(d.command, first)  # hold, not a partial NaN-free command
    fresh = SafetyLayer(DESC, 0.01)
    d = fresh.filter([np.nan] * 3, state([0.1, 0.2, 0.3]), now=0.0)
    assert np.allclose(d.command, [0.1, 0.2, 0.3])  # no command yet: hold where it is


def test_safety_link_loss_sends_nothing():
    sl = SafetyLayer(DESC, 0.01, SafetyConfig(link_timeout_s=0.05))
    assert sl.filter([0, 0, 0], state([0, 0, 0], t=0.0), now=0.049).command is not None
    d = sl.filter([0, 0, 0], state([0, 0, 0], t=0.0), now=0.051)
    assert d.command is None and d.interventions == S.LINK_LOSS
    assert sl.filter([0, 0, 0], None, now=0.0).command is None


def test_safety_velocity_and_torque_modes():
    sl = SafetyLayer(DESC, 0.01, SafetyConfig(velocity_scale=0.5))
    d = sl.filter([3.0, -3.0, 0.2], state([0, 0, 0]), now=0.0, mode="velocity")
    assert d.command.tolist() == [1.0, -1.0, 0.2] and d.interventions & S.VELOCITY_CLAMP
    d = sl.filter([0.5, 0, 0], state([1.0, 0, 0]), now=0.0, mode="velocity")
    assert d.command[0] == 0.0 and d.interventions & S.LIMIT_PUSH  # at the limit, pushing out
    d = sl.filter([9.0, 0, 0], state([0, 0, 0]), now=0.0, mode="torque")
    assert d.command[0] == 1.5 and d.interventions & S.EFFORT_CLAMP


@pytest.mark.parametrize("kw", [{"link_timeout_s": 0}, {"velocity_scale": 1.5},
                                {"position_margin": -1}, {"max_step": 0}])
def test_safety_config_rejects_bad_values(kw):
    with pytest.raises(ConfigError):
        SafetyConfig(**kw)


# ---- robot interface -------------------------------------------------------------------------
def test_send_command_refuses_nonfinite_and_clamps():
    r = FakeRobot()
    with pytest.raises(SafetyError, match="non-finite"):
        r.send_command([np.nan, 0, 0])
    with pytest.raises(SafetyError, match="3 joints"):
        r.send_command([0, 0])
    r.send_command([4.0, -4.0, 0.5])
    assert r.sent[-1].tolist() == [1.0, -1.0, 0.5] and len(r.sent) == 1


@pytest.mark.parametrize("on_exit,expect", [("hold", "hold"), ("torque_off", "disable")])
def test_context_exits_safe_on_exception(on_exit, expect):
    r = FakeRobot(on_exit=on_exit)
    with pytest.raises(RuntimeError), r:
        raise RuntimeError("policy crashed")
    assert r.calls == ["connect", expect, "close"]


def test_context_torque_off_after_estop():
    r = FakeRobot()
    with r:
        r.estop()
    assert r.calls == ["connect", "estop", "disable", "close"]


def test_nan_action_inside_with_leaves_robot_holding():
    r = FakeRobot()
    with pytest.raises(SafetyError), r:
        r.send_command([0.1, np.nan, 0.0])
    assert r.calls[-2:] == ["hold", "close"] and not r.sent


# ---- control loop + cycle log -----------------------------------------------------------------
def test_loop_runs_on_deadlines_logs_and_replays(tmp_path):
    r = FakeRobot()
    log = tmp_path / "cycles.jsonl"

    calls = []

    def policy(st, k):  # the 6th call returns NaN (cycles may be skipped on a busy machine)
        calls.append(k)
        return np.array([np.nan, 0, 0]) if len(calls) == 6 else \
            np.array([0.5 * np.sin(k / 10), 2.0, 0])

    loop = ControlLoop(r, 200.0, safety=SafetyConfig(max_step=0.05), log_path=str(log))
    stats = loop.run(policy, cycles=60)
    assert stats.cycles == 60 and stats.commands_sent + stats.skipped_cycles == 60
    assert stats.rtt_samples > 0
    assert stats.interventions["nonfinite"] == 1 and stats.interventions["position_clamp"] > 0
    assert all(np.all(np.abs(c) <= 1.0) for c in r.sent)
    assert np.max(np.abs(np.diff(np.array(r.sent), axis=0))) <= 0.05 + 1e-12
    header, recs, summary = read_cyclelog(log)
    assert header["format"] == "metabot-cyclelog" and header["rate_hz"] == 200.0
    assert len(recs) == stats.commands_sent and summary["cycles"] == 60
    assert recs[5]["interventions"] & S.NONFINITE and np.isnan(recs[5]["action"][0])
    assert np.array_equal(recs[5]["command"], recs[4]["command"])  # NaN -> hold
    assert verify(log)["mismatches"] == 0
    s = summarize(log)
    assert s["cycles"] == len(recs) and s["interventions"]["nonfinite"] == 1
    # a doctored log is caught
    lines = log.read_text().splitlines()
    rec = json.loads(lines[10])
    rec["interventions"] ^= S.NONFINITE
    lines[10] = json.dumps(rec)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    assert verify(bad)["mismatches"] >= 1


def test_loop_stops_on_link_loss():
    r = FakeRobot()
    loop = ControlLoop(r, 200.0, safety=SafetyConfig(link_timeout_s=0.03))

    calls = []

    def policy(st, k):
        calls.append(k)
        if len(calls) == 10:
            r.stale = True  # the state stops updating
        return np.zeros(N)

    t0 = time.monotonic()
    with pytest.raises(SafetyError, match="link lost"):
        loop.run(policy, seconds=10.0)
    assert time.monotonic() - t0 < 3.0  # stopped by the link loss, long before the end
    assert loop.stats.stop_reason == "link_loss" and loop.stats.interventions["link_loss"] == 1


def test_cyclelog_rejects_other_files(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"format": "other"}\n')
    with pytest.raises(ConfigError, match="not a metabot cycle log"):
        read_cyclelog(p)
    p.write_text('{"format": "metabot-cyclelog", "version": 99}\n')
    with pytest.raises(ConfigError, match="version 99"):
        read_cyclelog(p)


def test_replay_cli_on_torn_log(tmp_path):
    r = FakeRobot()
    log = tmp_path / "c.jsonl"
    ControlLoop(r, 500.0, log_path=str(log)).run(lambda s, k: np.zeros(N), cycles=20)
    text = log.read_text().splitlines()
    log.write_text("\n".join(text[:-2]) + "\n" + text[-2][: len(text[-2]) // 2])  # crash
    out = subprocess.run([sys.executable, "-m", "metabot", "replay", str(log), "--verify"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "reproduced exactly" in out.stdout and "without a summary" in out.stdout


# ---- ports: one-line errors ---------------------------------------------------------------------
def test_missing_port_error():
    from metabot.hardware.serial_robot import SerialRobot

    with pytest.raises(LinkError, match="no serial port '/dev/ttyNOPE0'.*list_ports"):
        SerialRobot("/dev/ttyNOPE0").connect()


def test_permission_and_busy_messages():
    import serial
    from metabot.hardware.ports import explain_open_error

    e = serial.SerialException(13, "could not open port /dev/ttyUSB0: [Errno 13] Permission denied")
    assert "dialout" in explain_open_error("/dev/ttyUSB0", e) and "udev" in \
        explain_open_error("/dev/ttyUSB0", e)
    e = serial.SerialException("Could not exclusively lock port /dev/ttyUSB0: [Errno 11]")
    assert "busy" in explain_open_error("/dev/ttyUSB0", e)


def test_busy_port_and_silent_device():
    import serial
    from metabot.hardware.serial_robot import SerialRobot

    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        first = serial.Serial(path, 1_000_000, exclusive=True)
        with pytest.raises(LinkError, match="busy"):
            SerialRobot(path).connect()
        first.close()
        t0 = time.monotonic()
        with pytest.raises(LinkError, match="silent"):
            SerialRobot(path, handshake_timeout_s=0.3).connect()
        assert time.monotonic() - t0 < 2.0
    finally:
        os.close(master)
        os.close(slave)


def test_connection_refused():
    from metabot.hardware.serial_robot import SerialRobot

    with pytest.raises(LinkError, match="refused.*mock-robot --tcp"):
        SerialRobot("socket://127.0.0.1:1").connect()


def test_robot_side_imports_no_sim_or_torch():
    code = ("import sys; import metabot.hardware.serial_robot, metabot.hardware.loop, "
            "metabot.hardware.safety, metabot.hardware.replay, metabot.hardware.cyclelog; "
            "bad = [m for m in ('mujoco', 'torch', 'gymnasium', 'metabot.sim', 'metabot.tasks') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
