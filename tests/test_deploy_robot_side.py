"""`metabot deploy` runs on the core install and a killed deploy leaves the arm held.

Both tests drive a mock robot in ANOTHER process over a pseudo-terminal, as the demo does.
The deploy process runs with an import hook that makes `import torch` and `import mujoco`
fail, so any use of either on the robot side is an error, not a slowdown.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from metabot.deploy.demo import shipped_agents
from metabot.deploy.mockproc import MockProcess

BLOCKER = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'mujoco', 'gymnasium'):
            raise ImportError('blocked on the robot side: ' + name)
sys.meta_path.insert(0, Block())
from metabot.cli import main
rc = main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'mujoco', 'gymnasium'))
print('HEAVY_MODULES=' + ','.join(heavy), flush=True)
sys.exit(rc)
"""


def _deploy_cmd(agent, port, out, episodes, steps):
    return [sys.executable, "-c", BLOCKER, "deploy", str(agent), "--robot", port,
            "--episodes", str(episodes), "--steps", str(steps), "--out", str(out),
            "--link-timeout", "1.0", "--watchdog", "1.0"]  # slack for a loaded test machine


@pytest.fixture(scope="module")
def agent():
    return shipped_agents()["rma"]


@pytest.mark.timeout(120)
def test_deploy_without_torch_or_mujoco(tmp_path, agent):
    with MockProcess(seed=3, task_index=1, extra_args=("--state-rate", "250"),
                     priority=-10) as mock:
        proc = subprocess.run(_deploy_cmd(agent, mock.port, tmp_path, 2, 40),
                              capture_output=True, text=True, timeout=90)
        state_after = mock.status()["state"]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY_MODULES=\n" in proc.stdout
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["algorithm"] == "rma" and len(rep["episodes"]) == 2
    ep = rep["episodes"][0]
    assert ep["steps"] == 40 and ep["final_tip_error_mm"] > 0
    assert {"adaptation_latency", "safety_interventions", "smoothness"} <= set(ep)
    assert rep["loop"]["commands_sent"] >= 80 and rep["loop"]["rate_hz"] == 50.0
    assert (tmp_path / "adaptation_curve.png").stat().st_size > 1000
    from metabot.hardware.cyclelog import read_cyclelog

    header, records, summary = read_cyclelog(tmp_path / "cycles.jsonl")
    assert summary is not None and len(records) >= 80
    assert state_after in ("holding", "torque_off")  # the normal exit left it safe


@pytest.mark.timeout(120)
def test_sigkill_mid_run_leaves_the_mock_holding(tmp_path, agent):
    with MockProcess(seed=3, task_index=2, extra_args=("--state-rate", "250"),
                     priority=-10) as mock:
        proc = subprocess.Popen(_deploy_cmd(agent, mock.port, tmp_path, 5, 100),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while mock.status()["state"] != "moving":  # the agent has the arm
                assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "deploy never started moving the arm"
                time.sleep(0.05)
            time.sleep(0.7)  # mid-episode
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            # The MCU watchdog (1 s here) trips; the mock, not the host, says so.
            deadline = time.monotonic() + 5.0
            st = mock.status()
            while not st["watchdog_tripped"] and time.monotonic() < deadline:
                time.sleep(0.1)
                st = mock.status()
            assert st["watchdog_tripped"], st
            assert st["state"] in ("holding", "torque_off"), st
            time.sleep(1.0)  # the arm was moving when the host died: let it come to rest
            st_a = mock.status()  # (resets the mock's max-speed tracker)
            time.sleep(0.5)
            st_b = mock.status()  # and it stays put: nothing moves while held
            assert st_b["state"] == st["state"]
            # (joint speeds jitter in the gear backlash of a hold at limited torque; the pose
            # itself must not drift)
            drift = max(abs(a - b) for a, b in zip(st_a["q"], st_b["q"], strict=True))
            assert drift < 0.02, (drift, st_b)
            assert st_b["max_speed_since_last_status"] < 1.0, st_b
        finally:
            if proc.poll() is None:
                proc.kill()
