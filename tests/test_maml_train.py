"""Training and evaluating the gradient-based family end to end (issue 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metabot.algos import registry
from metabot.algos.gradient_meta import GradientConfig
from metabot.algos.maml_eval import GradientEvaluator
from metabot.errors import ConfigError
from metabot.evaluation.protocol import run_budget


class _GoalEnv:
    """2-D point mass whose goal is hidden: only adaptation can find it (MAML's 2D-nav)."""

    def __init__(self, goal):
        self.goal = np.asarray(goal, float)

    def reset(self, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self.pos, self.t = rng.uniform(-0.1, 0.1, 2), 0
        return self.pos.astype(np.float32), {}

    def step(self, action):
        self.pos = self.pos + 0.1 * np.clip(action, -1.0, 1.0)
        self.t += 1
        reward = -float(np.linalg.norm(self.pos - self.goal))
        return self.pos.astype(np.float32), reward, False, self.t >= 20, {}

    def close(self):
        pass


class HiddenGoal:
    """A task distribution (the metabot.tasks contract, as EnvBatch uses it)."""

    name, obs_dim, act_dim, oracle_dim, episode_steps = "hidden-goal", 2, 2, 0, 20

    def sample(self, n, *, split="train", seed=0):
        rng = np.random.default_rng([seed, ("train", "test").index(split)])
        angles = rng.uniform(0, 2 * np.pi, n)
        return [(float(np.cos(a)), float(np.sin(a))) for a in angles]

    def make_env(self, task, seed=None):
        return _GoalEnv(task)


CFG = dict(meta_batch=10, adapt_episodes=4, hidden=(32, 32), inner_lr=0.5, outer_lr=3e-3,
           ppo_epochs=3)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trainer runs; tiny nets are slower multi-threaded
    yield
    torch.set_num_threads(threads)


def _returns(algo, n_tasks=12):
    tasks = HiddenGoal().sample(n_tasks, split="test", seed=1)
    ev = GradientEvaluator(algo.final_agent())
    return {k: float(run_budget(HiddenGoal(), tasks, ev, k, "episodes", 11, 2).returns.mean())
            for k in (0, 5)}


@pytest.mark.parametrize("name", ["maml", "anil"])
def test_meta_training_learns_to_adapt(name):
    torch.manual_seed(0)
    algo = registry.get(name)(HiddenGoal(), GradientConfig(**CFG), seed=0, total_steps=10**6)
    before = _returns(algo)
    for _ in range(50):
        metrics = algo.train_iteration()
    assert algo.env_steps == 50 * 10 * (4 + 1) * 20
    assert np.isfinite(metrics["objective"])
    after = _returns(algo)
    # The goal is hidden: the meta-policy alone cannot reach it; one adaptation step on
    # five exploration episodes can, and meta-training made that step better.
    assert after[5] > after[0] + 6.0, after
    assert after[5] - after[0] > before[5] - before[0] + 2.5, (before, after)


def test_every_variant_runs_an_iteration():
    for name in ("fomaml", "metasgd", "reptile"):
        algo = registry.get(name)(HiddenGoal(), GradientConfig(**CFG, reptile_steps=2), seed=0,
                                  total_steps=10**6)
        p0 = {k: v.detach().clone() for k, v in algo.agent.params().items()}
        algo.train_iteration()
        moved = sum((v.detach() - p0[k]).abs().sum().item() for k, v in algo.agent.params().items())
        assert moved > 0, name
    steps = algo.agent.step_dict()  # reptile keeps its fixed step; metasgd learns its own
    assert all(float(v) == pytest.approx(0.5) for v in steps.values())


def test_pre_adaptation_term_changes_the_meta_update():
    moved = []
    for pre_coef in (0.0, 1.0):
        algo = registry.get("maml")(HiddenGoal(), GradientConfig(**CFG, pre_coef=pre_coef),
                                    seed=0, total_steps=10**6)
        algo.train_iteration()
        moved.append({k: v.detach().clone() for k, v in algo.agent.params().items()})
    assert any(not torch.equal(moved[0][k], moved[1][k]) for k in moved[0])
    with pytest.raises(ConfigError, match="pre_coef"):
        GradientConfig(pre_coef=-1.0).validate()


def test_outer_minibatches_take_more_steps_and_stay_deterministic():
    def run(mb):
        algo = registry.get("maml")(HiddenGoal(), GradientConfig(**CFG, outer_minibatches=mb),
                                    seed=0, total_steps=10**6)
        algo.train_iteration()
        return {k: v.detach().clone() for k, v in algo.agent.params().items()}

    one, two, two_again = run(1), run(2), run(2)
    assert any(not torch.equal(one[k], two[k]) for k in one)
    assert all(torch.equal(two[k], two_again[k]) for k in two)
    with pytest.raises(ConfigError, match="outer_minibatches"):
        GradientConfig(meta_batch=4, outer_minibatches=5).validate()


def test_metasgd_learns_step_sizes():
    algo = registry.get("metasgd")(HiddenGoal(), GradientConfig(**CFG), seed=0,
                                   total_steps=10**6)
    before = {k: v.detach().clone() for k, v in algo.agent.step_dict().items()}
    algo.train_iteration()
    after = algo.agent.step_dict()
    assert all(v.shape == algo.agent.params()[k].shape for k, v in after.items())
    assert any((after[k].detach() - before[k]).abs().max() > 0 for k in before)


def test_metasgd_step_size_lr_bounds_the_step_size_update():
    """Adam moves each step size by about its own lr per update: step_size_lr sets it."""
    moved = {}
    for lr in (1e-3, 1e-6):
        algo = registry.get("metasgd")(HiddenGoal(), GradientConfig(**CFG, step_size_lr=lr),
                                       seed=0, total_steps=10**6)
        before = {k: v.detach().clone() for k, v in algo.agent.step_dict().items()}
        algo.train_iteration()
        moved[lr] = max((v.detach() - before[k]).abs().max().item()
                        for k, v in algo.agent.step_dict().items())
    assert 0 < moved[1e-6] < 1e-5 < 1e-4 < moved[1e-3]  # 3 Adam steps of about lr each
    with pytest.raises(ConfigError, match="step_size_lr"):
        GradientConfig(step_size_lr=-1.0).validate()


def full_and_resumed(tmp_path, algo: str, overrides: dict):
    """Train on toy-reach through the CLI in full (tmp_path/full), and again cut after two
    iterations and resumed through the CLI (tmp_path/cut); asserts equal final weights and
    returns (full agent, its info, cut agent)."""
    import json

    from metabot.algos.runs import load_agent
    from metabot.algos.trainer import train
    from metabot.cli import main

    sets = [x for k, v in overrides.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    args = ["train", "--algo", algo, "--tasks", "toy-reach", "--steps", "2000"]
    assert main([*args, "--out", str(tmp_path / "full"), *sets, "--no-progress"]) == 0
    train(algo, "toy-reach", tmp_path / "cut", steps=2000, overrides=overrides,
          progress=False, stop_after_iterations=2)
    assert main(["train", "--algo", algo, "--out", str(tmp_path / "cut"), "--resume",
                 "--no-progress"]) == 0
    full, info = load_agent(tmp_path / "full")
    cut, _ = load_agent(tmp_path / "cut")
    for k, v in full.state_dict().items():
        torch.testing.assert_close(cut.state_dict()[k], v, rtol=0, atol=0)
    return full, info, cut


def test_train_cli_resume_and_eval(tmp_path):
    from metabot.evaluation.report import make_evaluator

    full, info, _ = full_and_resumed(tmp_path, "anil", {"meta_batch": 4, "hidden": [16, 16]})
    assert info["agent"]["budget_unit"] == "episodes"
    assert info["agent"]["adaptation"]["kind"] == "head"
    assert isinstance(make_evaluator(full, "anil"), GradientEvaluator)
