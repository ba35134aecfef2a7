"""The oracle teacher of the gradient family's outer objective (`teacher_run`), training only.

A finished `oracle` run sees each task's true dynamics; its mean action on the
post-adaptation episodes is the target the outer objective pulls the adapted policy toward
(metabot.algos.gradient_functional.meta_objective_fn, `teacher_coef`). Why: S is normalized
by the oracle, and PPO's signal for using what adaptation found is weak (docs/gradient_meta.md).
The inner step, the evaluation and the robot never see the teacher; it is loaded from its
run directory each time and is neither in the agent, its checkpoint nor the artifact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.func import functional_call, vmap

from metabot.algos import gradient_functional as gf
from metabot.algos.gradient_sampler import Episodes


class OracleTeacher:
    def __init__(self, run_dir: str, dist: Any):
        from metabot.algos.runs import load_baseline_run

        self.oracle = load_baseline_run(run_dir, "teacher_run", "oracle", dist)
        self.act_dim = int(dist.act_dim)

    def means(self, eps: list[Episodes], privileged: np.ndarray) -> torch.Tensor:
        """The oracle's mean action on each task's episodes, given that task's dynamics
        features; padded and stacked as gradient_meta.stack_batches does: ``[n_tasks, N, A]``."""
        n = max(len(e.rewards) for e in eps)
        out = torch.zeros(len(eps), n, self.act_dim)
        with torch.no_grad():
            for i, e in enumerate(eps):
                obs = torch.as_tensor(e.obs, dtype=torch.float32)
                priv = torch.as_tensor(privileged[i], dtype=torch.float32).expand(len(obs), -1)
                out[i, : len(obs)] = self.oracle.actor_mean(obs, priv)
        return out

    @staticmethod
    def gaps(policy: torch.nn.Module, params: gf.Params, adapted: gf.Params,
             post: gf.Batch) -> dict[str, float]:
        """Mean squared distance from the oracle's mean action on the post-adaptation
        episodes, of the meta-policy and of the adapted policies: what adaptation closes."""

        def gap(p: gf.Params, b: gf.Batch) -> torch.Tensor:
            mean = functional_call(policy, p, (b["obs"],))
            return gf.weighted_mean((mean - b["teacher_mean"]).pow(2).sum(-1), b["weights"])

        with torch.no_grad():
            before = vmap(gap, in_dims=(None, 0))(params, post).mean()
            after = vmap(gap)(adapted, post).mean()
        return {"teacher_gap_pre": float(before), "teacher_gap_adapted": float(after)}
