"""Envs of every distribution: check_env, determinism, sensitivity to dynamics, vector env."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from metabot.sim import arm

from metabot import tasks

ARMS = [n for n in tasks.names() if n.startswith("arm")]


def _rollout(env, actions, seed):
    obs, _ = env.reset(seed=seed)
    out = [np.append(obs, 0.0)]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        out.append(np.append(obs, r))
    return np.array(out)


@pytest.mark.parametrize("name", tasks.names())
def test_check_env_and_dt(name):
    dist = tasks.get(name)
    task = dist.sample(1, split="test", seed=0)[0]
    env = dist.make_env(task, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    assert env.unwrapped.dt == pytest.approx(dist.dt)
    assert env.observation_space.shape == (dist.obs_dim,)


@pytest.mark.parametrize("name", tasks.names())
def test_same_seed_bit_identical(name):
    dist = tasks.get(name)
    task = dist.sample(1, split="train", seed=1)[0]
    env = dist.make_env(task, seed=0)
    env.action_space.seed(0)
    acts = [env.action_space.sample() for _ in range(30)]
    a = _rollout(dist.make_env(task, seed=0), acts, seed=5)
    b = _rollout(dist.make_env(task, seed=0), acts, seed=5)
    assert np.array_equal(a, b)
    c = _rollout(dist.make_env(task, seed=0), acts, seed=6)
    assert not np.array_equal(a, c)  # the seed matters (goal, noise)


@pytest.mark.parametrize("name", ARMS)
def test_mass_and_gain_change_trajectories(name):
    dist = tasks.get(name)
    base = dist.sample(1, split="train", seed=2)[0]
    d = base.to_dict()
    d["params"]["obs_noise"] = [0.0]
    d["params"]["latency"] = [0.0]
    t0 = tasks.Task.from_dict(d)
    heavy = tasks.Task.from_dict({**d, "params": {**d["params"], "payload": [0.2]}})
    weak = tasks.Task.from_dict(
        {**d, "params": {**d["params"], "servo_gain": [0.4] * len(d["params"]["servo_gain"])}}
    )
    acts = [np.full(dist.act_dim, 0.3, dtype=np.float32)] * 40
    ref = _rollout(dist.make_env(t0, seed=0), acts, seed=1)
    for other in (heavy, weak):
        traj = _rollout(dist.make_env(other, seed=0), acts, seed=1)
        assert np.abs(traj[1:, : dist.act_dim] - ref[1:, : dist.act_dim]).max() > 1e-3


@pytest.mark.parametrize("name", ARMS)
def test_build_model_scales_kp_in_gain_and_bias(name):
    dist = tasks.get(name)
    t = dist.sample(1, split="train", seed=4)[0]
    m = dist.build_model(t)
    kp = m.actuator_gainprm[:, 0]
    assert np.allclose(m.actuator_biasprm[:, 1], -kp)
    nominal = dist.build_model(
        tasks.Task.from_dict(
            {**t.to_dict(), "params": {**t.to_dict()["params"], "servo_gain": [1.0] * dist.act_dim}}
        )
    )
    assert np.allclose(kp, nominal.actuator_gainprm[:, 0] * t.param("servo_gain"))
    assert m.opt.timestep == pytest.approx(dist.spec.physics_dt)


@pytest.mark.parametrize("name", ARMS)
def test_vec_env_matches_single_env_and_autoresets(name):
    dist = tasks.get(name)
    ts = dist.sample(3, split="train", seed=5)
    vec = dist.make_vec_env(ts[:1], seed=9)
    assert isinstance(vec, gym.vector.VectorEnv)
    single = dist.make_env(ts[0], seed=9)
    vo, _ = vec.reset(seed=9)
    so, _ = single.reset(seed=9)
    assert np.array_equal(vo[0], so)
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.uniform(-1, 1, (1, dist.act_dim)).astype(np.float32)
        vo, vr, _, _, _ = vec.step(a)
        so, sr, _, _, _ = single.step(a[0])
        assert np.array_equal(vo[0], so) and vr[0] == sr
    vec.close()

    vec = dist.make_vec_env(ts, seed=0)
    obs, _ = vec.reset(seed=0)
    horizon = dist.spec.episode_steps
    for step in range(horizon):
        obs, rew, term, trunc, info = vec.step(np.zeros((3, dist.act_dim), np.float32))
        assert obs.shape == (3, dist.obs_dim) and rew.shape == (3,)
        assert not term.any()
        assert trunc.all() == (step == horizon - 1)
    assert info["_final_obs"].all() and info["final_obs"].shape == (3, dist.obs_dim)
    assert not np.array_equal(info["final_obs"], obs)  # obs already starts the next episode
    assert np.all(info["episode_tip_error"] > 0)
    vec.close()


def test_observation_is_the_shared_numpy_function():
    dist = tasks.get("arm6-reach")
    t = tasks.Task.from_dict(
        {
            **dist.sample(1, seed=0)[0].to_dict(),
        }
    )
    env = dist.make_env(t, seed=0)
    env.reset(seed=0)
    b = env.batch
    q, qd, eff, goal = b.q.copy(), b.qd.copy(), b.effort.copy(), b.goal.copy()
    noise = b.noise.copy()
    b.noise[:] = 0.0
    obs = b.observe()
    b.noise[:] = noise
    expect = arm.observe(dist.arm, b._encoder(q), qd, eff, goal)
    assert np.array_equal(obs, expect)
    assert np.allclose(
        obs[0, -3:] * arm.ERR_SCALE,
        goal[0] - arm.forward_kinematics(dist.arm, b._encoder(q[0])),
        atol=1e-6,
    )


def test_gym_dynamics_change_trajectories():
    dist = tasks.get("cheetah-dyn")
    t = dist.sample(1, seed=0)[0].to_dict()
    n = len(t["params"]["body_mass"])
    light = tasks.Task.from_dict({**t, "params": {**t["params"], "body_mass": [0.5] * n}})
    heavy = tasks.Task.from_dict({**t, "params": {**t["params"], "body_mass": [2.0] * n}})
    acts = [np.full(dist.act_dim, 0.5, dtype=np.float32)] * 20
    a = _rollout(dist.make_env(light, seed=0), acts, seed=0)
    b = _rollout(dist.make_env(heavy, seed=0), acts, seed=0)
    assert np.array_equal(a[0], b[0]) and np.abs(a[1:] - b[1:]).max() > 1e-3


def test_cartpole_batch_matches_reference_and_autoresets():
    dist = tasks.get("cartpole-dyn")
    ts = dist.sample(4, split="train", seed=0)
    ref, ours = dist.make_gym_env(ts[0], seed=0), dist.make_env(ts[0], seed=0)
    ref_obs, _ = ref.reset(seed=0)
    ours.reset(seed=0)
    data = ref.unwrapped.data
    ours.batch.set_state(np.array([0]), data.qpos.copy()[None], data.qvel.copy()[None])
    rng = np.random.default_rng(0)
    for _ in range(15):
        a = int(rng.integers(2))
        assert np.array_equal(ref.step(a)[0], ours.step(a)[0])
    vec = dist.make_vec_env(ts, seed=3)
    try:
        assert isinstance(vec, gym.vector.VectorEnv)
        assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
        vec.reset(seed=3)
        seen_done = False
        for _ in range(60):  # a constant push topples every pole well within 60 steps
            obs, rew, term, trunc, info = vec.step(np.ones(4, dtype=np.int64))
            done = term | trunc
            if done.any():
                seen_done = True
                assert info["_final_obs"][done].all()
                # the returned obs already starts a new episode: near upright again
                assert np.all(np.abs(obs[done, 1]) < 0.1)
                assert np.all(np.abs(info["final_obs"][done, 1]) > 0.15)
        assert seen_done
    finally:
        vec.close()


def test_process_vec_env_same_step_autoreset():
    dist = tasks.get("fetch-reach-dyn")
    ts = dist.sample(2, split="train", seed=0)
    vec = dist.make_vec_env(ts, seed=3)
    try:
        assert isinstance(vec, gym.vector.VectorEnv)
        assert vec.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
        obs, _ = vec.reset(seed=3)
        ref = np.stack([dist.make_env(t, seed=3 + i).reset()[0] for i, t in enumerate(ts)])
        assert np.array_equal(obs, ref)
        for step in range(dist.spec.episode_steps):
            obs, rew, term, trunc, info = vec.step(np.zeros((2, dist.act_dim), np.float32))
            assert trunc.all() == (step == dist.spec.episode_steps - 1)
        assert info["_final_obs"].all() and not np.array_equal(info["final_obs"], obs)
        assert "is_success" in info and "_is_success" in info
    finally:
        vec.close()


@pytest.mark.parametrize("name", ["cheetah-vel", "cheetah-dir", "cheetah-dyn", "ant-dir"])
def test_batched_cheetah_matches_gymnasium(name):
    """The rollout-batched HalfCheetah equals gymnasium's HalfCheetah-v5 on the same model."""
    dist = tasks.get(name)
    task = dist.sample(1, split="test", seed=0)[0]
    ref, ours = dist.make_gym_env(task, seed=0), dist.make_env(task, seed=0)
    ref_obs, _ = ref.reset(seed=0)
    ours.reset(seed=0)
    data = ref.unwrapped.data
    ours.batch.set_state(np.array([0]), data.qpos.copy()[None], data.qvel.copy()[None])
    assert np.array_equal(ours.batch.obs()[0], ref_obs)
    rng = np.random.default_rng(0)
    for _ in range(20):  # later steps drift apart chaotically from solver warm-start differences
        a = rng.uniform(-1, 1, dist.act_dim).astype(np.float32)
        o1, r1, *_ = ref.step(a)
        o2, r2, *_ = ours.step(a)
        # ant-dir: same obs; reward without the contact cost and with qpos-based velocity
        tol = 0.1 if name == "ant-dir" else 1e-6
        assert np.allclose(o1, o2, atol=1e-6) and abs(r1 - r2) < tol


def test_cheetah_vec_env_matches_single_and_autoresets():
    dist = tasks.get("cheetah-vel")
    ts = dist.sample(2, split="train", seed=1)
    vec = dist.make_vec_env(ts[:1], seed=4)
    single = dist.make_env(ts[0], seed=4)
    assert np.array_equal(vec.reset(seed=4)[0][0], single.reset(seed=4)[0])
    a = np.full((1, dist.act_dim), 0.2, np.float32)
    for _ in range(5):
        vo, vr, *_ = vec.step(a)
        so, sr, *_ = single.step(a[0])
        assert np.array_equal(vo[0], so) and vr[0] == sr
    vec.close()
    vec = dist.make_vec_env(ts, seed=0)
    vec.reset(seed=0)
    for step in range(dist.spec.episode_steps):
        obs, rew, term, trunc, info = vec.step(np.zeros((2, dist.act_dim), np.float32))
        assert trunc.all() == (step == dist.spec.episode_steps - 1) and not term.any()
    assert info["_final_obs"].all() and not np.array_equal(info["final_obs"], obs)
    vec.close()


@pytest.mark.parametrize("name", ["arm6-reach", "cheetah-dyn", "cartpole-dyn"])
def test_set_tasks_switches_dynamics_mid_episode(name):
    dist = tasks.get(name)
    before = dist.sample(2, split="train", seed=0)
    after = dist.sample(2, split="fault" if name.startswith("arm") else "ood", seed=0)
    runs = []
    for switch in (False, True):
        vec = dist.make_vec_env(before, seed=0)
        vec.reset(seed=0)
        obs = []
        for t in range(12):
            if switch and t == 6:
                vec.set_tasks(after)
            a = (
                np.zeros((2, dist.act_dim), np.float32)
                if dist.action_type != "discrete"
                else (np.ones(2, np.int64))
            )
            obs.append(vec.step(a)[0])
        vec.close()
        runs.append(np.array(obs))
    assert np.array_equal(runs[0][:6], runs[1][:6])  # identical until the switch
    assert not np.array_equal(runs[0][7:], runs[1][7:])  # different dynamics after it


COMMAND_DELAY_PARAM = """
[[param]]
name = "command_delay"
target = "command_delay"
range = [0.0, 0.016]
unit = "s"
why = "a serial link's transport and the host's compute"
"""


def test_command_delay_holds_the_previous_command_into_the_step(tmp_path):
    spec = Path(arm.__file__).with_name("arm6.toml")
    text = spec.read_text().replace('model = "arm6.xml"', f'model = "{spec.with_name("arm6.xml")}"')
    path = tmp_path / "arm6_cd.toml"
    path.write_text(text + COMMAND_DELAY_PARAM)
    dist = tasks.from_spec(path)
    d = dist.sample(1, split="train", seed=3)[0].to_dict()
    for name, value in (("obs_noise", 0.0), ("latency", 0.0), ("backlash", 0.0)):
        d["params"][name] = [value]
    fast = tasks.Task.from_dict({**d, "params": {**d["params"], "command_delay": [0.0]}})
    slow = tasks.Task.from_dict({**d, "params": {**d["params"], "command_delay": [0.016]}})
    home = np.asarray(dist.arm.home)
    hold = arm.target_to_action(dist.arm, home, home).astype(np.float32)  # command home
    move = np.full(dist.act_dim, 0.3, dtype=np.float32)
    acts = [hold] * 5 + [move] * 5
    a = _rollout(dist.make_env(fast, seed=0), acts, seed=1)
    b = _rollout(dist.make_env(slow, seed=0), acts, seed=1)
    n = dist.act_dim
    # repeating the same command: the delay changes nothing
    assert np.array_equal(a[:6], b[:6])
    # a new command acts 8 of 10 substeps later: the joints have moved less after that step
    moved_fast = np.abs(a[6, :n] - a[5, :n]).sum()
    moved_slow = np.abs(b[6, :n] - b[5, :n]).sum()
    assert moved_slow < 0.5 * moved_fast
