"""What a real arm is, seen from the robot computer: numpy only.

This module is shared by the simulated envs and the deploy loop, so it imports numpy and the
standard library only (no mujoco, gymnasium or torch; a test checks this in a subprocess).

- `ArmDescription.from_mjcf(path)`: joint names (actuator order), limits, home pose and the
  kinematic chain to the tool frame, parsed from the MJCF with xml.etree.
- `forward_kinematics(desc, q)`: tool-frame position (m) in the base frame.
- `observe(desc, q, qd, effort, goal, recent_targets)`: THE observation, built only from what a
  servo bus reports (joint position, velocity, effort), the goal and the commands the host
  itself sent. Layout (n = number of joints, H = desc.command_history):

      [0:n)       joint position, (q - home) / action_scale          (~[-1, 1])
      [n:2n)      joint velocity / VEL_SCALE (rad/s / 5)
      [2n:3n)     joint effort / stall torque ([-1, 1]); left out (the parts below
                  move up by n) where desc.observe_effort is False
      [3n:3n+3)   goal xyz / REACH_SCALE (m / 0.25)
      [3n+3:3n+6) tip xyz (FK of the measured q) / REACH_SCALE
      [3n+6:3n+9) (goal - tip) / ERR_SCALE (m / 0.05)
      [3n+9:...)  the last H joint targets sent, newest first, scaled like q

  The sent targets are the host's own knowledge (what it wrote to the bus), so they are as
  available on a real arm as in sim; with latency they are the commands still in flight, a
  state a memoryless policy otherwise cannot see.
- `action_to_target(desc, action, last_target)`: joint targets (rad) in one of two modes, set
  per arm by `desc.action_step`:
  - 0 (absolute): action 0 is the home pose, +1 the upper joint limit, -1 the lower one
    (piecewise linear). A constant action is a constant servo target.
  - > 0 (delta): the target moves from the last target sent by action * action_step rad (a
    rate limit per control step), clipped to the limits. Chosen for arms where precision
    matters: a Gaussian policy's exploration noise is a fraction of action_step, not of the
    whole joint range, so a trained policy settles to millimetres instead of centimetres
    (measured in docs/adaptation_gap.md).
- `reward(desc, q, goal, action, prev_action)`: -tip_error / 0.1 m minus a small penalty on
  action change (servo chatter wears gears).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

VEL_SCALE = 5.0  # rad/s: a hobby servo's no-load speed is ~5-7 rad/s
REACH_SCALE = 0.25  # m: desktop-arm reach
ERR_SCALE = 0.05  # m: tip errors that matter are a few cm
TIP_ERROR_SCALE = 0.1  # m: reward unit
SMOOTH_COEF = 0.05  # weight of the action-change penalty
GOAL_SPREAD = 0.4  # goals: FK of home +- 40% of each joint's range to its limit
GOAL_MIN_Z = 0.04  # m above the table
GOAL_MIN_RADIUS = 0.08  # m from the base axis (not inside the base)


def _floats(text: str | None, default: tuple[float, ...]) -> np.ndarray:
    return np.array([float(v) for v in text.split()] if text else default, dtype=np.float64)


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _axis_angle_mat(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return _quat_to_mat(np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis]))


def _frame_rotation(el: ET.Element, degrees: bool) -> np.ndarray:
    """Orientation of a body/site from quat, axisangle or euler (xyz) attributes."""
    k = math.pi / 180 if degrees else 1.0
    if el.get("quat"):
        return _quat_to_mat(_floats(el.get("quat"), ()))
    if el.get("axisangle"):
        v = _floats(el.get("axisangle"), ())
        return _axis_angle_mat(v[:3], v[3] * k)
    if el.get("euler"):
        r = np.eye(3)
        for axis, ang in zip(np.eye(3), _floats(el.get("euler"), ()), strict=True):
            r = r @ _axis_angle_mat(axis, ang * k)
        return r
    return np.eye(3)


@dataclass(frozen=True)
class ChainLink:
    """One body on the path base -> tool: fixed offset, then an optional joint."""

    pos: tuple[float, ...]
    rot: tuple[tuple[float, ...], ...]
    joint_index: int  # index into ArmDescription.joints, -1 for a rigid link
    joint_type: str  # "hinge" | "slide" | ""
    joint_axis: tuple[float, ...]
    joint_pos: tuple[float, ...]


@dataclass(frozen=True)
class ArmDescription:
    """An arm as the robot computer knows it: joints, limits, home, chain, tool frame."""

    name: str
    joints: tuple[str, ...]  # actuated joints, in actuator (= command) order
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    home: tuple[float, ...]
    stall_torque: tuple[float, ...]  # N m, from the actuator forcerange
    chain: tuple[ChainLink, ...]
    tool_pos: tuple[float, ...]  # tool site offset in the last chain body
    action_step: float = 0.0  # rad per control step in delta mode; 0: absolute targets
    command_history: int = 0  # how many of the last sent targets the observation holds
    # False: the observation leaves out the servos' load readings (hobby-servo "present
    # load" is a coarse duty-cycle estimate many arm stacks never read; without it a
    # memoryless policy cannot read a weak servo's or a payload's sag off one observation)
    observe_effort: bool = True

    @property
    def n_joints(self) -> int:
        return len(self.joints)

    @property
    def obs_dim(self) -> int:
        return self.error_slice.stop + self.command_history * self.n_joints

    @property
    def error_slice(self) -> slice:
        """Where (goal - tip) / ERR_SCALE sits in the observation."""
        start = (2 + self.observe_effort) * self.n_joints + 6
        return slice(start, start + 3)

    @classmethod
    def from_mjcf(cls, path: str | Path, tool_site: str = "tool") -> ArmDescription:
        """Parse joints (via the actuators), limits, home keyframe and chain from an MJCF."""
        root = ET.parse(path).getroot()
        compiler = root.find("compiler")
        degrees = compiler is None or compiler.get("angle", "degree") == "degree"
        k = math.pi / 180 if degrees else 1.0
        joint_defaults = root.find("default/joint")
        default_axis = joint_defaults.get("axis") if joint_defaults is not None else None
        pos_default = root.find("default/position")
        world = root.find("worldbody")
        joints_el = {j.get("name"): j for j in world.iter("joint") if j.get("name")}
        names, lower, upper, stall = [], [], [], []
        for act in root.find("actuator"):
            jname = act.get("joint")
            if jname not in joints_el:
                raise ValueError(f"{path}: actuator {act.get('name')!r} drives no named joint")
            rng = joints_el[jname].get("range")
            if not rng:
                raise ValueError(f"{path}: joint {jname!r} needs a range (joint limits)")
            lo, hi = _floats(rng, ()) * k
            fr = act.get("forcerange") or (
                pos_default.get("forcerange") if pos_default is not None else None
            )
            names.append(jname)
            lower.append(float(lo))
            upper.append(float(hi))
            stall.append(float(_floats(fr, (0.0, 1.0))[1]) if fr else 1.0)
        home = np.clip(np.zeros(len(names)), lower, upper)
        key = root.find("keyframe/key[@name='home']")
        qpos_index = [j.get("name") for j in world.iter("joint")]  # hinge/slide: 1 qpos each
        if key is not None and key.get("qpos"):
            qpos = _floats(key.get("qpos"), ())
            home = np.array([qpos[qpos_index.index(n)] for n in names])
        # path world -> body holding the tool site
        parent = {c: p for p in root.iter() for c in p}
        site = next((s for s in root.iter("site") if s.get("name") == tool_site), None)
        if site is None:
            raise ValueError(f"{path}: no site named {tool_site!r} (the tool frame)")
        bodies = []
        el = parent[site]
        while el.tag == "body":
            bodies.append(el)
            el = parent[el]
        chain = []
        for body in reversed(bodies):
            rot = _frame_rotation(body, degrees)
            joint = body.find("joint")
            jidx, jtype, jaxis, jpos = -1, "", (0.0, 0.0, 1.0), (0.0, 0.0, 0.0)
            if joint is not None:
                jtype = joint.get("type", "hinge")
                if jtype not in ("hinge", "slide"):
                    raise ValueError(f"{path}: chain joint type {jtype!r} not supported")
                jidx = names.index(joint.get("name")) if joint.get("name") in names else -1
                if jidx < 0:
                    raise ValueError(f"{path}: chain joint {joint.get('name')!r} is not actuated")
                jaxis = tuple(_floats(joint.get("axis") or default_axis, (0.0, 0.0, 1.0)))
                jpos = tuple(_floats(joint.get("pos"), (0.0, 0.0, 0.0)))
            chain.append(
                ChainLink(
                    pos=tuple(_floats(body.get("pos"), (0.0, 0.0, 0.0))),
                    rot=tuple(map(tuple, rot)),
                    joint_index=jidx,
                    joint_type=jtype,
                    joint_axis=jaxis,
                    joint_pos=jpos,
                )
            )
        return cls(
            name=root.get("model", Path(path).stem),
            joints=tuple(names),
            lower=tuple(lower),
            upper=tuple(upper),
            home=tuple(float(h) for h in home),
            stall_torque=tuple(stall),
            chain=tuple(chain),
            tool_pos=tuple(_floats(site.get("pos"), (0.0, 0.0, 0.0))),
        )


def forward_kinematics(desc: ArmDescription, q: np.ndarray) -> np.ndarray:
    """Tool position (m, base frame) for joint positions q of shape (..., n) -> (..., 3).

    Maps the tool point from the last body back to the base, one link at a time, with
    Rodrigues' formula on vectors: only (..., 3) arithmetic, no batched 3x3 products, which
    keeps FK a small fraction of a batched env step.
    """
    q = np.asarray(q, dtype=np.float64)
    p = np.broadcast_to(np.asarray(desc.tool_pos, dtype=np.float64), (*q.shape[:-1], 3))
    for link in reversed(desc.chain):
        if link.joint_index >= 0:
            axis = np.asarray(link.joint_axis, dtype=np.float64)
            axis = axis / np.linalg.norm(axis)
            angle = q[..., link.joint_index, None]
            if link.joint_type == "hinge":
                jp = np.asarray(link.joint_pos, dtype=np.float64)
                v = p - jp
                c, s = np.cos(angle), np.sin(angle)
                x, y, z = axis
                kx = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])  # v @ kx.T = axis x v
                p = jp + v * c + (v @ kx.T) * s + axis * ((v @ axis)[..., None] * (1 - c))
            else:
                p = p + axis * angle
        p = np.asarray(link.pos) + p @ np.asarray(link.rot).T
    return p


def tip_error(desc: ArmDescription, q: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """Euclidean tool-to-goal distance (m), from numpy FK: (..., n), (..., 3) -> (...)."""
    return np.linalg.norm(forward_kinematics(desc, q) - np.asarray(goal), axis=-1)


def _scales(desc: ArmDescription) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    home = np.asarray(desc.home)
    up = np.maximum(np.asarray(desc.upper) - home, 1e-6)
    down = np.maximum(home - np.asarray(desc.lower), 1e-6)
    return home, up, down


def _normalize_q(desc: ArmDescription, q: np.ndarray) -> np.ndarray:
    """Joint positions (or targets) in action units of absolute mode: home 0, limits +-1."""
    home, up, down = _scales(desc)
    q = np.asarray(q, dtype=np.float64)
    return np.where(q >= home, (q - home) / up, (q - home) / down)


def action_to_target(
    desc: ArmDescription, action: np.ndarray, last_target: np.ndarray | None = None
) -> np.ndarray:
    """Map actions in [-1, 1]^n to joint targets (rad): absolute about home, or (delta mode,
    desc.action_step > 0) a step of at most action_step from `last_target`, the target sent
    last (required in delta mode)."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    if desc.action_step > 0:
        if last_target is None:
            raise ValueError(f"{desc.name}: delta actions need the last target sent")
        step = np.asarray(last_target, dtype=np.float64) + desc.action_step * a
        return np.clip(step, desc.lower, desc.upper)
    home, up, down = _scales(desc)
    return home + np.where(a >= 0, a * up, a * down)


def target_to_action(
    desc: ArmDescription, target: np.ndarray, last_target: np.ndarray | None = None
) -> np.ndarray:
    """Inverse of action_to_target: the action that yields `target` (for the command actually
    sent after a safety layer, and for scripted baselines)."""
    if desc.action_step > 0:
        if last_target is None:
            raise ValueError(f"{desc.name}: delta actions need the last target sent")
        d = np.asarray(target, dtype=np.float64) - np.asarray(last_target, dtype=np.float64)
        return np.clip(d / desc.action_step, -1.0, 1.0)
    return np.clip(_normalize_q(desc, target), -1.0, 1.0)


def sample_goals(desc: ArmDescription, rng: np.random.Generator, n: int) -> np.ndarray:
    """n reachable goals (m, base frame) as the training envs draw them, one per episode:
    FK of a random pose about home, kept if above the table and clear of the base."""
    home, up, down = _scales(desc)
    goals = np.empty((0, 3))
    while len(goals) < n:
        u = rng.uniform(-GOAL_SPREAD, GOAL_SPREAD, size=(2 * n, desc.n_joints))
        q = home + np.where(u >= 0, u * up, u * down)
        g = forward_kinematics(desc, q)
        ok = (g[:, 2] >= GOAL_MIN_Z) & (np.hypot(g[:, 0], g[:, 1]) >= GOAL_MIN_RADIUS)
        goals = np.concatenate([goals, g[ok]])
    return goals[:n]


def observe(
    desc: ArmDescription,
    q: np.ndarray,
    qd: np.ndarray,
    effort: np.ndarray,
    goal: np.ndarray,
    recent_targets: np.ndarray | None = None,
) -> np.ndarray:
    """The observation (float32, layout in the module docstring); works on (..., n) batches.

    recent_targets: (..., H, n) joint targets sent, newest first, H >= desc.command_history
    (required when the arm's observation holds a command history)."""
    q = np.asarray(q, dtype=np.float64)
    tip = forward_kinematics(desc, q)
    goal = np.broadcast_to(np.asarray(goal, dtype=np.float64), tip.shape)
    parts = [_normalize_q(desc, q), np.asarray(qd) / VEL_SCALE]
    if desc.observe_effort:
        parts.append(np.asarray(effort) / np.asarray(desc.stall_torque))
    parts += [goal / REACH_SCALE, tip / REACH_SCALE, (goal - tip) / ERR_SCALE]
    h = desc.command_history
    if h:
        if recent_targets is None:
            raise ValueError(f"{desc.name}: the observation needs the last {h} targets sent")
        recent = np.asarray(recent_targets, dtype=np.float64)[..., :h, :]
        if recent.shape[-2:] != (h, desc.n_joints):
            raise ValueError(
                f"{desc.name}: recent_targets must be (..., {h}, {desc.n_joints}), "
                f"got {recent.shape}"
            )
        parts.append(_normalize_q(desc, recent).reshape(*recent.shape[:-2], h * desc.n_joints))
    return np.concatenate(parts, axis=-1).astype(np.float32)


def reward(
    desc: ArmDescription,
    q: np.ndarray,
    goal: np.ndarray,
    action: np.ndarray,
    prev_action: np.ndarray,
) -> np.ndarray:
    """-tip_error / 0.1 m - 0.05 * mean squared action change; (...,) float64."""
    return reward_from_error(tip_error(desc, q, goal), action, prev_action)


def reward_from_error(err: np.ndarray, action: np.ndarray, prev_action: np.ndarray) -> np.ndarray:
    """`reward` given an already computed tip error (saves a second FK in batched envs)."""
    da = np.asarray(action, dtype=np.float64) - np.asarray(prev_action, dtype=np.float64)
    return -np.asarray(err) / TIP_ERROR_SCALE - SMOOTH_COEF * np.mean(da * da, axis=-1)
