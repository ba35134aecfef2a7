"""How the evaluation protocol (metabot.evaluation.protocol) drives a gradient-based agent.

Exploration episodes (the k-episode budget) act with the meta-parameters and sampled
actions, as the inner step saw during meta-training; the evaluation episode acts with the
mean action of the parameters adapted once from the meta-parameters on all exploration
episodes so far (metabot.algos.maml_adapt.adapt: numpy for head-only agents, torch for
full-network ones). This is what a robot does between episodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from metabot.algos import gradient_functional as gf
from metabot.algos.gradient_agent import GradientAgent
from metabot.algos.maml_adapt import adapt


class GradientEvaluator:
    budget_unit = "episodes"
    stateless = False

    def __init__(self, agent: GradientAgent, seed: int = 0):
        self.agent = agent.eval()
        self.seed = int(seed)
        self.base, self.spec = agent.adapt_package()
        self.meta = {k: v.detach() for k, v in agent.params().items()}
        self.adapt_ms: list[float] = []

    def begin(self, privileged: np.ndarray) -> None:
        self.n = int(np.asarray(privileged).shape[0])
        # Same exploration noise for every budget run: reseeded per batch of tasks.
        self.generator = torch.Generator().manual_seed(self.seed)
        self.episodes: list[list[dict[str, np.ndarray]]] = [[] for _ in range(self.n)]
        self.sampled: list[np.ndarray] = []
        self.current = gf.stack_params(self.meta, self.n)
        self.stale = False

    def act(self, obs, prev_action, prev_reward, first, exploring: bool) -> np.ndarray:
        obs_n = self.agent.obs_norm(torch.as_tensor(np.asarray(obs, np.float32)))
        if exploring:
            actions, _ = gf.sample_actions(self.agent.policy, gf.stack_params(self.meta, self.n),
                                           obs_n, self.generator)
            self.sampled.append(actions.numpy())
            return np.clip(actions.numpy(), -1.0, 1.0)
        if self.stale:
            self._adapt()
        actions, _ = gf.sample_actions(self.agent.policy, self.current, obs_n, None,
                                       deterministic=True)
        return np.clip(actions.numpy(), -1.0, 1.0)

    def end_episode(self, trajectory: dict[str, np.ndarray], exploring: bool) -> None:
        if not exploring:
            return
        sampled = np.stack(self.sampled)  # [T, N, A] pre-clip samples
        self.sampled = []
        t = sampled.shape[0]
        ends = np.zeros(t)
        ends[-1] = 1.0
        for i in range(self.n):
            self.episodes[i].append({
                "obs": np.asarray(trajectory["obs"][:, i], np.float64),
                "actions": sampled[:, i].astype(np.float64),
                "rewards": np.asarray(trajectory["rewards"][:, i], np.float64),
                "ends": ends,
            })
        self.stale = True

    def _adapt(self) -> None:
        import time

        per_task = []
        for eps in self.episodes:
            tr = {k: np.concatenate([e[k] for e in eps]) for k in eps[0]}
            t0 = time.perf_counter()
            new = adapt(self.base, tr, self.spec)
            self.adapt_ms.append(1000.0 * (time.perf_counter() - t0))
            per_task.append({k: torch.as_tensor(v, dtype=torch.float32) for k, v in new.items()})
        self.current = {k: torch.stack([p[k] for p in per_task]) for k in self.meta}
        self.stale = False


def make_evaluator(agent: GradientAgent) -> Any:
    return GradientEvaluator(agent)
