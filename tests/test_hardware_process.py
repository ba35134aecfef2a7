"""A controlling process is interrupted (SIGINT, SIGTERM) or cut off; the mock, in this test
process, says what the arm does. Plus the mock-robot CLI on a pty and TCP reconnects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

pytest.importorskip("mujoco")

from metabot.hardware.mock_robot import MockControl, MockRobot, TcpTransport  # noqa: E402
from metabot.hardware.serial_robot import SerialRobot  # noqa: E402

from metabot.errors import LinkError  # noqa: E402

CONTROLLER = textwrap.dedent("""
    import sys
    from metabot.hardware.loop import ControlLoop
    from metabot.hardware.safety import SafetyConfig
    from metabot.hardware.serial_robot import SerialRobot
    robot = SerialRobot(sys.argv[1], watchdog_s=2.5, on_exit=sys.argv[2],
                        handshake_timeout_s=5.0)
    with robot:
        robot.enable()
        q0 = robot.wait_for_state().positions.copy()
        print("running", flush=True)
        ControlLoop(robot, 100.0, safety=SafetyConfig(link_timeout_s=0.5)).run(
            lambda s, k: q0, seconds=60)
""")


@pytest.fixture
def tcp_mock():
    m = MockRobot(seed=5).start()
    t = TcpTransport(m)
    yield m, t
    t.close()
    m.stop()


def wait_for(pred, timeout=3.0):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        v = pred()
        if v:
            return v
        time.sleep(0.005)
    return pred()


@pytest.mark.parametrize("sig,on_exit,expect", [
    (signal.SIGINT, "hold", "holding"),
    (signal.SIGTERM, "hold", "holding"),
    (signal.SIGTERM, "torque_off", "torque_off"),
])
def test_signal_to_controller_leaves_mock_safe(tcp_mock, sig, on_exit, expect):
    mock, transport = tcp_mock
    proc = subprocess.Popen([sys.executable, "-c", CONTROLLER, transport.url, on_exit],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "running", proc.stderr.read()
        assert wait_for(lambda: mock.status()["state"] == "moving", timeout=10.0)
        t_sig = time.monotonic()
        proc.send_signal(sig)
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    st = mock.status()
    # the watchdog is 2.5 s: a safe state this soon was the host's doing, not the watchdog's
    assert time.monotonic() - t_sig < 2.5 and not st["watchdog_tripped"]
    assert st["state"] == expect
    assert rc == (143 if sig == signal.SIGTERM else 130) or rc == -sig


def test_killed_controller_is_caught_by_watchdog(tcp_mock):
    mock, transport = tcp_mock
    code = CONTROLLER.replace("watchdog_s=2.5", "watchdog_s=0.1")
    proc = subprocess.Popen([sys.executable, "-c", code, transport.url, "hold"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "running", proc.stderr.read()
    proc.kill()  # SIGKILL: no handler runs, nothing is sent
    proc.wait(timeout=10)
    st = wait_for(lambda: (s := mock.status())["watchdog_tripped"] and s, timeout=2.0)
    assert st and st["state"] == "holding"


def test_tcp_disconnect_and_reconnect(tcp_mock):
    mock, transport = tcp_mock
    r = SerialRobot(transport.url, watchdog_s=1.0, handle_signals=False)
    r.connect()
    r.enable()
    q = r.read_state().positions.copy()
    mock.disconnect(0.3)
    with pytest.raises(LinkError):
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            r.send_command(q)
            time.sleep(0.01)
    time.sleep(0.35)
    r.reconnect()
    assert not r.read_state().enabled  # a new handshake never re-arms by itself
    r.enable()
    r.send_command(q)
    assert wait_for(lambda: mock.status()["state"] == "moving")
    r.close()


def test_mock_robot_cli_on_pty_with_side_channel(tmp_path):
    params = tmp_path / "hidden.json"
    proc = subprocess.Popen([sys.executable, "-m", "metabot", "mock-robot", "--pty",
                             "--control-port", "0", "--seed", "2", "--params-json", str(params)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/") and os.path.exists(path), proc.stderr.read()
        port = int(proc.stderr.readline().rsplit(":", 1)[1])
        ctl = MockControl(port)
        assert ctl.params()["seed"] == 2 and params.exists()
        with SerialRobot(path, handle_signals=False, watchdog_s=1.0) as r:
            r.enable()
            q = r.read_state().positions
            for _ in range(20):
                r.send_command(q)
                time.sleep(0.005)
            assert ctl.status()["state"] == "moving"
            ctl.call("payload", kg=0.3)
            assert ctl.params()["payload_kg"] == pytest.approx(0.3)
        assert ctl.status()["state"] == "holding"
        with pytest.raises(LinkError, match="unknown op"):
            ctl.call("teleport")
        # wrong baud rate on a real pty: the mock sees the host's setting and garbles
        with pytest.raises(LinkError, match="wrong baud rate"):
            SerialRobot(path, baudrate=115200, handshake_timeout_s=0.5).connect()
        ctl.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("argv,msg", [
    (["mock-robot", "--tcp", "1", "--drop", "2"], "--drop must be a probability"),
    (["mock-robot", "--pty", "--task", "nope"], "nope"),
    (["bench", "link", "--rate", "500"], "give --robot URL"),
    (["bench", "link", "--robot", "/dev/ttyNOPE9", "--seconds", "1"], "no serial port"),
    (["replay", "/nonexistent.jsonl"], "no such cycle log"),
])
def test_cli_bad_input_is_one_line(argv, msg):
    out = subprocess.run([sys.executable, "-m", "metabot", *argv], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("metabot: error:") and msg in lines[0], \
        out.stderr


def test_side_channel_is_not_the_robot_port(tcp_mock):
    """The hidden parameters are never reachable through the robot protocol."""
    mock, transport = tcp_mock
    r = SerialRobot(transport.url, handle_signals=False)
    r.connect()
    d = r.description
    hidden = mock.hidden_params()
    assert not hasattr(r, "hidden_params")
    assert d.firmware.startswith("0x") and "task" not in str(d.to_dict())
    assert np.all(d.effort_limit > 0) and hidden["servo"]["kp"]
    r.close()


def test_bench_link_writes_the_issue_keys(tmp_path):
    out = tmp_path / "link.json"
    res = subprocess.run([sys.executable, "-m", "metabot", "bench", "link", "--spawn-mock", "tcp",
                          "--rate", "200", "--seconds", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    import json

    d = json.loads(out.read_text())
    for key in ("rate_hz", "seconds", "period_p50_us", "jitter_p99_us", "missed_deadlines",
                "missed_fraction", "rtt_p50_us", "rtt_p99_us"):
        assert key in d, key
    assert d["rate_hz"] == 200 and 0.9 < d["seconds"] < 1.5
    assert abs(d["period_p50_us"] - 5000) < 1000 and d["rtt_p50_us"] > 1000
