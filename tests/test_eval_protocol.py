"""The evaluation protocol: what every agent is fed, same tasks and seeds for all, and a
tiny end-to-end train + eval that learns something measurable."""

import json

import numpy as np

from metabot.algos.toy import ToyDistribution
from metabot.evaluation.protocol import ContextEvaluator, run_budget


class Recorder:
    """A scripted evaluator that records what the protocol gives it."""

    budget_unit = "episodes"
    stateless = False

    def __init__(self):
        self.calls = []
        self.episodes = []

    def begin(self, privileged):
        self.calls.append(("begin", privileged.shape))

    def act(self, obs, prev_action, prev_reward, first, exploring):
        self.calls.append(("act", obs.copy(), prev_action.copy(), prev_reward.copy(),
                           first.copy(), exploring))
        return np.full((obs.shape[0], 2), 2.0)  # out of range: the protocol clips

    def end_episode(self, trajectory, exploring):
        self.episodes.append((trajectory["rewards"].shape, exploring))


def test_protocol_feeds_applied_actions_boundaries_and_episodes():
    dist = ToyDistribution()
    tasks = dist.sample(3, split="test", seed=0)
    rec = Recorder()
    ep = run_budget(dist, tasks, rec, 2, "episodes", eval_seed=5, act_dim=2)
    T = dist.episode_steps
    acts = [c for c in rec.calls if c[0] == "act"]
    assert rec.calls[0] == ("begin", (3, dist.oracle_dim))
    assert len(acts) == 3 * T  # 2 budget episodes + the evaluation episode
    assert rec.episodes == [((T, 3), True), ((T, 3), True), ((T, 3), False)]
    for t, c in enumerate(acts):
        first = c[4][:, 0]
        assert (first == 1.0).all() == (t % T == 0)
        if t % T:
            np.testing.assert_array_equal(c[2], np.ones((3, 2)))  # the clipped, applied command
            assert (c[3] != 0).all()  # previous reward
        else:
            assert (c[2] == 0).all() and (c[3] == 0).all()
        assert c[5] == (t < 2 * T)
    np.testing.assert_array_equal(ep.actions, np.ones((T, 3, 2)))
    assert ep.tip_error.shape == (T, 3)


def test_evaluation_episode_is_the_same_for_every_budget_and_agent():
    from metabot.algos.agents import MLPAgent, RMAAgent

    dist = ToyDistribution()
    tasks = dist.sample(4, split="test", seed=1)
    dr = ContextEvaluator(MLPAgent(6, 2, 4, hidden=[8]))
    eps = [run_budget(dist, tasks, dr, k, "steps", 9, 2) for k in (0, 10, 55)]
    for e in eps[1:]:
        np.testing.assert_array_equal(e.rewards, eps[0].rewards)  # same goals, starts, noise
    rma = ContextEvaluator(RMAAgent(6, 2, 4, hidden=[8], history_len=10, adapt_channels=4))
    a = run_budget(dist, tasks, rma, 10, "steps", 9, 2)
    b = run_budget(dist, tasks, rma, 10, "steps", 9, 2)
    np.testing.assert_array_equal(a.rewards, b.rewards)  # deterministic


def test_tiny_train_and_eval_improves_over_untrained(tmp_path):
    import torch

    from metabot.algos import load_agent
    from metabot.algos.agents import build_agent
    from metabot.cli import main
    from metabot.evaluation.report import evaluate_agents

    small = ["--set", "num_envs=16", "--set", "hidden=[32,32]"]
    run = tmp_path / "rma"
    args = ["--tasks", "toy-reach", "--steps", "24000", "--no-progress", *small]
    assert main(["train", "--algo", "rma", "--out", str(run), *args,
                 "--set", "history_len=16", "--set", "adapt_channels=8"]) == 0
    for algo in ("dr", "oracle"):
        assert main(["train", "--algo", algo, "--out", str(tmp_path / algo), *args]) == 0
    out_json, out_png = tmp_path / "eval.json", tmp_path / "eval.png"
    code = main(["eval", str(run), "--split", "test", "--json", str(out_json),
                 "--plot", str(out_png), "--dr", str(tmp_path / "dr"),
                 "--oracle", str(tmp_path / "oracle"), "--tasks-n", "8", "--seeds", "1",
                 "--budgets", "0,50"])
    assert code == 0
    report = json.loads(out_json.read_text())
    for key in ("algo", "tasks", "split", "budget_unit", "normalized_score", "ci95", "return",
                "dr_return", "oracle_return", "physical", "time_to_recover"):
        assert key in report
    assert report["budget_unit"] == "steps" and set(report["return"]) == {"0", "50"}
    assert out_png.stat().st_size > 10_000
    agent, _ = load_agent(run)
    torch.manual_seed(123)
    untrained = build_agent(agent.spec()).eval()
    dr, _ = load_agent(tmp_path / "dr")
    oracle, _ = load_agent(tmp_path / "oracle")
    base = evaluate_agents(ToyDistribution(), "test", untrained, dr, oracle, algo="rma",
                           budgets=[50], n_tasks=8, n_seeds=1, recover=False)
    trained_r, untrained_r = report["return"]["50"], base["return"]["50"]
    assert trained_r > untrained_r + 0.25 * abs(untrained_r), (trained_r, untrained_r)
