"""The deployable agent: one verified artifact, one onnxruntime session, its memory.

`Agent` owns everything that must survive between control steps: the recurrent state or
history window, the previous applied command and reward, and the episode-start flag. All
graph inputs and outputs live in preallocated float32 buffers bound once through
onnxruntime's IOBinding, so a step is: validate obs -> copy into a buffer -> run -> copy
state out -> return the action. That keeps `act` near 15 us for a small MLP, well under the
100 us budget, where `session.run` with a fresh feed dict costs about twice that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from metabot.errors import ArtifactError
from metabot.runtime.artifact import read_artifact


class InputError(ArtifactError, ValueError):
    """An observation, reward or action handed to the agent is malformed (shape, NaN, Inf)."""


_CONTEXT_INPUTS = ("obs", "prev_action", "prev_reward", "first", "privileged")


def session_options() -> ort.SessionOptions:
    """Single-threaded, sequential, no spinning: a control loop shares its cores with the
    serial I/O and must not have a thread pool burning a core between steps."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


def _as_vector(value: Any, size: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.shape != (size,) and arr.shape != (1, size):
        raise InputError(f"{what} has shape {arr.shape}, the agent expects ({size},)")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr.reshape(-1)))
        raise InputError(f"{what} contains NaN or Inf at index {bad.tolist()}")
    return arr.reshape(1, size)


class Agent:
    """A loaded artifact that acts step by step (see `metabot.runtime.load`)."""

    def __init__(self, model_bytes: bytes, metadata: dict[str, Any], source: str = "<bytes>"):
        self.metadata = metadata
        self.source = source
        self.algorithm: str = metadata["algorithm"]
        self.obs_dim: int = metadata["observation"]["dim"]
        self.act_dim: int = metadata["action"]["dim"]
        self.privileged_dim: int = metadata["privileged_dim"]
        try:
            self._session = ort.InferenceSession(
                model_bytes, session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ArtifactError(f"{source}: onnxruntime cannot load the graph: {exc}") from None
        self._check_signature()
        self._buffers = {
            t["name"]: np.zeros(t["shape"], dtype=np.float32)
            for t in metadata["inputs"] + metadata["outputs"]
        }
        self._binding = self._session.io_binding()
        for t in metadata["inputs"]:
            self._bind(self._binding.bind_input, t["name"])
        for t in metadata["outputs"]:
            self._bind(self._binding.bind_output, t["name"])
        self._state_pairs = [
            (self._buffers[s["input"]], self._buffers[s["output"]]) for s in metadata["state"]
        ]
        zeros = np.zeros((1, 1), np.float32)
        # Inputs the exporter pruned because the network ignores them get a scratch buffer.
        self._obs = self._buffers["obs"]
        self._prev_action = self._buffers.get(
            "prev_action", np.zeros((1, self.act_dim), np.float32)
        )
        self._prev_reward = self._buffers.get("prev_reward", zeros.copy())
        self._first = self._buffers.get("first", zeros.copy())
        self._privileged = self._buffers.get("privileged")
        self._action = self._buffers["action"]
        self.reset()

    def _bind(self, bind, name: str) -> None:
        buf = self._buffers[name]
        bind(name, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)

    def _check_signature(self) -> None:
        """The graph's real inputs/outputs must be exactly what the metadata declares."""
        meta = self.metadata
        for kind, declared, actual in (
            ("input", meta["inputs"], self._session.get_inputs()),
            ("output", meta["outputs"], self._session.get_outputs()),
        ):
            want = {t["name"]: list(t["shape"]) for t in declared}
            got = {a.name: a.shape for a in actual}
            if want != got:
                raise ArtifactError(
                    f"{self.source}: graph {kind}s {got} do not match the metadata {want}"
                )
            for a in actual:
                if a.type != "tensor(float)":
                    raise ArtifactError(
                        f"{self.source}: graph {kind} '{a.name}' is {a.type}, not float32"
                    )
        shapes = {t["name"]: list(t["shape"]) for t in meta["inputs"] + meta["outputs"]}
        for name, shape in (("obs", [1, self.obs_dim]), ("action", [1, self.act_dim])):
            if shapes.get(name) != shape:
                raise ArtifactError(
                    f"{self.source}: '{name}' has shape {shapes.get(name)},"
                    f" metadata dims say {shape}"
                )
        for s in meta["state"]:
            for end in ("input", "output"):
                if shapes.get(s[end]) != list(s["shape"]):
                    raise ArtifactError(
                        f"{self.source}: state tensor '{s[end]}' has shape {shapes.get(s[end])},"
                        f" metadata says {s['shape']}"
                    )
        unknown = (
            {t["name"] for t in meta["inputs"]}
            - set(_CONTEXT_INPUTS)
            - {s["input"] for s in meta["state"]}
            - set(self._extra_input_names())
        )
        if unknown:
            raise ArtifactError(
                f"{self.source}: graph has inputs the runtime cannot feed: {sorted(unknown)}"
            )

    def _extra_input_names(self) -> list[str]:
        return list(self.metadata["adaptation"].get("graph_inputs", []))

    # ---------------------------------------------------------------- episode control
    def reset(self) -> None:
        """Forget the task: zero the recurrent state / history, the previous command and
        reward, and mark the next step as the first of an episode."""
        for state_in, _ in self._state_pairs:
            state_in.fill(0.0)
        self._prev_action.fill(0.0)
        self._prev_reward.fill(0.0)
        self._first.fill(1.0)

    def new_episode(self) -> None:
        """Start an episode on the same robot: keep what was learned about its dynamics
        (hidden state, history window), mark the boundary with `first`, zero the previous
        command and reward."""
        self._prev_action.fill(0.0)
        self._prev_reward.fill(0.0)
        self._first.fill(1.0)

    # ---------------------------------------------------------------- acting
    def act(self, obs: Any, *, reward: float = 0.0, privileged: Any = None) -> np.ndarray:
        """One control step. `reward` is the reward of the previous step; `privileged` the
        oracle features (required by agents that use them, ignored otherwise)."""
        obs_arr = np.asarray(obs, dtype=np.float32)
        if obs_arr.size != self.obs_dim or obs_arr.ndim > 2:
            raise InputError(
                f"observation has shape {obs_arr.shape}, the agent expects ({self.obs_dim},)"
            )
        if not np.isfinite(obs_arr).all():
            bad = np.flatnonzero(~np.isfinite(obs_arr.reshape(-1)))
            raise InputError(f"observation contains NaN or Inf at index {bad.tolist()}")
        reward = float(reward)
        if reward != reward or reward in (float("inf"), float("-inf")):
            raise InputError(f"reward is {reward}, not a finite number")
        if self._privileged is not None and self.privileged_dim:
            if privileged is None:
                raise InputError(
                    f"the {self.algorithm} agent needs privileged features"
                    f" of size {self.privileged_dim}"
                )
            self._privileged[...] = _as_vector(privileged, self.privileged_dim, "privileged")
        self._obs.reshape(-1)[...] = obs_arr.reshape(-1)
        if self._first[0, 0] == 0.0:
            self._prev_reward[0, 0] = reward
        self._session.run_with_iobinding(self._binding)
        action = self._action.reshape(-1).copy()
        if not np.isfinite(action).all():
            raise ArtifactError(f"{self.source}: the graph produced a non-finite action {action}")
        for state_in, state_out in self._state_pairs:
            np.copyto(state_in, state_out)
        self._prev_action.reshape(-1)[...] = action
        self._first[0, 0] = 0.0
        return action

    def record_applied(self, action: Any) -> None:
        """The command actually sent after the safety layer; the next `act` sees it as
        `prev_action` (without this call it sees the agent's own last action)."""
        self._prev_action[...] = _as_vector(action, self.act_dim, "applied action")

    def adapt(self, transitions: Any) -> dict[str, Any]:
        """Adapt between episodes. Only head-only gradient agents have an explicit step;
        context agents adapt every step through their state."""
        kind = self.metadata["adaptation"]["kind"]
        if kind == "head":
            raise NotImplementedError  # filled in with the gradient family
        if kind == "full":
            raise ArtifactError(
                f"the {self.algorithm} agent adapts all its weights, which needs torch: install"
                " the 'train' extra and adapt with metabot.algos"
            )
        how = (
            "through its recurrent state / history every step"
            if kind == "context"
            else "not at all"
        )
        raise ArtifactError(f"the {self.algorithm} agent has no adapt() step: it adapts {how}")

    @property
    def state(self) -> list[np.ndarray]:
        """Copies of the current recurrent state / history tensors (for logging and tests)."""
        return [s.copy() for s, _ in self._state_pairs]

    def __repr__(self) -> str:
        return (
            f"Agent({self.algorithm}, obs={self.obs_dim}, act={self.act_dim}, source={self.source})"
        )


def load(path: str | Path) -> Agent:
    """Load and verify an artifact (digest, schema, format version, graph shapes)."""
    data, metadata = read_artifact(path)
    return Agent(data, metadata, source=str(path))
