"""Freeze an agent module into one verified ONNX artifact.

Steps: trace the module at batch size 1 (fixed shapes: what a robot runs, and faster in
onnxruntime than symbolic ones), attach the metadata and its digest, run
`onnx.checker.check_model`, load the result through the torch-free runtime and compare it
with the torch module (`metabot.export.parity`), and only then move the file into place.
A failed check leaves no artifact behind.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import onnx
import torch

from metabot.errors import ArtifactError
from metabot.export.parity import ParityReport, check_parity
from metabot.runtime.artifact import METADATA_KEY, compute_digest, split_model
from metabot.runtime.schema import check_consistency, validate

OPSET = 17
CONTEXT_INPUTS = ("obs", "prev_action", "prev_reward", "first", "privileged")


def example_inputs(
    obs_dim: int, act_dim: int, privileged_dim: int, state_shapes: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, ...]:
    """Zero tensors in the contract's argument order, batch size 1."""
    return (
        torch.zeros(1, obs_dim),
        torch.zeros(1, act_dim),
        torch.zeros(1, 1),
        torch.zeros(1, 1),
        torch.zeros(1, privileged_dim),
        *(torch.zeros(*shape) for shape in state_shapes),
    )


def trace_to_onnx(
    module: torch.nn.Module,
    obs_dim: int,
    act_dim: int,
    privileged_dim: int,
    state_shapes: Sequence[Sequence[int]],
    extra_inputs: Sequence[tuple[str, torch.Tensor]] = (),
    extra_outputs: Sequence[str] = (),
) -> onnx.ModelProto:
    """Trace `module` with the legacy TorchScript exporter.

    Why `dynamo=False`: the dynamo exporter needs onnxscript (not a dependency here) and
    gains nothing for these small static graphs; the TorchScript exporter is exact for
    Linear/GRU/elementwise ops and is still supported in torch 2.13. Inputs the network
    never reads (e.g. `privileged` for a dr agent) are pruned by the exporter; the runtime
    feeds only what the graph declares.
    """
    n_state = len(state_shapes)
    args = example_inputs(obs_dim, act_dim, privileged_dim, state_shapes)
    args = args + tuple(t for _, t in extra_inputs)
    input_names = [*CONTEXT_INPUTS, *(f"state_{i}" for i in range(n_state))]
    input_names += [name for name, _ in extra_inputs]
    output_names = ["action", *(f"state_out_{i}" for i in range(n_state)), *extra_outputs]
    buf = io.BytesIO()
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy-exporter deprecation notice
        torch.onnx.export(
            module,
            args,
            buf,
            dynamo=False,
            input_names=input_names,
            output_names=output_names,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "metabot"
    return model


def tensor_specs(values) -> list[dict[str, Any]]:
    """[{name, shape}] for graph inputs/outputs (fixed shapes only)."""
    specs = []
    for v in values:
        dims = v.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims):
            raise ArtifactError(
                f"graph tensor '{v.name}' has a symbolic shape; export fixes batch size 1"
            )
        specs.append({"name": v.name, "shape": [d.dim_value for d in dims]})
    return specs


def finalize(model: onnx.ModelProto, metadata: dict[str, Any]) -> bytes:
    """Fill in inputs/outputs, validate the metadata, attach it with its digest, check the model."""
    metadata = dict(metadata)
    metadata["inputs"] = tensor_specs(model.graph.input)
    metadata["outputs"] = tensor_specs(model.graph.output)
    graph_inputs = {t["name"] for t in metadata["inputs"]}
    for s in metadata["state"]:
        if s["input"] not in graph_inputs:
            raise ArtifactError(f"export: the network never reads its state input '{s['input']}'")
    metadata["digest"] = ""
    problems = validate(metadata) or check_consistency(metadata)
    if problems:
        raise ArtifactError(f"export: metadata is invalid: {'; '.join(problems)}")
    del model.metadata_props[:]
    stripped, _ = split_model(model.SerializeToString())
    metadata["digest"] = compute_digest(stripped, metadata)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(metadata, sort_keys=True, allow_nan=False)
    data = model.SerializeToString()
    if split_model(data)[0] != stripped:  # protobuf re-serialized the graph differently
        raise ArtifactError("export: model bytes changed when metadata was attached")
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ArtifactError(f"export: onnx.checker rejected the graph: {exc}") from None
    return data


def write_atomic(data: bytes, out_path: str | Path) -> Path:
    """Temp file + rename: a crash leaves the old artifact or the new one, never half."""
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, out_path)
    except OSError as exc:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        raise ArtifactError(f"cannot write {out_path}: {exc.strerror or exc}") from None
    return out_path


def export_module(
    module: torch.nn.Module,
    out_path: str | Path,
    metadata: dict[str, Any],
    state_shapes: Sequence[Sequence[int]] = (),
    state_kinds: Sequence[str] | None = None,
    *,
    extra_inputs: Sequence[tuple[str, torch.Tensor]] = (),
    extra_outputs: Sequence[str] = (),
    post_check: Callable[[Any], dict[str, Any]] | None = None,
    n_random: int = 1000,
    seq_steps: int = 200,
    seed: int = 0,
) -> tuple[Path, ParityReport]:
    """Export a module that follows the agent contract, with `metadata` (everything but
    inputs, outputs, state and digest, which are derived here). Parity is checked before the
    file is moved into place."""
    from metabot.runtime.agent import Agent

    obs_dim = metadata["observation"]["dim"]
    act_dim = metadata["action"]["dim"]
    kinds = list(state_kinds) if state_kinds is not None else ["state"] * len(state_shapes)
    metadata = dict(metadata)
    metadata["state"] = [
        {"input": f"state_{i}", "output": f"state_out_{i}", "shape": list(shape), "kind": kind}
        for i, (shape, kind) in enumerate(zip(state_shapes, kinds, strict=True))
    ]
    model = trace_to_onnx(
        module,
        obs_dim,
        act_dim,
        metadata["privileged_dim"],
        state_shapes,
        extra_inputs,
        extra_outputs,
    )
    data = finalize(model, metadata)
    stripped, props = split_model(data)
    agent = Agent(data, json.loads(props[METADATA_KEY]), source=str(out_path))
    extras = {name: t.detach().numpy().astype("float32") for name, t in extra_inputs}
    report = check_parity(
        module,
        agent,
        state_shapes,
        n_random=n_random,
        seq_steps=seq_steps,
        seed=seed,
        extras=extras,
    )
    checks = {} if post_check is None else post_check(agent)
    # Record the check in the artifact itself; the graph bytes must not change.
    metadata["export"] = {
        **report.to_dict(),
        **checks,
        "exporter": f"torch {torch.__version__} TorchScript exporter (dynamo=False)",
        "opset": OPSET,
        "checker": "onnx.checker.check_model(full_check=True)",
    }
    final = finalize(model, metadata)
    if split_model(final)[0] != stripped:
        raise ArtifactError("export: the graph changed while the parity report was attached")
    return write_atomic(final, out_path), report
