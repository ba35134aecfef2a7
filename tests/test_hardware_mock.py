"""SerialRobot against the in-process MuJoCo mock robot: watchdog, link loss, corruption,
reboot, limits, handshake errors. Every check of what the arm does is made from the mock's
side (`MockRobot.status()`), not from what the host believes."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

pytest.importorskip("mujoco")

from metabot.hardware import protocol_mock  # noqa: E402
from metabot.hardware.loop import ControlLoop  # noqa: E402
from metabot.hardware.mock_robot import MockRobot, serve_inprocess  # noqa: E402
from metabot.hardware.safety import LINK_LOSS, SafetyConfig  # noqa: E402
from metabot.hardware.serial_robot import SerialRobot  # noqa: E402

from metabot.bridge import HelloAck  # noqa: E402
from metabot.errors import LinkError, SafetyError  # noqa: E402

_names = itertools.count()


@pytest.fixture
def mock():
    m = MockRobot(seed=3).start()
    name = f"t{next(_names)}"
    m.url = serve_inprocess(m, name)
    yield m
    m.stop()
    protocol_mock.unregister(name)


def robot(m, **kw) -> SerialRobot:
    kw.setdefault("handle_signals", False)
    kw.setdefault("watchdog_s", 1.5)  # the watchdog tests set their own; a busy CI box stalls
    kw.setdefault("handshake_timeout_s", 3.0)
    return SerialRobot(m.url, **kw)


def wait_for(pred, timeout=2.0, step=0.002):
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def drive(r: SerialRobot, target, seconds: float, rate: float = 200.0) -> None:
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        r.send_command(target)
        time.sleep(1.0 / rate)


@pytest.mark.parametrize("action,expect", [("hold", "holding"), ("torque_off", "torque_off")])
def test_watchdog_takes_over_when_host_goes_silent(mock, action, expect):
    r = robot(mock, watchdog_s=0.25, watchdog_action=action, hold_effort_frac=0.8)
    r.connect()
    r.enable()
    q = r.read_state().positions.copy()
    drive(r, q, 0.2)
    # The arm tracked the commands (or, if this process was starved for longer than the
    # 250 ms watchdog right after driving, the watchdog has already taken over).
    assert wait_for(lambda: (s := mock.status())["state"] == "moving" or s["watchdog_tripped"])
    overruns = mock.overruns
    st = wait_for(lambda: (s := mock.status())["watchdog_tripped"] and s, timeout=2.0)
    assert st and st["state"] == expect
    fault = wait_for(lambda: r.faults and r.faults[-1], timeout=1.0)
    # by the MCU's clock: not before the timeout, and on time unless the emulated MCU itself
    # was starved of CPU (a loaded machine; counted as overruns) - a real MCU is not
    assert fault.code == 1 and fault.value >= 250
    if mock.overruns == overruns:
        assert fault.value <= 250 + 25
    if action == "hold":
        assert np.allclose(st["effort_limit"], 0.8 * np.array(r.description.effort_limit),
                           rtol=1e-5)
        time.sleep(1.5)  # a P servo sags to a new equilibrium, then holds still
        later = mock.status()
        assert np.max(np.abs(later["qd"])) < 0.05
        assert np.max(np.abs(np.array(later["q"]) - st["q"])) < 0.3
    with pytest.raises(SafetyError, match="watchdog"):
        r.send_command(q)  # latched until enable()
    for _ in range(3):  # re-arm (a starved test process may trip the 250 ms watchdog again)
        r.enable()
        try:
            drive(r, q, 0.05)
        except SafetyError:
            continue
        if wait_for(lambda: mock.status()["state"] == "moving"):
            break
    assert mock.status()["armed"]
    r.close()


def test_host_detects_link_loss_in_time(mock):
    r = robot(mock, watchdog_s=0.1)
    r.connect()
    r.enable()
    q = r.read_state().positions.copy()
    cut = {}

    def policy(state, k):
        cut["n"] = cut.get("n", 0) + 1
        if cut["n"] == 20:  # by call count: cycles may be skipped on a busy machine
            cut["t"] = time.monotonic()
            mock.disconnect(1.5)
        return q

    # 0.2 s: an in-process mock shares this process's CPU; on a loaded machine a shorter
    # limit can see a starved mock as a lost link before the cut
    loop = ControlLoop(r, 100.0, safety=SafetyConfig(link_timeout_s=0.2))
    with pytest.raises(SafetyError, match="link lost") as err:
        loop.run(policy, seconds=5.0)
    assert loop.stats.stop_reason == "link_loss" and loop.stats.interventions["link_loss"] == 1
    age_ms = float(err.value.args[0].split("no valid state for ")[1].split(" ms")[0])
    assert 200 <= age_ms < 1500  # not before the limit, and during the outage
    if "t" in cut:  # (a starved in-process mock can look lost before the cut: also a loss)
        assert time.monotonic() - cut["t"] < 1.5
    # the MCU, hearing nothing, holds on its own
    st = wait_for(lambda: (s := mock.status())["watchdog_tripped"] and s, timeout=2.0)
    assert st and st["state"] == "holding"
    r.close()


def test_corrupt_and_dropped_bytes_never_move_a_joint(mock):
    r = robot(mock, watchdog_s=0.5)
    r.connect()
    r.enable()
    q0 = r.read_state().positions.astype(np.float32)
    a, b = q0.copy(), q0.copy()
    b[:3] += 0.05
    allowed = {tuple(a), tuple(b)}
    mock.set_faults(drop=0.0005, corrupt=0.0005)
    seen = 0
    t_end = time.monotonic() + 1.5
    k = 0
    while time.monotonic() < t_end:
        target = a if (k // 40) % 2 == 0 else b
        try:
            r.send_command(target.astype(np.float64))
        except SafetyError:  # a stall on a loaded box let the watchdog trip: the MCU holds
            r.enable()
        k += 1
        st = mock.status()
        if st["state"] == "moving":
            assert tuple(np.float32(st["targets"])) in allowed  # only values the host sent
            seen += 1
        time.sleep(0.005)
    assert seen > 20
    s = mock.status()
    assert s["bytes_corrupted"] > 0 and s["bytes_dropped"] > 0
    assert sum(s["rx_rejected"].values()) > 0 or r.decoder.total_rejected > 0
    # faults off: the link recovers by itself
    mock.set_faults(drop=0.0, corrupt=0.0)
    time.sleep(0.05)
    if r.read_state().watchdog_tripped or r._latched:
        r.enable()
    drive(r, a, 0.1)
    last = r.send_command(a.astype(np.float64))
    st = wait_for(lambda: (s := r.read_state()).command_seq == last and s, timeout=1.0)
    assert st and time.monotonic() - st.received_at < 0.05
    assert np.array_equal(np.float32(mock.status()["targets"]), a)


def test_reboot_is_detected_and_nothing_moves_until_reenabled(mock):
    r = robot(mock)
    r.connect()
    r.enable()
    q = r.read_state().positions.copy()
    drive(r, q, 0.1)
    session = r.session_id
    mock.reboot()
    assert wait_for(lambda: r.rebooted, timeout=1.0)
    with pytest.raises(LinkError, match="rebooted"):
        r.send_command(q)
    st = mock.status()
    assert st["boots"] == 2 and not st["handshaked"] and st["state"] == "holding"
    r.reconnect()
    assert r.session_id != session and not r.rebooted
    away = q.copy()
    away[0] += 0.3
    drive(r, away, 0.15)  # not enabled after the reboot: refused by the MCU
    st = mock.status()
    assert st["state"] == "holding" and abs(st["q"][0] - q[0]) < 0.02
    assert r.nacks.get("DISABLED", 0) > 0
    r.enable()
    drive(r, away, 0.05)
    assert wait_for(lambda: mock.status()["state"] == "moving")
    r.close()


def test_commands_beyond_limits_are_clamped_never_passed(mock):
    r = robot(mock)
    r.connect()
    r.enable()
    d = r.description
    q = r.read_state().positions.copy()
    far = q.copy()
    far[0] = d.position_upper[0] + 5.0
    r.send_command(far)  # host clamps
    assert wait_for(lambda: abs(mock.status()["targets"][0] - d.position_upper[0]) < 1e-6)
    with pytest.raises(SafetyError, match="non-finite"):
        r.send_command(np.full(6, np.nan))
    # bypass the host's checks: the MCU clamps (and flags it), or refuses NaN
    r._send_command(np.where(np.arange(6) == 1, -9.0, q), "position")
    st = wait_for(lambda: (s := r.read_state()).extra["limit_clamped"] and s, timeout=0.5)
    assert st and mock.status()["targets"][1] == pytest.approx(d.position_lower[1], abs=1e-6)
    before = mock.status()["targets"]
    r._send_command(np.full(6, np.nan), "position")
    assert wait_for(lambda: r.nacks.get("RANGE", 0) > 0, timeout=0.5)
    assert mock.status()["targets"] == before
    r.close()


def test_loop_over_mock_logs_rtt_and_leaves_it_holding(mock, tmp_path):
    r = robot(mock)
    with r:
        r.enable()
        q = r.read_state().positions.copy()
        stats = ControlLoop(r, 200.0, safety=SafetyConfig(link_timeout_s=1.0),
                            log_path=str(tmp_path / "log.jsonl")).run(
            lambda s, k: q + 0.02 * np.sin(k / 20), seconds=0.5)
        assert stats.rtt_samples > 10 and stats.rtt_p50_us > 1000  # >= 2 x 0.5 ms latency
        assert stats.interventions["link_loss"] == 0
    assert mock.status()["state"] == "holding"  # the context's default exit


def test_round_trip_is_the_links_own_not_the_control_period(mock):
    """At 20 Hz the next cycle comes 50 ms later; the round trip (two 0.5-2 ms wires and a
    1 kHz servo tick) is timed from the backend's echo, not from that cycle."""
    r = robot(mock)
    with r:
        r.enable()
        q = r.read_state().positions.copy()
        stats = ControlLoop(r, 20.0, safety=SafetyConfig(link_timeout_s=1.0)).run(
            lambda s, k: q, seconds=0.5)
    assert stats.rtt_samples >= 5
    assert 1000 < stats.rtt_p50_us < 10_000 and stats.rtt_p99_us < 25_000


def test_wrong_baud_rate_and_version_mismatch(mock):
    with pytest.raises(LinkError, match="no valid frame: wrong baud rate"):
        robot(mock, baudrate=115200, handshake_timeout_s=0.4).connect()
    p = mock.endpoint.protocol
    i = p.info
    p.hello_ack = lambda nonce: HelloAck(2, nonce, i.firmware_id, p.session_id, i.control_modes,
                                        i.names_digest, i.pos_min, i.pos_max, i.vel_max,
                                        i.effort_max)
    with pytest.raises(LinkError, match="host speaks v1, firmware speaks v2"):
        robot(mock).connect()
    assert mock.status()["state"] == "holding"


def test_joint_names_are_checked(mock):
    names = list(mock.joint_names)
    r = robot(mock, joint_names=names)
    r.connect()
    assert r.description.joint_names == tuple(names)
    r.close()
    with pytest.raises(LinkError, match="joint names differ"):
        robot(mock, joint_names=names[::-1]).connect()


def test_home_is_a_driven_move_and_payload_change(mock):
    r = robot(mock, home=mock.dist.arm.home)
    with r:
        r.enable()
        start = r.read_state().positions.copy()
        away = start.copy()
        away[0] += 0.2
        drive(r, away, 0.4)
        speeds = []
        mock.status()  # resets the mock's max-speed record
        err = r.home(speed=1.0, rate_hz=100, timeout=3.0)
        speeds.append(mock.status()["max_speed_since_last_status"])
        assert err == pytest.approx(np.max(np.abs(r.read_state().positions - r.description.home)),
                                    abs=0.02)
        assert err < 0.15  # a P servo under gravity settles a little short of its target
        assert speeds[0] < 3.0  # driven at a bounded speed, not teleported
        mock.set_payload(0.4)
        assert mock.hidden_params()["payload_kg"] == pytest.approx(0.4)
    assert "kp" in mock.hidden_params()["servo"]


def test_link_loss_mask_in_log(mock, tmp_path):
    r = robot(mock)
    r.connect()
    r.enable()
    q = r.read_state().positions.copy()
    log = tmp_path / "l.jsonl"

    calls = []

    def policy(state, k):
        calls.append(k)
        if len(calls) == 5:
            mock.disconnect(1.0)
        return q

    with pytest.raises(SafetyError):
        ControlLoop(r, 100.0, safety=SafetyConfig(link_timeout_s=0.2),
                    log_path=str(log)).run(policy, seconds=3)
    from metabot.hardware.cyclelog import read_cyclelog

    _, recs, summary = read_cyclelog(log)
    assert recs[-1]["interventions"] & LINK_LOSS and recs[-1]["command"] is None
    assert summary["stop_reason"] == "link_loss"
    r.close()


def test_estop_is_torque_off_and_latched(mock):
    r = robot(mock)
    with r:
        r.enable()
        q = r.read_state().positions.copy()
        drive(r, q, 0.05)
        r.estop()
        st = wait_for(lambda: (s := mock.status())["estopped"] and s)
        assert st and st["state"] == "torque_off"
        with pytest.raises(SafetyError, match="e-stopped"):
            r.send_command(q)
        with pytest.raises(LinkError, match="ESTOPPED"):
            r.hold()  # the MCU refuses to hold after an e-stop: only enable() re-arms
    assert mock.status()["state"] == "torque_off"  # the context keeps it off after an e-stop


def test_replay_on_the_robot(mock, tmp_path):
    from metabot.hardware.replay import play

    log = tmp_path / "c.jsonl"
    r = robot(mock)
    with r:
        r.enable()
        q = r.read_state().positions.copy()
        ControlLoop(r, 100.0, log_path=str(log), safety=SafetyConfig(link_timeout_s=1.0)).run(
            lambda s, k: q + np.r_[0.1 * min(k, 30) / 30, np.zeros(5)], cycles=40)
        r.move_to(q, speed=1.0)
        stats = play(str(log), r)
        # Every logged command is played once at most; on a loaded machine the loop may skip
        # late cycles (counted) or send nothing when the state is stale, never extra ones.
        assert stats.commands_sent + stats.skipped_cycles <= 40
        assert stats.commands_sent >= 20
        assert mock.status()["targets"][0] == pytest.approx(q[0] + 0.1, abs=1e-5)
