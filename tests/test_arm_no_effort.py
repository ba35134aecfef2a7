"""`observe_effort = false`: the arm observation without the servos' load readings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from metabot.sim import arm, spec

from metabot import tasks
from metabot.errors import ConfigError

SIM = Path(arm.__file__).resolve().parent


def _spec(tmp_path, value: str = "false", history: int = 0) -> Path:
    text = (SIM / "arm2d.toml").read_text()
    text = text.replace('model = "arm2d.xml"', f'model = "{SIM / "arm2d.xml"}"')
    text = "\n".join(ln for ln in text.splitlines()
                     if not ln.startswith(("observe_effort", "command_history")))
    text = text.replace("[distribution]", f"[distribution]\nobserve_effort = {value}\n"
                        f"command_history = {history}", 1)
    p = tmp_path / "arm2d_no_effort.toml"
    p.write_text(text)
    return p


def test_observation_without_effort_is_the_full_one_minus_the_load():
    full = dataclasses.replace(arm.ArmDescription.from_mjcf(SIM / "arm2d.xml"),
                               command_history=2)
    blind = dataclasses.replace(full, observe_effort=False)
    n = full.n_joints
    rng = np.random.default_rng(0)
    q, qd, eff = (rng.normal(size=(4, n)) * 0.1 for _ in range(3))
    goal, sent = rng.normal(size=(4, 3)) * 0.1, rng.normal(size=(4, 2, n)) * 0.1
    o_full = arm.observe(full, q, qd, eff, goal, sent)
    o_blind = arm.observe(blind, q, qd, eff, goal, sent)
    assert o_blind.shape == (4, blind.obs_dim) and blind.obs_dim == full.obs_dim - n
    np.testing.assert_array_equal(o_blind, np.delete(o_full, np.s_[2 * n:3 * n], axis=1))
    # the load no longer reaches the policy at all
    np.testing.assert_array_equal(o_blind, arm.observe(blind, q, qd, 5 * eff, goal, sent))
    goal_minus_tip = (goal - arm.forward_kinematics(full, q)) / arm.ERR_SCALE
    for d, o in ((full, o_full), (blind, o_blind)):
        np.testing.assert_allclose(o[:, d.error_slice], goal_minus_tip, rtol=1e-6, atol=1e-6)


def test_env_and_artifact_follow_the_spec_key(tmp_path):
    dist = tasks.from_spec(_spec(tmp_path, history=1))
    assert dist.arm.observe_effort is False and dist.obs_dim == (2 + 1) * 2 + 9
    env = dist.make_vec_env(dist.sample(3, split="train", seed=0), seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, dist.obs_dim)
    pytest.importorskip("torch")
    from metabot.algos.agents import MLPAgent
    from metabot.export.metadata import build_metadata
    from metabot.runtime.robot import arm_from_metadata

    agent = MLPAgent(dist.obs_dim, dist.act_dim, dist.oracle_dim)
    meta = build_metadata(agent, {"tasks": dist.name, "run_id": "r", "config_digest": "d"}, dist)
    layout = meta["observation"]["layout"]
    assert "joint_effort" not in [p["name"] for p in layout]
    assert layout[-1]["start"] + layout[-1]["size"] == dist.obs_dim
    assert arm_from_metadata(meta).observe_effort is False  # the deploy side observes the same


def test_spec_rejects_a_non_boolean(tmp_path):
    with pytest.raises(ConfigError, match="observe_effort"):
        spec.load_spec(_spec(tmp_path, value='"no"'))
