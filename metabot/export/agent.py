"""`export_agent(run_dir, out_path)`: a trained run directory -> one verified artifact.

Every algorithm goes through the same path (metabot.export.onnx_export.export_module). Two
special cases adapt on the robot in numpy: head-only gradient adaptation (anil, head-only
metasgd), whose head weights become graph inputs and body features a graph output, so the
runtime can swap in an adapted head (metabot.runtime.head) without re-exporting; and the
model inner loss, whose context becomes a graph input and pre-clip mean an output
(metabot.runtime.model_context).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from metabot.errors import ArtifactError
from metabot.export.metadata import STATE_KINDS, build_metadata
from metabot.export.onnx_export import export_module
from metabot.export.parity import TOLERANCE, ParityReport
from metabot.runtime.model_context import MODEL_KEYS


class HeadInputs(nn.Module):
    """A head-adaptation agent with its head as inputs: (..., W, b) -> (action, features)."""

    def __init__(self, agent: nn.Module):
        super().__init__()
        self.agent = agent

    def forward(self, obs, prev_action, prev_reward, first, privileged, head_weight, head_bias):
        features = self.agent.policy.features(self.agent.obs_norm(obs))
        mean = features @ head_weight.transpose(0, 1) + head_bias
        return torch.clamp(mean, -1.0, 1.0), features


class ContextInput(nn.Module):
    """A model-inner-loss agent with its context as an input: (..., z) -> (action, mean).
    The pre-clip mean is an output so the runtime can sample exploration actions."""

    def __init__(self, agent: nn.Module):
        super().__init__()
        self.agent = agent

    def forward(self, obs, prev_action, prev_reward, first, privileged, context):
        policy = self.agent.policy
        mean = policy.head(policy.features(self.agent.obs_norm(obs), context))
        return torch.clamp(mean, -1.0, 1.0), mean


def _f(t: torch.Tensor) -> Any:
    return t.detach().float().double().tolist()


def head_export(agent: Any, metadata: dict[str, Any]) -> tuple[nn.Module, list, list[str]]:
    """Wrap a head-only gradient agent; fill in what the runtime's adapt() needs."""
    policy = agent.policy
    steps = agent.step_dict()
    metadata["adaptation"].update(
        graph_inputs=["head_weight", "head_bias"],
        graph_outputs=["features"],
        initial={"head_weight": _f(policy.head.weight), "head_bias": _f(policy.head.bias)},
        log_std=_f(policy.log_std),
        step_sizes={"head_weight": _f(steps["head.weight"]), "head_bias": _f(steps["head.bias"])},
        inner_steps=int(agent.inner_steps),
        gamma=float(agent.gamma),
        gae_lambda=float(agent.gae_lambda),
        feature_dim=int(policy.feature_dim),
    )
    if agent.inner_baseline == "learned":  # the runtime evaluates it in numpy for adapt()
        metadata["adaptation"]["baseline"] = {
            k: _f(v) for k, v in agent.params().items() if k.startswith("baseline.")}
    extra = [
        ("head_weight", policy.head.weight.detach().clone()),
        ("head_bias", policy.head.bias.detach().clone()),
    ]
    return HeadInputs(agent).eval(), extra, ["features"]


def model_export(agent: Any, metadata: dict[str, Any]) -> tuple[nn.Module, list, list[str]]:
    """Wrap a model-inner-loss agent; the context model and step go into the metadata for
    the runtime's numpy step (metabot.runtime.model_context)."""
    policy = agent.policy
    params = agent.params()
    metadata["adaptation"].update(
        graph_inputs=["context"],
        graph_outputs=["mean"],
        initial={"context": _f(policy.context)},
        log_std=_f(policy.log_std),
        step_sizes={"context": _f(agent.step_dict()["context"])},
        inner_steps=int(agent.inner_steps),
        model_history=int(agent.model_history),
        context_ridge=agent.context_ridge,
        model={k: _f(params[k]) for k in MODEL_KEYS},
    )
    return ContextInput(agent).eval(), [("context", policy.context.detach().clone())], ["mean"]


def _check_transitions(runtime_agent: Any, episodes: int, steps: int, seed: int):
    """Exploration episodes the runtime itself collects on random observations."""
    rng = np.random.default_rng(seed)
    norm = runtime_agent.metadata["normalizer"]
    mean = np.asarray(norm["mean"]) if norm else 0.0
    std = np.asarray(norm["std"]) if norm else 1.0
    n = episodes * steps
    obs = (mean + std * rng.standard_normal((n, runtime_agent.obs_dim))).astype(np.float32)
    runtime_agent.reset()
    samples = []
    for t in range(n):
        if t % steps == 0:
            runtime_agent.new_episode()
        runtime_agent.act(obs[t], explore=True)
        samples.append(runtime_agent.last_sample)
    return {
        "obs": obs,
        "actions": np.asarray(samples),
        "rewards": rng.standard_normal(n),
        "ends": (np.arange(n) % steps == steps - 1).astype(np.float64),
    }


def model_step_check(torch_agent: Any, episodes: int = 3, steps: int = 50, seed: int = 0):
    """Export-time parity of the context step: the runtime's numpy step must give the
    context the agent's own adaptation gives, on exploration episodes it collected."""

    def check(runtime_agent: Any) -> dict[str, Any]:
        tr = _check_transitions(runtime_agent, episodes, steps, seed)
        runtime_agent.adapt(tr)
        ours = runtime_agent.head_parameters()["context"]
        ref = torch_agent.adapted(tr).policy.context.detach().numpy()
        diff = float(np.max(np.abs(ours - ref)))
        if not diff <= TOLERANCE:
            raise ArtifactError(
                f"export parity failed: the runtime's context step differs from the"
                f" agent's by {diff:.3g} (tolerance {TOLERANCE})"
            )
        runtime_agent.reset()
        return {"context_adaptation": {"transitions": len(tr["ends"]), "max_abs_diff": diff}}

    return check


def head_step_check(torch_agent: Any, episodes: int = 3, steps: int = 50, seed: int = 0):
    """Export-time parity of the head adaptation step: the runtime's numpy `adapt` must give
    the head the agent's own adaptation (metabot.algos) gives, on exploration episodes the
    runtime itself collected."""

    def check(runtime_agent: Any) -> dict[str, Any]:
        tr = _check_transitions(runtime_agent, episodes, steps, seed)
        n = len(tr["ends"])
        runtime_agent.adapt(tr)
        ours = runtime_agent.head_parameters()
        ref = torch_agent.adapted(tr).policy.head
        diff = max(
            float(np.max(np.abs(ours["head_weight"] - ref.weight.detach().numpy()))),
            float(np.max(np.abs(ours["head_bias"] - ref.bias.detach().numpy()))),
        )
        if not diff <= TOLERANCE:
            raise ArtifactError(
                f"export parity failed: the runtime's head adaptation step differs from the"
                f" agent's by {diff:.3g} (tolerance {TOLERANCE})"
            )
        runtime_agent.reset()
        return {"head_adaptation": {"transitions": n, "max_abs_diff": diff}}

    return check


def export_loaded(
    agent: Any, info: dict[str, Any], dist: Any, out_path: str | Path, **kwargs: Any
) -> tuple[Path, ParityReport]:
    """Export an agent module (metabot.algos.agents contract) with its run info."""
    agent = agent.eval()
    metadata = build_metadata(agent, info, dist)
    module, extra_inputs, extra_outputs, post_check = agent, [], [], None
    if metadata["adaptation"]["kind"] == "head":
        module, extra_inputs, extra_outputs = head_export(agent, metadata)
        post_check = head_step_check(agent)
    elif metadata["adaptation"]["kind"] == "model":
        module, extra_inputs, extra_outputs = model_export(agent, metadata)
        post_check = model_step_check(agent)
    state_shapes = [[1, *shape] for shape in agent.state_shapes]
    kinds = STATE_KINDS.get(agent.algo, ["state"] * len(state_shapes))[: len(state_shapes)]
    return export_module(
        module,
        out_path,
        metadata,
        state_shapes,
        kinds,
        extra_inputs=extra_inputs,
        extra_outputs=extra_outputs,
        post_check=post_check,
        **kwargs,
    )


def export_agent(run_dir: str | Path, out_path: str | Path, **kwargs: Any) -> Path:
    """Export the final agent of a run directory to `out_path`; returns the path.

    Raises CheckpointError for a bad run, ArtifactError if the export fails a check
    (parity, onnx.checker, metadata schema); nothing is written then.
    """
    return export_run(run_dir, out_path, **kwargs)[0]


def export_run(
    run_dir: str | Path, out_path: str | Path, *, teacher: bool = False, **kwargs: Any
) -> tuple[Path, ParityReport]:
    """Export a run's final agent; `teacher=True` exports an rma run's teacher instead."""
    from metabot import tasks
    from metabot.algos.runs import load_agent

    agent, info = load_agent(run_dir)
    if teacher:
        agent = rma_teacher(agent)
        info = {**info, "algo": agent.algo}  # the artifact says what it is: rma-teacher
    dist = tasks.get(info["tasks"])  # TaskError names an unknown distribution
    return export_loaded(agent, info, dist, out_path, **kwargs)


def rma_teacher(agent: nn.Module) -> nn.Module:
    """The RMA teacher of a trained RMA agent, as a deployable agent: the same policy with z
    from the true dynamics features (the oracle's input) instead of the history. Why: run
    beside the oracle on the same robots, it says whether RMA's shortfall is the student's
    estimate (teacher ~ oracle) or the policy itself (teacher < oracle)."""
    from metabot.algos.agents import RMAAgent, RMATeacherAgent

    if type(agent) is not RMAAgent:
        raise ArtifactError(
            f"--teacher needs an rma run; this run's agent is {type(agent).__name__}"
        )
    out = RMATeacherAgent(**agent.spec()["kwargs"])
    out.load_state_dict(agent.state_dict())
    return out
