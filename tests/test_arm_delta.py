"""Delta joint targets and the command history in the arm observation (sim side)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from metabot.sim import arm, spec

from metabot import tasks
from metabot.errors import ConfigError

SIM = Path(arm.__file__).resolve().parent


@pytest.fixture(scope="module")
def desc():
    base = arm.ArmDescription.from_mjcf(SIM / "arm2d.xml")
    return dataclasses.replace(base, action_step=0.1, command_history=3)


def test_delta_targets_step_from_the_last_target_and_invert(desc):
    last = np.asarray(desc.home) + np.array([0.2, -0.3])
    a = np.array([0.5, -1.0])
    t = arm.action_to_target(desc, a, last)
    np.testing.assert_allclose(t, last + 0.1 * a)
    np.testing.assert_allclose(arm.target_to_action(desc, t, last), a)
    # clipped to the joint limits, and the inverse reports the step actually taken
    at_limit = np.asarray(desc.upper) - 0.02
    t = arm.action_to_target(desc, np.ones(2), at_limit)
    np.testing.assert_allclose(t, desc.upper)
    np.testing.assert_allclose(arm.target_to_action(desc, t, at_limit), [0.2, 0.2])
    with pytest.raises(ValueError, match="last target"):
        arm.action_to_target(desc, a)


def test_absolute_mode_ignores_the_last_target():
    base = arm.ArmDescription.from_mjcf(SIM / "arm2d.xml")
    a = np.array([0.3, -0.4])
    np.testing.assert_allclose(arm.action_to_target(base, a, np.ones(2)),
                               arm.action_to_target(base, a))


def test_observation_holds_the_sent_targets_newest_first(desc):
    n = desc.n_joints
    q = np.asarray(desc.home) + 0.1
    sent = np.asarray(desc.home) + np.array([[0.3, 0.0], [0.2, 0.1], [0.1, 0.2], [9.0, 9.0]])
    obs = arm.observe(desc, q, np.zeros(n), np.zeros(n), np.zeros(3), sent)
    assert obs.shape == (desc.obs_dim,) and desc.obs_dim == 6 * n + 9
    tail = obs[3 * n + 9:].reshape(3, n)
    for i in range(3):  # scaled like joint_pos; only the newest H are used
        expect = arm.observe(desc, sent[i], np.zeros(n), np.zeros(n), np.zeros(3), sent)[:n]
        np.testing.assert_allclose(tail[i], expect)
    with pytest.raises(ValueError, match="last 3 targets"):
        arm.observe(desc, q, np.zeros(n), np.zeros(n), np.zeros(3))


def _delta_spec(tmp_path, step="0.1", history="3") -> Path:
    text = (SIM / "arm2d.toml").read_text()
    text = text.replace('model = "arm2d.xml"', f'model = "{SIM / "arm2d.xml"}"')
    for key in ("action_step", "command_history"):  # drop the shipped setting, if any
        text = "\n".join(ln for ln in text.splitlines() if not ln.startswith(key))
    text = text.replace("[distribution]", f"[distribution]\naction_step = {step}\n"
                        f"command_history = {history}", 1)
    p = tmp_path / "arm2d_delta.toml"
    p.write_text(text)
    return p


def test_env_integrates_delta_actions_and_observes_the_history(tmp_path):
    dist = tasks.from_spec(_delta_spec(tmp_path))
    assert dist.arm.action_step == 0.1 and dist.obs_dim == 6 * 2 + 9
    env = dist.make_vec_env(dist.sample(3, split="train", seed=0), seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, dist.obs_dim)
    b = env.batch
    home = np.asarray(dist.arm.home)
    targets = [np.tile(home, (3, 1))] * 3  # the episode starts from home
    rng = np.random.default_rng(0)
    for _ in range(4):
        a = rng.uniform(-1, 1, size=(3, 2))
        obs, *_ = env.step(a)
        targets.insert(0, np.clip(targets[0] + 0.1 * a, dist.arm.lower, dist.arm.upper))
        np.testing.assert_allclose(b.hist[:, 0], targets[0])
        tail = obs[:, 3 * 2 + 9:].reshape(3, 3, 2)
        for i in range(3):
            q_like = arm.observe(dist.arm, targets[i], np.zeros((3, 2)), np.zeros((3, 2)),
                                 np.zeros((3, 3)), np.stack(targets[:3], 1))[:, :2]
            np.testing.assert_allclose(tail[:, i], q_like, atol=1e-6)


@pytest.mark.parametrize("step,history,match", [("-0.1", "3", "action_step"),
                                                ("0.1", "2.5", "command_history"),
                                                ("0.1", "99", "command_history")])
def test_spec_rejects_bad_delta_settings(tmp_path, step, history, match):
    with pytest.raises(ConfigError, match=match):
        spec.load_spec(_delta_spec(tmp_path, step, history))


def test_artifact_metadata_names_the_delta_mode_and_the_history(tmp_path):
    pytest.importorskip("torch")
    from metabot.algos.agents import MLPAgent
    from metabot.export.metadata import build_metadata
    from metabot.runtime.robot import arm_from_metadata

    dist = tasks.from_spec(_delta_spec(tmp_path))
    agent = MLPAgent(dist.obs_dim, dist.act_dim, dist.oracle_dim)
    meta = build_metadata(agent, {"tasks": dist.name, "run_id": "r", "config_digest": "d"}, dist)
    assert meta["action"]["mode"] == "delta" and meta["action"]["step"] == 0.1
    last = meta["observation"]["layout"][-1]
    assert last["name"] == "sent_targets" and last["start"] + last["size"] == dist.obs_dim
    arm_back = arm_from_metadata(meta)  # the deploy side rebuilds the same action mapping
    assert (arm_back.action_step, arm_back.command_history) == (0.1, 3)
