"""The host-side safety layer: every command passes through `SafetyLayer.filter` before it is sent.

It never lets a non-finite, out-of-range or too-fast command through, and it refuses to
command at all when the robot's state is stale (link loss). Each cycle it reports which
interventions it made as a bit mask, so the cycle log shows exactly what was changed and why.
The MCU checks limits again on its side; this layer is the first of two, not the only one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from metabot.errors import ConfigError

from .robot import RobotDescription, RobotState

# Bit per intervention; the names are written into the cycle-log header.
NONFINITE = 1  # NaN/Inf in the action: hold instead
POSITION_CLAMP = 2  # target outside the position limits (minus margin)
STEP_CLAMP = 4  # target moved more than max_step from the last command in one cycle
VELOCITY_CLAMP = 8  # velocity command beyond the limit
EFFORT_CLAMP = 16  # torque command beyond the limit
LIMIT_PUSH = 32  # velocity/torque command pushing further past a position limit: zeroed
LINK_LOSS = 64  # no valid state within link_timeout_s: nothing sent
# A clamp smaller than this (rad) is float32 rounding of limits sent over the wire, not an
# intervention: the command is still clipped, but it is not counted or flagged.
COUNT_EPS = 1e-6
INTERVENTION_NAMES = {
    NONFINITE: "nonfinite", POSITION_CLAMP: "position_clamp", STEP_CLAMP: "step_clamp",
    VELOCITY_CLAMP: "velocity_clamp", EFFORT_CLAMP: "effort_clamp", LIMIT_PUSH: "limit_push",
    LINK_LOSS: "link_loss",
}


def intervention_names(mask: int) -> list[str]:
    return [name for bit, name in INTERVENTION_NAMES.items() if mask & bit]


@dataclass(frozen=True)
class SafetyConfig:
    """Limits applied on the host. Scales are fractions of the robot's own limits."""

    link_timeout_s: float = 0.05
    position_margin: float = 0.0  # rad kept clear of each position limit
    velocity_scale: float = 1.0
    effort_scale: float = 1.0
    max_step: float | None = None  # rad per cycle; None: velocity limit x period

    def __post_init__(self):
        if not self.link_timeout_s > 0:
            raise ConfigError(f"link_timeout_s must be > 0, got {self.link_timeout_s}")
        for name in ("velocity_scale", "effort_scale"):
            v = getattr(self, name)
            if not 0 < v <= 1:
                raise ConfigError(f"{name} must be in (0, 1], got {v}")
        if self.position_margin < 0 or (self.max_step is not None and self.max_step <= 0):
            raise ConfigError("position_margin must be >= 0 and max_step > 0")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    command: np.ndarray | None  # None: send nothing (link loss)
    interventions: int

    @property
    def names(self) -> list[str]:
        return intervention_names(self.interventions)


class SafetyLayer:
    """Stateful filter: remembers the last command sent, for step limits and for holding."""

    def __init__(self, description: RobotDescription, period_s: float,
                 config: SafetyConfig | None = None):
        self.d = description
        self.config = config or SafetyConfig()
        self.period_s = float(period_s)
        c = self.config
        self.lower = description.position_lower + c.position_margin
        self.upper = description.position_upper - c.position_margin
        if np.any(self.lower > self.upper):
            raise ConfigError("position_margin leaves no room between the joint limits")
        self.vmax = description.velocity_limit * c.velocity_scale
        self.emax = description.effort_limit * c.effort_scale
        self.max_step = (self.vmax * self.period_s if c.max_step is None
                         else np.full(description.n_joints, c.max_step))
        self.last_command: np.ndarray | None = None
        self.counts = {name: 0 for name in INTERVENTION_NAMES.values()}

    def reset(self) -> None:
        """Forget the last command (after a re-enable the arm starts from where it is)."""
        self.last_command = None

    def link_ok(self, state: RobotState | None, now: float) -> bool:
        return state is not None and now - state.received_at <= self.config.link_timeout_s

    def filter(self, action, state: RobotState | None, now: float,
               mode: str = "position") -> Decision:
        mask = 0
        if not self.link_ok(state, now):
            self._count(LINK_LOSS)
            return Decision(None, LINK_LOSS)
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape[0] != self.d.n_joints:
            raise ConfigError(f"action has {a.shape[0]} values, robot has {self.d.n_joints} joints")
        if not np.all(np.isfinite(a)):
            mask |= NONFINITE
            if mode == "position":
                a = (self.last_command if self.last_command is not None
                     else state.positions).copy()
            else:
                a = np.zeros_like(a)
        if mode == "position":
            c = np.clip(a, self.lower, self.upper)
            if np.any(np.abs(c - a) > COUNT_EPS):
                mask |= POSITION_CLAMP
            ref = self.last_command if self.last_command is not None else state.positions
            s = np.clip(c, ref - self.max_step, ref + self.max_step)
            if np.any(np.abs(s - c) > COUNT_EPS):
                mask |= STEP_CLAMP
            # Stepping from a measured position outside the margin must still respect limits.
            cmd = np.clip(s, self.d.position_lower, self.d.position_upper)
        else:
            if mode == "velocity":
                bound, bit = self.vmax, VELOCITY_CLAMP
            else:
                bound, bit = self.emax, EFFORT_CLAMP
            cmd = np.clip(a, -bound, bound)
            if np.any(cmd != a):
                mask |= bit
            q = state.positions
            push = ((q >= self.upper) & (cmd > 0)) | ((q <= self.lower) & (cmd < 0))
            if np.any(push):
                mask |= LIMIT_PUSH
                cmd = np.where(push, 0.0, cmd)
        self.last_command = cmd if mode == "position" else None
        self._count(mask)
        return Decision(cmd, mask)

    def _count(self, mask: int) -> None:
        for bit, name in INTERVENTION_NAMES.items():
            if mask & bit:
                self.counts[name] += 1
