"""Build the artifact's metadata document from a loaded agent, its run info and its task
distribution (schema: metabot.runtime.schema, described in docs/artifact.md).

What deploy needs to rebuild observations without MuJoCo travels in full under `robot`:
the arm description of metabot.sim.arm (joint names in command order, limits, home pose,
stall torques, FK chain, tool offset), so an artifact stays runnable even for a user's own
arm that is not in this package's data, and `robot.observation` names the numpy function
that builds the observation from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from metabot import __version__
from metabot.runtime.schema import FORMAT_VERSION

ARM_OBS_FUNCTION = "metabot.sim.arm.observe"
ARM_ACTION_FUNCTION = "metabot.sim.arm.action_to_target"

# what each state tensor is, in order (rma's second, with latent_smoothing, is the running
# average of its z estimates and that average's weight)
STATE_KINDS = {"rl2": ["gru_hidden"], "rma": ["history", "latent_average"]}


def _json_safe(obj: Any) -> Any:
    """Tuples -> lists, numpy scalars -> floats, via a JSON round trip (NaN refused)."""
    return json.loads(json.dumps(obj, allow_nan=False, default=float))


def arm_observation_layout(arm: Any) -> list[dict[str, Any]]:
    """The layout of metabot.sim.arm.observe, part by part, with how each part is scaled."""
    from metabot.sim import arm as arm_mod

    n = arm.n_joints
    qpos = "(q - home) / (upper - home) if q >= home else (q - home) / (home - lower)"
    parts = [
        ("joint_pos", n, "rad", qpos, None),
        ("joint_vel", n, "rad/s", "qd / scale", arm_mod.VEL_SCALE),
        ("joint_effort", n, "N m", "effort / stall_torque", None),
        ("goal", 3, "m", "goal_xyz / scale", arm_mod.REACH_SCALE),
        ("tip", 3, "m", "fk(q)_xyz / scale", arm_mod.REACH_SCALE),
        ("goal_minus_tip", 3, "m", "(goal - fk(q)) / scale", arm_mod.ERR_SCALE),
    ]  # fmt: skip
    if not arm.observe_effort:
        parts = [part for part in parts if part[0] != "joint_effort"]
    if arm.command_history:
        parts.append(("sent_targets", arm.command_history * n, "rad",
                      f"last {arm.command_history} joint targets sent, newest first, each "
                      "scaled like joint_pos", None))  # fmt: skip
    layout, start = [], 0
    for name, size, unit, transform, scale in parts:
        entry = {"name": name, "start": start, "size": size, "unit": unit, "transform": transform}
        if scale is not None:
            entry["scale"] = float(scale)
        if name.startswith("joint_"):
            entry["joints"] = list(arm.joints)
        layout.append(entry)
        start += size
    return layout


def robot_section(arm: Any) -> dict[str, Any]:
    return {
        "kind": "arm",
        "arm": _json_safe(dataclasses.asdict(arm)),
        "joint_names": list(arm.joints),
        "lower": [float(v) for v in arm.lower],
        "upper": [float(v) for v in arm.upper],
        "home": [float(v) for v in arm.home],
        "observation_function": ARM_OBS_FUNCTION,
        "action_function": ARM_ACTION_FUNCTION,
    }


def normalizer_section(agent: Any) -> dict[str, Any] | None:
    norm = getattr(agent, "obs_norm", None)
    if norm is None:
        return None
    var = norm.var.double()
    return {
        "mean": norm.mean.double().tolist(),
        "std": (var + norm.eps).sqrt().tolist(),
        "clip": float(norm.clip),
        "formula": "clip((obs - mean) / std, -clip, clip), std = sqrt(var + eps)",
    }


def action_section(agent: Any, arm: Any | None) -> dict[str, Any]:
    act_dim = agent.act_dim
    section: dict[str, Any] = {
        "dim": act_dim,
        "space": "box",
        "low": [-1.0] * act_dim,
        "high": [1.0] * act_dim,
        "clipped": True,
    }
    if arm is not None and arm.action_step > 0:
        section.update(
            mode="delta",
            meaning="delta joint position target: clip(last target sent + action * step,"
            " lower, upper) (metabot.sim.arm.action_to_target)",
            step=float(arm.action_step),
            joints=list(arm.joints),
        )
    elif arm is not None:
        home = [float(v) for v in arm.home]
        section.update(
            mode="absolute",
            meaning="absolute joint position target: 0 -> home, +1 -> upper limit,"
            " -1 -> lower limit, piecewise linear (metabot.sim.arm.action_to_target)",
            offset=home,
            scale_up=[float(u) - h for u, h in zip(arm.upper, home, strict=True)],
            scale_down=[h - float(lo) for lo, h in zip(arm.lower, home, strict=True)],
            joints=list(arm.joints),
        )
    else:
        section["meaning"] = "the environment's native action in [-1, 1]"
    return section


def task_section(dist: Any, task_name: str) -> dict[str, Any]:
    dt = float(dist.dt)
    return {
        "name": task_name,
        "ranges": _json_safe(dist.ranges()),
        "control_rate_hz": 1.0 / dt if dt > 0 else 0.0,
        "dt": dt,
    }


def observation_section(agent: Any, arm: Any | None) -> dict[str, Any]:
    if arm is not None and arm.obs_dim == agent.obs_dim:
        layout = arm_observation_layout(arm)
    else:
        layout = [{"name": "obs", "start": 0, "size": agent.obs_dim}]
    return {"dim": agent.obs_dim, "layout": layout}


def adaptation_section(agent: Any) -> dict[str, Any]:
    """How the agent adapts on the robot (the head step's numbers are added by the exporter)."""
    described = agent.describe().get("adaptation")
    if described is not None:
        kind = described["kind"]
        return {"kind": kind, "requires": ["train"] if kind == "full" else []}
    if agent.state_shapes:
        return {"kind": "context", "requires": []}
    return {"kind": "none", "requires": []}


def build_metadata(agent: Any, info: dict[str, Any], dist: Any) -> dict[str, Any]:
    """Everything but inputs, outputs, state and digest (filled in by the exporter)."""
    arm = getattr(dist, "arm", None)
    seed = info.get("seed")
    meta = {
        "format_version": FORMAT_VERSION,
        "metabot_version": __version__,
        "algorithm": info.get("algo", agent.algo),
        "task": task_section(dist, info["tasks"]),
        "observation": observation_section(agent, arm),
        "normalizer": normalizer_section(agent),
        "action": action_section(agent, arm),
        "robot": robot_section(arm) if arm is not None else None,
        "privileged_dim": int(agent.privileged_dim),
        "history_length": int(agent.history_len),
        "adaptation": adaptation_section(agent),
        "training": {
            "run_id": str(info["run_id"]),
            "config_digest": str(info["config_digest"]),
            "seed": int(seed) if seed is not None else None,
            "env_steps": info.get("env_steps"),
            "finished": info.get("finished"),
            "agent_class": agent.describe().get("class"),
            "budget_unit": getattr(agent, "budget_unit", "steps"),
        },
    }
    _check_finite(meta)
    return meta


def _check_finite(obj: Any, path: str = "metadata") -> None:
    from metabot.errors import ArtifactError

    if isinstance(obj, float) and not math.isfinite(obj):
        raise ArtifactError(f"export: {path} is {obj}; the trained agent has non-finite statistics")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _check_finite(v, f"{path}[{i}]")
