"""The deployable agent: one verified artifact, one onnxruntime session, its memory.

`Agent` owns everything that must survive between control steps: the recurrent state or
history window, the previous applied command and reward, and the episode-start flag. All
graph inputs and outputs live in preallocated float32 buffers bound once through
onnxruntime's IOBinding, so a step is: validate obs -> copy into a buffer -> run -> copy
state out -> return the action. That keeps `act` near 14 us for the arm6 dr MLP and 35-40 us
for the arm6 RMA agent (bench/infer.json), validation included; `session.run` with a fresh
feed dict costs ~5 us more per step.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from metabot.errors import ArtifactError
from metabot.runtime.artifact import read_artifact


class InputError(ArtifactError, ValueError):
    """An observation, reward or action handed to the agent is malformed (shape, NaN, Inf)."""


_CONTEXT_INPUTS = ("obs", "prev_action", "prev_reward", "first", "privileged")
# adaptation kinds with a between-episodes adapt() step and explore=True sampling
STEP_KINDS = ("head", "model")


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

    def __init__(
        self, model_bytes: bytes, metadata: dict[str, Any], source: str = "<bytes>", seed: int = 0
    ):
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
        self._privileged = self._buffers.get("privileged") if self.privileged_dim else None
        self._action = self._buffers["action"]
        # Adaptable parameters fed as graph inputs (the head of head-only gradient agents).
        adaptation = metadata["adaptation"]
        self._extras = {name: self._buffers[name] for name in self._extra_input_names()}
        self._extra_initial = {}
        for name, buf in self._extras.items():
            value = np.asarray(adaptation.get("initial", {}).get(name), dtype=np.float32)
            if value.shape != buf.shape:
                raise ArtifactError(
                    f"{source}: adaptation.initial.{name} has shape {value.shape},"
                    f" the graph input has {buf.shape}"
                )
            self._extra_initial[name] = value
        self._rng = np.random.default_rng(seed)
        # Flat views of the bound buffers (writes land in the bound memory), and the run call.
        self._obs_flat = self._obs.reshape(-1)
        self._obs_shape = (self.obs_dim,)
        self._action_flat = self._action.reshape(-1)
        self._prev_action_flat = self._prev_action.reshape(-1)
        self._run = self._runner()
        self.last_sample: np.ndarray | None = None
        self.reset()

    def _runner(self):
        """The run call. onnxruntime's public `run_with_iobinding` wrapper adds ~3 us of
        Python checks (WebGPU graph capture) per call, 10% of a step here; call the bound
        C++ method directly when this onnxruntime exposes it, else the public one."""
        sess = getattr(self._session, "_sess", None)
        binding = getattr(self._binding, "_iobinding", None)
        if sess is not None and binding is not None and hasattr(sess, "run_with_iobinding"):
            return lambda: sess.run_with_iobinding(binding, None)
        return lambda: self._session.run_with_iobinding(self._binding)

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
        names = list(self.metadata["adaptation"].get("graph_inputs", []))
        declared = {t["name"] for t in self.metadata["inputs"]}
        if not set(names) <= declared:
            raise ArtifactError(f"{self.source}: adaptation inputs {names} are not graph inputs")
        return names

    # ---------------------------------------------------------------- episode control
    def reset(self) -> None:
        """Forget the task: zero the recurrent state / history, the previous command and
        reward, and mark the next step as the first of an episode."""
        for state_in, _ in self._state_pairs:
            state_in.fill(0.0)
        for name, buf in self._extras.items():
            np.copyto(buf, self._extra_initial[name])
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
    def act(
        self, obs: Any, *, reward: float = 0.0, privileged: Any = None, explore: bool = False
    ) -> np.ndarray:
        """One control step. `reward` is the reward of the previous step; `privileged` the
        oracle features (required by agents that use them, ignored otherwise).

        `explore=True` (head-adaptation agents): sample the action from the policy's
        Gaussian, as the adaptation episodes need; the pre-clip sample is `last_sample`."""
        if explore and self.metadata["adaptation"]["kind"] not in STEP_KINDS:
            raise ArtifactError(
                f"explore=True is for agents with an adapt() step, not {self.algorithm}")
        obs_arr = np.asarray(obs, dtype=np.float32)
        if obs_arr.shape != self._obs_shape and obs_arr.shape != self._obs.shape:
            raise InputError(
                f"observation has shape {obs_arr.shape}, the agent expects ({self.obs_dim},)"
            )
        if not np.isfinite(obs_arr).all():
            bad = np.flatnonzero(~np.isfinite(obs_arr.reshape(-1)))
            raise InputError(f"observation contains NaN or Inf at index {bad.tolist()}")
        reward = float(reward)
        if not math.isfinite(reward):
            raise InputError(f"reward is {reward}, not a finite number")
        if self._privileged is not None:
            if privileged is None:
                raise InputError(
                    f"the {self.algorithm} agent needs privileged features"
                    f" of size {self.privileged_dim}"
                )
            self._privileged[...] = _as_vector(privileged, self.privileged_dim, "privileged")
        self._obs_flat[...] = obs_arr.reshape(-1)
        if self._first[0, 0] == 0.0:
            self._prev_reward[0, 0] = reward
        self._run()
        action = self._action_flat.copy()
        if explore:
            if "mean" in self._buffers:  # the model kind's graph gives the pre-clip mean
                mean = self._buffers["mean"][0].copy()
            else:
                mean = self._buffers["features"][0] @ self._extras["head_weight"].T
                mean += self._extras["head_bias"]
            std = np.exp(np.asarray(self.metadata["adaptation"]["log_std"], np.float32))
            noise = self._rng.standard_normal(self.act_dim)
            self.last_sample = (mean + std * noise).astype(np.float32)
            action = np.clip(self.last_sample, -1.0, 1.0)
        if not np.isfinite(action).all():
            raise ArtifactError(f"{self.source}: the graph produced a non-finite action {action}")
        for state_in, state_out in self._state_pairs:
            np.copyto(state_in, state_out)
        self._prev_action_flat[...] = action
        self._first[0, 0] = 0.0
        return action

    def record_applied(self, action: Any) -> None:
        """The command actually sent after the safety layer; the next `act` sees it as
        `prev_action` (without this call it sees the agent's own last action)."""
        self._prev_action[...] = _as_vector(action, self.act_dim, "applied action")

    def adapt(self, transitions: Any) -> dict[str, Any]:
        """Adapt between episodes on `transitions` (every episode collected on this robot so
        far; format in metabot.runtime.head). Head-only gradient agents: the meta-learned
        head takes `inner_steps` closed-form policy-gradient steps and replaces the current
        head. Model kind (gradient agents with the model inner loss): the context is solved
        from the dynamics-model loss. Context agents (rl2, rma) adapt every step through
        their state and have no such step; full-network gradient agents need torch."""
        from metabot.runtime import head

        spec = self.metadata["adaptation"]
        kind = spec["kind"]
        if kind == "model":
            return self._adapt_context(head.check_transitions(transitions, self.obs_dim,
                                                              self.act_dim))
        if kind == "full":
            raise ArtifactError(
                f"the {self.algorithm} agent adapts all its weights, which needs torch: install"
                " the 'train' extra and adapt with metabot.algos.maml_adapt"
            )
        if kind != "head":
            how = (
                "through its recurrent state / history every step"
                if kind == "context"
                else ("not at all (a non-adaptive baseline)")
            )
            raise ArtifactError(f"the {self.algorithm} agent has no adapt() step: it adapts {how}")
        tr = head.check_transitions(transitions, self.obs_dim, self.act_dim)
        features = self._features(tr["obs"])
        # spec["baseline"]: the weights of a meta-learned baseline (inner_baseline = learned)
        adv = head.advantages(self._normalized(tr["obs"]), tr["rewards"], tr["ends"],
                              spec["gamma"], spec["gae_lambda"], spec.get("baseline"))
        w0 = self._extra_initial["head_weight"].astype(np.float64)
        b0 = self._extra_initial["head_bias"].astype(np.float64)
        w, b = head.head_update(
            w0,
            b0,
            np.asarray(spec["log_std"], np.float64),
            features,
            tr["actions"],
            adv,
            np.asarray(spec["step_sizes"]["head_weight"], np.float64),
            np.asarray(spec["step_sizes"]["head_bias"], np.float64),
            int(spec["inner_steps"]),
        )
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise ArtifactError(
                "adaptation produced non-finite head weights; the head is unchanged"
            )
        self._extras["head_weight"][...] = w
        self._extras["head_bias"][...] = b
        return {
            "steps": len(adv),
            "episodes": int(tr["ends"].sum()),
            "head_change": float(np.linalg.norm(w - w0) + np.linalg.norm(b - b0)),
        }

    def _normalized(self, obs: np.ndarray) -> np.ndarray:
        """The observations as the policy's normalizer sees them (what adapt() steps read)."""
        norm = self.metadata["normalizer"]
        if norm is None:
            return np.asarray(obs, np.float64)
        return np.clip((obs - np.asarray(norm["mean"])) / np.asarray(norm["std"]),
                       -norm["clip"], norm["clip"])

    def _adapt_context(self, tr: dict[str, np.ndarray]) -> dict[str, Any]:
        """The model kind's step: the context from the dynamics-model loss on every episode
        so far (metabot.runtime.model_context), replacing the current context."""
        from metabot.runtime.model_context import context_step

        spec = self.metadata["adaptation"]
        z0 = self._extra_initial["context"].astype(np.float64)
        params = {k: np.asarray(v, np.float64) for k, v in spec["model"].items()}
        z = context_step({**params, "context": z0}, self._normalized(tr["obs"]),
                         tr["actions"], tr["ends"], history=int(spec["model_history"]),
                         step_size=np.asarray(spec["step_sizes"]["context"], np.float64),
                         inner_steps=int(spec["inner_steps"]), ridge=spec["context_ridge"])
        if not np.isfinite(z).all():
            raise ArtifactError("adaptation produced a non-finite context; it is unchanged")
        self._extras["context"][...] = z
        return {"steps": len(tr["ends"]), "episodes": int(tr["ends"].sum()),
                "context_change": float(np.linalg.norm(z - z0))}

    def _features(self, obs: np.ndarray) -> np.ndarray:
        """The frozen body's features for each observation (one graph run per row)."""
        feed = {
            name: buf
            for name, buf in self._buffers.items()
            if name in {t["name"] for t in self.metadata["inputs"]}
        }
        out = np.empty((len(obs), self._buffers["features"].shape[-1]))
        for i, row in enumerate(obs):
            feed["obs"] = row.astype(np.float32)[None]
            out[i] = self._session.run(["features"], feed)[0][0]
        return out

    def head_parameters(self) -> dict[str, np.ndarray]:
        """The current (possibly adapted) graph-input parameters: the head of a
        head-adaptation agent, the context of a model-kind one."""
        return {name: buf.copy() for name, buf in self._extras.items()}

    @property
    def state(self) -> list[np.ndarray]:
        """Copies of the current recurrent state / history tensors (for logging and tests)."""
        return [s.copy() for s, _ in self._state_pairs]

    def __repr__(self) -> str:
        return (
            f"Agent({self.algorithm}, obs={self.obs_dim}, act={self.act_dim}, source={self.source})"
        )


def load(path: str | Path, *, seed: int = 0) -> Agent:
    """Load and verify an artifact (digest, schema, format version, graph shapes).
    `seed` drives exploration noise (`act(..., explore=True)`) only."""
    data, metadata = read_artifact(path)
    return Agent(data, metadata, source=str(path), seed=seed)
