"""The deploy loop: same goals and observation as training, the applied command fed back."""

import numpy as np
import pytest
from metabot.sim import arm as armlib

from metabot import runtime, tasks
from metabot.deploy import loop as dl
from metabot.deploy.demo import shipped_agents


@pytest.fixture(scope="module")
def rma():
    return runtime.load(shipped_agents()["rma"])


def test_goal_region_matches_the_training_env():
    from metabot.sim import arm_env

    assert (dl.GOAL_SPREAD, dl.GOAL_MIN_Z, dl.GOAL_MIN_RADIUS) == (
        arm_env.GOAL_SPREAD, arm_env.GOAL_MIN_Z, arm_env.GOAL_MIN_RADIUS)
    dist = tasks.get("arm6-reach")
    env = dist.make_env(dist.sample(1, split="test", seed=0)[0])
    env.unwrapped.batch.rng = np.random.default_rng(11)
    np.testing.assert_array_equal(
        env.unwrapped.batch._sample_goals(4), dl.sample_goals(dist.arm, 4, 11))


def test_arm_from_artifact_is_the_training_arm(rma):
    arm = dl.arm_from_metadata(rma.metadata)
    ref = tasks.get("arm6-reach").arm
    assert arm.joints == ref.joints
    q = np.random.default_rng(0).uniform(ref.lower, ref.upper, size=(16, ref.n_joints))
    np.testing.assert_allclose(armlib.forward_kinematics(arm, q),
                               armlib.forward_kinematics(ref, q), atol=1e-12)


class Spy:
    """Delegates to the runtime agent; records what deploy feeds back as applied."""

    def __init__(self, agent):
        self._agent = agent
        self.applied, self.actions = [], []

    def __getattr__(self, name):
        return getattr(self._agent, name)

    def act(self, obs, **kw):
        a = self._agent.act(obs, **kw)
        self.actions.append(a)
        return a

    def record_applied(self, a):
        self.applied.append(np.asarray(a).copy())
        self._agent.record_applied(a)


@pytest.mark.timeout(90)
def test_deploy_feeds_back_the_command_sent_after_the_safety_layer(tmp_path, rma):
    from metabot.hardware.cyclelog import read_cyclelog
    from metabot.hardware.safety import SafetyConfig

    from metabot.deploy.session import open_robot

    spy = Spy(rma)
    arm = dl.arm_from_metadata(rma.metadata)
    goals = dl.sample_goals(arm, 2, 5)
    url = "mock://?seed=1&split=test&task_index=3"
    log = tmp_path / "cycles.jsonl"
    with open_robot(url, rma.metadata, watchdog_s=2.0, handle_signals=False) as robot:
        robot.enable()
        # a tight step limit (0.02 rad per 20 ms cycle) so the safety layer must intervene
        dep = dl.Deployment(spy, robot, safety=SafetyConfig(link_timeout_s=2.0, max_step=0.02),
                            log_path=str(log))
        res = dep.run([dl.Segment(goals[0], 30, forget=True), dl.Segment(goals[1], 30)])
    assert [r.steps for r in res] == [30, 30]
    assert sum(r.interventions.get("step_clamp", 0) for r in res) > 0
    _, records, _ = read_cyclelog(log)
    run_cycles = [r for r in records if r["command"] is not None]
    sent = {r["k"]: np.asarray(r["command"]) for r in run_cycles}
    # every applied action is a command that went on the wire, mapped back to action space
    wire_actions = [armlib.target_to_action(arm, c) for c in sent.values()]
    for a in spy.applied:
        assert min(np.max(np.abs(a - w)) for w in wire_actions) < 1e-9
    # and it differs from what the policy asked when the safety layer clamped
    diffs = [np.max(np.abs(a - b)) for a, b in zip(spy.applied, spy.actions, strict=False)]
    assert max(diffs) > 0.01
    s = res[0].summary()
    assert s["steps"] == 30 and np.isfinite(s["return"]) and s["final_tip_error_mm"] >= 0
    assert len(res[0].tip_error_m) == 30 and res[0].applied.shape == (30, arm.n_joints)


def test_oracle_without_privileged_features_is_refused():
    from metabot.errors import ConfigError

    oracle = runtime.load(shipped_agents()["oracle"])
    assert dl.needs_privileged(oracle)

    class FakeRobot:
        class description:
            joint_names = tuple(dl.arm_from_metadata(oracle.metadata).joints)

    with pytest.raises(ConfigError, match="privileged"):
        dl.Deployment(oracle, FakeRobot())

    class OtherArm:
        class description:
            joint_names = ("a", "b")

    with pytest.raises(ConfigError, match="joint map"):
        dl.Deployment(oracle, OtherArm(), privileged=lambda: np.zeros(14))


class HeadSpy(Spy):
    """Pretends to be a gradient agent with an adapt() step (head-only, or the model inner
    loss's context): explores, adapts between episodes."""

    def __init__(self, agent, kind="head"):
        super().__init__(agent)
        meta = dict(agent.metadata)
        meta["adaptation"] = {"kind": kind}
        self.metadata = meta
        self.adapt_calls = []
        self.last_sample = None

    def act(self, obs, explore=False, **kw):
        assert explore  # head agents sample during deploy episodes
        a = super().act(obs, **kw)
        self.last_sample = a + 0.01
        return a

    def adapt(self, transitions):
        self.adapt_calls.append({k: np.asarray(v).shape for k, v in transitions.items()})
        self.adapt_ends = np.asarray(transitions["ends"])
        return {"steps": len(transitions["rewards"])}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", ["head", "model"])
def test_head_agents_adapt_between_episodes_on_all_episodes_so_far(rma, kind):
    from metabot.hardware.safety import SafetyConfig

    from metabot.deploy.session import open_robot

    spy = HeadSpy(rma, kind)
    arm = dl.arm_from_metadata(rma.metadata)
    goals = dl.sample_goals(arm, 3, 7)
    with open_robot("mock://?seed=2&split=test&task_index=4", rma.metadata, watchdog_s=2.0,
                    handle_signals=False) as robot:
        robot.enable()
        dep = dl.Deployment(spy, robot, safety=SafetyConfig(link_timeout_s=2.0))
        res = dep.run([dl.Segment(goals[0], 15, forget=True), dl.Segment(goals[1], 15),
                       dl.Segment(goals[2], 15)])
    # after episode 1 and after episode 2 (the third episode's adapt would follow it)
    assert [c["obs"] for c in spy.adapt_calls] == [(15, arm.obs_dim), (30, arm.obs_dim)]
    assert spy.adapt_calls[1]["actions"] == (30, arm.n_joints)
    np.testing.assert_array_equal(np.flatnonzero(spy.adapt_ends), [14, 29])
    assert res[0].adapt == {} and res[1].adapt["steps"] == 15 and res[2].adapt["steps"] == 30


class HistorySpy(Spy):
    """Feeds the shipped (absolute, no-history) agent the observation without the command
    history, so the deploy side of delta actions and history can be checked on a real run."""

    def __init__(self, agent, base_dim):
        super().__init__(agent)
        self.base_dim, self.obs = base_dim, []

    def act(self, obs, **kw):
        self.obs.append(np.asarray(obs).copy())
        return super().act(obs[: self.base_dim], **kw)


@pytest.mark.timeout(90)
def test_deploy_delta_actions_and_command_history_use_the_commands_sent(tmp_path, rma):
    import dataclasses

    from metabot.hardware.cyclelog import read_cyclelog
    from metabot.hardware.safety import SafetyConfig

    from metabot.deploy.session import open_robot

    base = dl.arm_from_metadata(rma.metadata)
    arm = dataclasses.replace(base, action_step=0.05, command_history=3)
    spy = HistorySpy(rma, base.obs_dim)
    goal = dl.sample_goals(arm, 1, 7)[0]
    log = tmp_path / "cycles.jsonl"
    with open_robot("mock://?seed=2&split=test&task_index=1", rma.metadata, watchdog_s=2.0,
                    handle_signals=False) as robot:
        robot.enable()
        dep = dl.Deployment(spy, robot, arm=arm, log_path=str(log),
                            safety=SafetyConfig(link_timeout_s=2.0, max_step=0.03))
        (res,) = dep.run([dl.Segment(goal, 25, forget=True)])
    assert res.steps == 25 and all(o.shape == (arm.obs_dim,) for o in spy.obs)
    _, records, _ = read_cyclelog(log)
    # the run's 25 commands, then the one the finished segment holds
    sent = [np.asarray(r["command"]) for r in records if r["command"] is not None][-26:-1]
    n = arm.n_joints
    for j in range(1, 25):
        # the history is the targets that went on the wire, newest first
        hist = spy.obs[j][base.obs_dim:].reshape(3, n)
        newest = sent[j - 1]  # the command sent in the previous run cycle
        np.testing.assert_allclose(hist[0], armlib.observe(
            arm, newest, np.zeros(n), np.zeros(n), goal, np.stack([newest] * 3))[:n], atol=1e-6)
        # each target is a step of at most action_step from the one sent before it
        want = armlib.action_to_target(arm, spy.actions[j], sent[j - 1])
        step = np.clip(want, sent[j - 1] - 0.03, sent[j - 1] + 0.03)
        np.testing.assert_allclose(sent[j], step, atol=1e-6)
    # the applied action fed back is the delta actually sent, in action units
    for j in range(1, 24):
        np.testing.assert_allclose(
            spy.applied[j], armlib.target_to_action(arm, sent[j], sent[j - 1]), atol=1e-9)
    assert max(np.max(np.abs(a - b)) for a, b in zip(spy.applied, spy.actions,
                                                     strict=False)) > 0.01  # clamps seen
