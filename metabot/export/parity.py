"""Export-time parity: the runtime must reproduce the torch agent to 1e-5 (absolute).

Two checks, both seeded:
- the graph alone: N random single steps (random observation, previous action and reward,
  episode flag, privileged features and recurrent state / history), every output compared;
- the runtime's memory: step sequences through `Agent.act` against `TorchStepper`, which
  keeps state in torch exactly as the runtime's contract says (zero state after `reset()`,
  `first` on the first step, previous reward 0 on the first step, previous action = the
  recorded applied command or else the agent's own action), across `new_episode()` and
  `reset()`, with some applied commands differing from the agent's (a safety clip).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from metabot.errors import ArtifactError
from metabot.runtime.agent import Agent

TOLERANCE = 1e-5


@dataclass
class ParityReport:
    random_steps: int
    sequence_steps: int
    max_abs_diff: float

    def to_dict(self) -> dict:
        return {
            "random_steps": self.random_steps,
            "sequence_steps": self.sequence_steps,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": TOLERANCE,
        }


class TorchStepper:
    """The runtime's step semantics written in torch: the reference the runtime must match."""

    def __init__(
        self,
        module: torch.nn.Module,
        act_dim: int,
        privileged_dim: int,
        state_shapes: Sequence[Sequence[int]],
        extras: dict[str, np.ndarray] | None = None,
    ):
        self.module = module.eval()
        self.extras = [torch.from_numpy(np.asarray(v, np.float32)) for v in (extras or {}).values()]
        self.act_dim = act_dim
        self.privileged_dim = privileged_dim
        self.state_shapes = [tuple(s) for s in state_shapes]
        self.reset()

    def reset(self) -> None:
        self.state = [torch.zeros(s) for s in self.state_shapes]
        self.new_episode()

    def new_episode(self) -> None:
        self.prev_action = torch.zeros(1, self.act_dim)
        self.first = True

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: float = 0.0, privileged: np.ndarray | None = None):
        obs_t = torch.as_tensor(np.asarray(obs, np.float32)).reshape(1, -1)
        reward_t = torch.tensor([[0.0 if self.first else float(reward)]])
        first_t = torch.tensor([[1.0 if self.first else 0.0]])
        priv = np.zeros(self.privileged_dim, np.float32) if privileged is None else privileged
        priv_t = torch.as_tensor(np.asarray(priv, np.float32)).reshape(1, -1)
        out = self.module(
            obs_t, self.prev_action, reward_t, first_t, priv_t, *self.state, *self.extras
        )
        out = out if isinstance(out, (tuple, list)) else (out,)
        action, self.state = out[0], list(out[1 : 1 + len(self.state_shapes)])
        self.prev_action = action.clone()
        self.first = False
        return action.reshape(-1).numpy().copy()

    def record_applied(self, action: np.ndarray) -> None:
        self.prev_action = torch.as_tensor(np.asarray(action, np.float32)).reshape(1, -1)


def reference_stepper(agent_module: torch.nn.Module, metadata: dict) -> TorchStepper:
    """The torch reference for an exported artifact, built from the agent module and the
    artifact's metadata (head agents get the exported wrapper with their initial head)."""
    adaptation = metadata["adaptation"]
    initial = adaptation.get("initial") or {}
    names = adaptation.get("graph_inputs", [])  # graph input order, not sorted key order
    extras = {k: np.asarray(initial[k], np.float32) for k in names}
    module = agent_module
    if extras:
        from metabot.export.agent import HeadInputs

        module = HeadInputs(agent_module)
    shapes = [s["shape"] for s in metadata["state"]]
    return TorchStepper(
        module, metadata["action"]["dim"], metadata["privileged_dim"], shapes, extras
    )


def _draw_obs(rng: np.random.Generator, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return (mean + 2.0 * std * rng.standard_normal(mean.shape)).astype(np.float32)


def check_graph(
    module: torch.nn.Module,
    agent: Agent,
    state_shapes,
    *,
    n: int,
    seed: int,
    mean: np.ndarray,
    std: np.ndarray,
    extras: dict[str, np.ndarray],
) -> float:
    """Random single steps through the raw session; returns the largest abs difference.
    Extra inputs (adaptable head weights) are perturbed around their exported values."""
    rng = np.random.default_rng(seed)
    session = agent._session
    input_names = {i.name for i in session.get_inputs()}
    output_names = [o.name for o in session.get_outputs()]
    names = ["obs", "prev_action", "prev_reward", "first", "privileged"]
    names += [f"state_{i}" for i in range(len(state_shapes))] + list(extras)
    # One batch of n random inputs: torch runs it at once, onnxruntime row by row (batch 1).
    batch = [
        _draw_obs(rng, np.tile(mean, (n, 1)), np.tile(std, (n, 1))),
        rng.uniform(-1, 1, (n, agent.act_dim)).astype(np.float32),
        rng.standard_normal((n, 1)).astype(np.float32),
        (rng.random((n, 1)) < 0.1).astype(np.float32),
        rng.standard_normal((n, agent.privileged_dim)).astype(np.float32),
        *(0.5 * rng.standard_normal((n, *s[1:])).astype(np.float32) for s in state_shapes),
    ]
    perturbed = [
        (v + 0.1 * rng.standard_normal(v.shape)).astype(np.float32) for v in extras.values()
    ]  # one draw: the head weights are not batched
    with torch.no_grad():
        ref = module(*(torch.from_numpy(a) for a in batch + perturbed))
    ref = [r.numpy() for r in (ref if isinstance(ref, (tuple, list)) else (ref,))]
    worst = 0.0
    for step in range(n):
        row = [a[step : step + 1] for a in batch] + perturbed
        feed = {k: v for k, v in zip(names, row, strict=True) if k in input_names}
        ours = session.run(output_names, feed)
        for name, a, b in zip(output_names, ours, ref, strict=False):
            diff = float(np.max(np.abs(a - b[step : step + 1]), initial=0.0))
            worst = max(worst, diff)
            if not diff <= TOLERANCE:
                raise ArtifactError(
                    f"export parity failed: output '{name}' differs by {diff:.3g} on random step"
                    f" {step} (tolerance {TOLERANCE})"
                )
    return worst


def check_sequences(
    module: torch.nn.Module,
    agent: Agent,
    state_shapes,
    *,
    steps: int,
    seed: int,
    mean: np.ndarray,
    std: np.ndarray,
    extras: dict[str, np.ndarray],
) -> float:
    """A `steps`-long run through Agent.act vs TorchStepper, with episode boundaries, a
    reset() in the middle and occasional clipped applied commands."""
    rng = np.random.default_rng(seed + 1)
    ref = TorchStepper(module, agent.act_dim, agent.privileged_dim, state_shapes, extras)
    agent.reset()
    worst = 0.0
    obs = _draw_obs(rng, mean, std)
    reward = 0.0
    for t in range(steps):
        if t == steps // 2:
            agent.reset()
            ref.reset()
        elif t % 40 == 39:
            agent.new_episode()
            ref.new_episode()
        priv = rng.standard_normal(agent.privileged_dim).astype(np.float32)
        obs = (0.8 * obs + 0.2 * _draw_obs(rng, mean, std)).astype(np.float32)
        a = agent.act(obs, reward=reward, privileged=priv)
        b = ref.act(obs, reward=reward, privileged=priv)
        diff = float(np.max(np.abs(a - b), initial=0.0))
        for s_ours, s_ref in zip(agent.state, ref.state, strict=True):
            diff = max(diff, float(np.max(np.abs(s_ours - s_ref.numpy()), initial=0.0)))
        worst = max(worst, diff)
        if not diff <= TOLERANCE:
            raise ArtifactError(
                f"export parity failed: step {t} of the {steps}-step sequence differs by"
                f" {diff:.3g} (tolerance {TOLERANCE}); the runtime's state handling or the"
                " graph disagrees with the torch agent"
            )
        if t % 7 == 3:  # the safety layer clipped the command
            applied = np.clip(a, -0.5, 0.5)
            agent.record_applied(applied)
            ref.record_applied(applied)
        reward = float(rng.standard_normal())
    agent.reset()
    return worst


def check_parity(
    module: torch.nn.Module,
    agent: Agent,
    state_shapes,
    *,
    n_random: int = 1000,
    seq_steps: int = 200,
    seed: int = 0,
    extras: dict[str, np.ndarray] | None = None,
) -> ParityReport:
    extras = extras or {}
    norm = agent.metadata.get("normalizer")
    if norm is not None:
        mean = np.asarray(norm["mean"], np.float32)
        std = np.asarray(norm["std"], np.float32)
    else:
        mean = np.zeros(agent.obs_dim, np.float32)
        std = np.ones(agent.obs_dim, np.float32)
    kw = dict(seed=seed, mean=mean, std=std, extras=extras)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 steps: a thread pool only adds contention
    try:
        w1 = check_graph(module, agent, state_shapes, n=n_random, **kw)
        w2 = check_sequences(module, agent, state_shapes, steps=seq_steps, **kw)
    finally:
        torch.set_num_threads(threads)
    return ParityReport(n_random, seq_steps, max(w1, w2))
