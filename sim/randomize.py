"""Apply a Task's parameters to a MuJoCo model (the model-side half of a spec).

Scale targets multiply the NOMINAL value (read once from the unmodified model), so applying
a task is idempotent and never compounds. Targets that are not model fields (action_delay,
command_delay, obs_noise, deadband, action_scale) are read by the env, not here.
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np

from metabot.errors import ConfigError

from .spec import DistSpec, ParamSpec
from .task import Task

_OBJ = {
    "body": mujoco.mjtObj.mjOBJ_BODY,
    "joint": mujoco.mjtObj.mjOBJ_JOINT,
    "actuator": mujoco.mjtObj.mjOBJ_ACTUATOR,
    "geom": mujoco.mjtObj.mjOBJ_GEOM,
    "equality": mujoco.mjtObj.mjOBJ_EQUALITY,
}
MODEL_TARGETS = {
    "body_mass", "body_inertia", "dof_damping", "dof_frictionloss", "dof_armature",
    "actuator_kp", "actuator_gear", "geom_friction", "payload_mass", "gravity", "eq_solref",
}  # fmt: skip


def _all_ids(model: mujoco.MjModel, kind: str) -> list[int]:
    if kind == "body":  # every body with mass, world excluded
        return [i for i in range(1, model.nbody) if model.body_mass[i] > 0]
    if kind == "joint":
        return list(range(model.njnt))
    if kind == "actuator":
        return list(range(model.nu))
    if kind == "equality":
        return list(range(model.neq))
    return list(range(model.ngeom))


def resolve_elements(spec: DistSpec, model: mujoco.MjModel) -> dict[str, list[int]]:
    """Element ids per param (ConfigError naming file and param for an unknown name)."""
    from .spec import TARGETS

    out: dict[str, list[int]] = {}
    for p in spec.params:
        kind = TARGETS[p.target][1]
        if not kind:
            out[p.name] = []
            continue
        if not p.elements:
            if p.target == "payload_mass":
                raise ConfigError(
                    f"{spec.path}: param {p.name!r}: payload_mass needs elements = [body]"
                )
            out[p.name] = _all_ids(model, kind)
            continue
        ids = []
        for name in p.elements:
            i = mujoco.mj_name2id(model, _OBJ[kind], name)
            if i < 0 and kind == "geom":  # a body name stands for all of that body's geoms
                b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
                if b >= 0:
                    ids.extend(int(g) for g in np.flatnonzero(model.geom_bodyid == b))
                    continue
            if i < 0:
                raise ConfigError(
                    f"{spec.path}: param {p.name!r}.elements: no {kind} named {name!r} in the MJCF"
                )
            ids.append(i)
        out[p.name] = ids
        if p.target == "actuator_kp":
            for i in ids:
                if model.actuator_biasprm[i, 1] != -model.actuator_gainprm[i, 0]:
                    raise ConfigError(
                        f"{spec.path}: param {p.name!r}: actuator {i} is not a position actuator"
                    )
    return out


class ModelRandomizer:
    """Holds the nominal model and writes a task's parameters into a copy of it."""

    def __init__(self, spec: DistSpec, model: mujoco.MjModel):
        self.spec = spec
        self.nominal = model
        self.elements = resolve_elements(spec, model)

    def counts(self) -> dict[str, int]:
        return {k: max(len(v), 1) for k, v in self.elements.items()}

    def build(self, task: Task) -> mujoco.MjModel:
        """A fresh MjModel with the task's parameters applied."""
        m = _copy(self.nominal)
        self.apply(m, task)
        return m

    def apply(self, m: mujoco.MjModel, task: Task) -> None:
        """Write the task's model parameters into m (same structure as the nominal) in place."""
        for p in self.spec.params:
            if p.target in MODEL_TARGETS:
                self._apply(m, p, task.param(p.name))
        mujoco.mj_setConst(m, mujoco.MjData(m))  # refresh mass-dependent constants

    def _apply(self, m: mujoco.MjModel, p: ParamSpec, vals: np.ndarray) -> None:
        nom = self.nominal
        ids = self.elements[p.name]
        per = vals if p.per == "each" else np.full(len(ids), vals[0])
        for i, v in zip(ids, per, strict=False):
            if p.target == "body_mass":
                m.body_mass[i] = nom.body_mass[i] * v
                m.body_inertia[i] = nom.body_inertia[i] * v
            elif p.target == "body_inertia":
                m.body_inertia[i] = nom.body_inertia[i] * v
            elif p.target == "payload_mass":
                # a solid sphere of 2 cm radius at the tool frame
                m.body_mass[i] = max(float(v), 1e-6)
                m.body_inertia[i] = 0.4 * max(float(v), 1e-6) * 0.02**2
            elif p.target in ("dof_damping", "dof_frictionloss", "dof_armature"):
                field = p.target.split("_", 1)[1]
                dofs = _joint_dofs(nom, i)
                getattr(m, f"dof_{field}")[dofs] = getattr(nom, f"dof_{field}")[dofs] * v
            elif p.target == "actuator_kp":
                m.actuator_gainprm[i, 0] = nom.actuator_gainprm[i, 0] * v
                m.actuator_biasprm[i, 1] = nom.actuator_biasprm[i, 1] * v
            elif p.target == "actuator_gear":
                m.actuator_gear[i, 0] = nom.actuator_gear[i, 0] * v
            elif p.target == "geom_friction":
                m.geom_friction[i, 0] = nom.geom_friction[i, 0] * v
            elif p.target == "eq_solref":
                m.eq_solref[i, 0] = nom.eq_solref[i, 0] * v
        if p.target == "gravity":
            m.opt.gravity[:] = (0.0, 0.0, -float(vals[0]))


def _joint_dofs(m: mujoco.MjModel, j: int) -> slice:
    start = m.jnt_dofadr[j]
    width = {0: 6, 1: 3, 2: 1, 3: 1}[int(m.jnt_type[j])]
    return slice(start, start + width)


def _copy(model: mujoco.MjModel) -> mujoco.MjModel:
    return copy.copy(model)  # MjModel.__copy__ is a full mj_copyModel
