"""The one interface every algorithm implements (PPO-based and gradient-based alike).

An `Algorithm` is built from a task distribution, a validated config, a seed and the total
env-step budget; the
trainer calls `train_iteration()` until `env_steps` reaches the budget, checkpoints
`state_dict()` between iterations (plus the RNG states it owns), and at the end saves
`final_agent()`, the module that export freezes. `make_evaluator(agent)` returns how the
evaluation protocol drives that agent (context agents: the default, carried state;
gradient-based agents: their own evaluator that adapts between episodes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from metabot.algos.agents import Agent


class Algorithm(ABC):
    """Base class. Subclasses set `name`, `Config` and implement the abstract methods."""

    name: ClassVar[str]
    Config: ClassVar[type]  # frozen dataclass of hyper-parameters (see metabot.algos.config)
    budget_unit: ClassVar[str] = "steps"  # evaluation budgets count "steps" or "episodes"
    default_steps: ClassVar[int] = 1_000_000

    def __init__(self, dist: Any, config: Any, seed: int, total_steps: int):
        self.dist = dist
        self.config = config
        self.seed = int(seed)
        self.total_steps = int(total_steps)  # the run's budget (for schedules and phases)
        self.iteration = 0
        self.env_steps = 0
        # All randomness of training flows from these two generators (saved in checkpoints).
        self.np_rng = np.random.Generator(np.random.PCG64(self.seed))
        self.torch_gen = torch.Generator().manual_seed(self.seed)

    def budget_shapes_training(self) -> bool:
        """Whether the total step budget changes what an iteration does (a learning-rate
        schedule, a phase switch). Only a run for which it does not can be extended with
        ``metabot train --resume --steps N``: the extended run then equals one started with
        N. Conservative default: it does."""
        return True

    @abstractmethod
    def train_iteration(self) -> dict[str, float]:
        """Collect experience and update once; advance `iteration` and `env_steps`.

        Returns scalars to log (include "return" = mean recent episode return).
        """

    @abstractmethod
    def final_agent(self) -> Agent:
        """The inference module to save and export (export contract)."""

    def modules(self) -> dict[str, torch.nn.Module]:
        """Modules whose state is checkpointed (default: the final agent)."""
        return {"agent": self.final_agent()}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def extra_state(self) -> dict[str, Any]:
        """Anything else a subclass must restore for an exact resume (e.g. its phase)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "modules": {k: m.state_dict() for k, m in self.modules().items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers().items()},
            "np_rng": self.np_rng.bit_generator.state,
            "torch_gen": self.torch_gen.get_state(),
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
        self.load_extra_state(state.get("extra", {}))
        for k, m in self.modules().items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers().items():
            o.load_state_dict(state["optimizers"][k])
        self.np_rng.bit_generator.state = state["np_rng"]
        self.torch_gen.set_state(state["torch_gen"])

    @classmethod
    def make_evaluator(cls, agent: Agent) -> Any:
        """How the evaluation protocol drives `agent` (see metabot.evaluation.protocol)."""
        from metabot.evaluation.protocol import ContextEvaluator

        return ContextEvaluator(agent)
