"""The one evaluation protocol every algorithm is measured with (docs/algorithms.md).

For each adaptation budget k, every agent meets the same held-out tasks: it interacts
with each task for k control steps (or k episodes), its adaptation state carried over,
then plays one full evaluation episode from a reset whose seed (goal, initial state,
sensor noise) is the same for every agent and every k. R_k is that episode's return.

Agents are driven through an `Evaluator`, so the protocol does not care how an agent
adapts: `ContextEvaluator` carries a context agent's recurrent state / history window;
a gradient-based family supplies its own evaluator that adapts in `end_episode`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from metabot.evaluation import metrics

STEP_BUDGETS = (0, 10, 50, 100, 200, 500)
EPISODE_BUDGETS = (0, 1, 2, 5, 10)


class Evaluator(Protocol):
    """How the protocol drives one agent over a batch of tasks side by side."""

    budget_unit: str  # "steps" or "episodes"
    stateless: bool  # True: R_k does not depend on k (dr, oracle): only k = 0 is run

    def begin(self, privileged: np.ndarray) -> None:
        """New tasks (one per row of `privileged`): forget all adaptation."""

    def act(
        self,
        obs: np.ndarray,
        prev_action: np.ndarray,
        prev_reward: np.ndarray,
        first: np.ndarray,
        exploring: bool,
    ) -> np.ndarray:
        """Actions [N, A] in [-1, 1]. `exploring` is True during the k-budget phase."""

    def end_episode(self, trajectory: dict[str, np.ndarray], exploring: bool) -> None:
        """Called after every episode with its [T, N, ...] arrays (obs, actions, rewards,
        prev_action, prev_reward, first): where gradient-based agents adapt."""


class ContextEvaluator:
    """Evaluator for agents of the export contract (dr, oracle, rl2, rma): the state
    returned by `forward` is fed back, across episode resets, until `begin`."""

    def __init__(self, agent: Any):
        import torch

        self.torch = torch
        self.agent = agent.eval()
        self.budget_unit = getattr(agent, "budget_unit", "steps")
        self.stateless = len(agent.state_shapes) == 0
        self.state: tuple = ()
        self.privileged: Any = None

    def begin(self, privileged: np.ndarray) -> None:
        self.privileged = self.torch.as_tensor(np.asarray(privileged, np.float32))
        self.state = self.agent.initial_state(self.privileged.shape[0])

    def set_privileged(self, privileged: np.ndarray) -> None:
        """The true dynamics changed mid-episode (an oracle sees it at once)."""
        self.privileged = self.torch.as_tensor(np.asarray(privileged, np.float32))

    def act(self, obs, prev_action, prev_reward, first, exploring):
        t = self.torch.as_tensor
        with self.torch.no_grad():
            out = self.agent(
                t(np.asarray(obs, np.float32)), t(np.asarray(prev_action, np.float32)),
                t(np.asarray(prev_reward, np.float32)), t(np.asarray(first, np.float32)),
                self.privileged, *self.state,
            )
        self.state = tuple(out[1:])
        return out[0].numpy()

    def end_episode(self, trajectory, exploring) -> None:
        pass


@dataclass
class Episode:
    """Per-step arrays of one lockstep episode over N envs."""

    rewards: np.ndarray  # [T, N]
    actions: np.ndarray  # [T, N, A] applied
    tip_error: np.ndarray | None  # [T, N] metres, where the env reports it
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def returns(self) -> np.ndarray:
        return self.rewards.sum(0)


class Driver:
    """Steps an EnvBatch with an Evaluator, keeping the contract inputs (previous applied
    command, previous reward, first flag) exactly as the runtime does."""

    def __init__(self, envs: Any, evaluator: Evaluator, act_dim: int):
        self.envs = envs
        self.ev = evaluator
        self.act_dim = act_dim
        self.obs: np.ndarray | None = None

    def reset(self, seed: int) -> None:
        self.obs = self.envs.reset(seed)
        n = self.envs.n
        self.prev_action = np.zeros((n, self.act_dim), np.float32)
        self.prev_reward = np.zeros((n, 1), np.float32)
        self.first = np.ones((n, 1), np.float32)
        self._clear()

    def _clear(self) -> None:
        self.traj: dict[str, list] = {k: [] for k in (
            "obs", "prev_action", "prev_reward", "first", "actions", "rewards", "tip_error")}

    def _flush(self, exploring: bool) -> Episode | None:
        if not self.traj["rewards"]:
            return None
        arrays = {k: np.stack(v) for k, v in self.traj.items() if v}
        self.ev.end_episode(arrays, exploring)
        self._clear()
        return Episode(arrays["rewards"], arrays["actions"], arrays.get("tip_error"))

    def run(self, steps: int, exploring: bool, on_step=None) -> list[Episode]:
        """Run `steps` lockstep steps; return the episodes that ended (lockstep horizons)."""
        episodes = []
        for t in range(steps):
            if on_step is not None:
                on_step(t)
            action = np.clip(
                self.ev.act(self.obs, self.prev_action, self.prev_reward, self.first, exploring),
                -1.0, 1.0,
            ).astype(np.float32)
            nxt, rew, term, trunc, _, extra = self.envs.step(action)
            for k, v in (("obs", self.obs), ("prev_action", self.prev_action),
                         ("prev_reward", self.prev_reward), ("first", self.first),
                         ("actions", action), ("rewards", rew)):
                self.traj[k].append(np.array(v, copy=True))
            if "tip_error" in extra:
                self.traj["tip_error"].append(np.asarray(extra["tip_error"], float))
            done = np.logical_or(term, trunc)
            self.obs = nxt
            self.first = done.astype(np.float32)[:, None]
            self.prev_action = action * (1.0 - self.first)
            self.prev_reward = (rew[:, None] * (1.0 - self.first)).astype(np.float32)
            if done.all():
                ep = self._flush(exploring)
                if ep is not None:
                    episodes.append(ep)
        return episodes

    def interrupt(self, exploring: bool) -> None:
        """End a partial episode (k steps ran out mid-episode) before the next reset."""
        self._flush(exploring)


def budget_steps(k: int, unit: str, episode_steps: int) -> int:
    return k if unit == "steps" else k * episode_steps


@contextmanager
def adapted(
    dist: Any, tasks: list[Any], evaluator: Evaluator, k: int, unit: str, eval_seed: int,
    act_dim: int,
) -> Iterator[tuple[Any, Driver]]:
    """(envs, driver) after the agent interacted k steps/episodes from reset seed
    (eval_seed, k), reset to eval_seed for the evaluation episode (identical for every agent
    and every k); the envs close on exit."""
    from metabot.algos.envs import EnvBatch, derive_seed

    envs = EnvBatch(dist, tasks, seed=eval_seed)
    try:
        evaluator.begin(envs.privileged)
        driver = Driver(envs, evaluator, act_dim)
        n_steps = budget_steps(k, unit, envs.episode_steps)
        if n_steps > 0:
            driver.reset(derive_seed(eval_seed, k, 7))
            driver.run(n_steps, exploring=True)
            driver.interrupt(exploring=True)
        driver.reset(eval_seed)
        yield envs, driver
    finally:
        envs.close()


def run_budget(
    dist: Any,
    tasks: list[Any],
    evaluator: Evaluator,
    k: int,
    unit: str,
    eval_seed: int,
    act_dim: int,
) -> Episode:
    """R_k: the evaluation episode after a budget of k steps/episodes (`adapted`)."""
    with adapted(dist, tasks, evaluator, k, unit, eval_seed, act_dim) as (envs, driver):
        (episode,) = driver.run(envs.episode_steps, exploring=False)
    return episode


def episode_metrics(ep: Episode, dt: float) -> dict[str, np.ndarray]:
    """Per-env physical metrics of one evaluation episode."""
    out: dict[str, np.ndarray] = {"smoothness": metrics.smoothness(ep.actions)}
    if ep.tip_error is not None:
        out.update(metrics.tip_error_mm(ep.tip_error))
        out["settle_time_s"] = metrics.settle_steps(ep.tip_error) * dt
    return out
