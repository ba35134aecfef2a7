"""Randomization specs: a distribution defined by an MJCF plus a TOML file, no Python.

A spec file has one [distribution] table and one [[param]] table per randomized parameter:

    [distribution]
    name = "arm6-reach"          # task name
    robot = "6-DoF desktop servo arm"
    model = "arm6.xml"           # MJCF, relative to the spec file
    control_dt = 0.02            # s, the servo command period (part of the task)
    physics_dt = 0.002           # s, MuJoCo timestep (<= 2 ms)
    episode_steps = 100          # control steps per episode
    encoder_counts = 4096        # counts/turn of the joint encoders (0: no quantization)
    action_step = 0.1            # optional, arms: rad per step of delta targets (0: absolute)
    command_history = 4          # optional, arms: last sent targets in the observation
    observe_effort = false       # optional, arms: leave the servo load out (default true)

    [[param]]
    name = "actuator_kp"         # unique
    target = "actuator_kp"       # what it acts on (TARGETS below)
    elements = ["shoulder_lift"] # optional: bodies / joints / actuators by name (default all)
    per = "each"                 # "each": one draw per element; "all": one shared draw
    range = [0.3, 1.5]           # training range; scale targets are multipliers
    unit = "x nominal"
    why = "STS3215 stall torque 1.9-2.9 N m between 7.4 and 12 V; weak/aged servos"
    sampling = "log"             # optional: "log" | "uniform" ("int" for action_delay)
    ood_range = [0.2, 2.0]       # optional: the widened `ood` range (default: +-50% of span)

Loading validates everything and raises ConfigError naming the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from metabot.errors import ConfigError

# target -> (kind, what its `elements` name)
#   "scale": multiplies the nominal model value, must be > 0
#   "abs":   absolute value in the given unit, must be >= 0
TARGETS: dict[str, tuple[str, str]] = {
    "body_mass": ("scale", "body"),  # mass and inertia of bodies together (density change)
    "body_inertia": ("scale", "body"),  # inertia only (mass distribution)
    "dof_damping": ("scale", "joint"),
    "dof_frictionloss": ("scale", "joint"),
    "dof_armature": ("scale", "joint"),
    "actuator_kp": ("scale", "actuator"),  # gainprm[0] and biasprm[1] together
    "actuator_gear": ("scale", "actuator"),  # motor strength of torque actuators
    "geom_friction": ("scale", "geom"),  # sliding friction
    "payload_mass": ("abs", "body"),  # kg, set on a (massless) payload body
    "gravity": ("abs", ""),  # m/s^2, magnitude, along -z
    "action_delay": ("int", ""),  # control steps between command and servo
    "command_delay": ("abs", ""),  # s within a control step before a new command acts
    "obs_noise": ("abs", ""),  # rad, std of joint-position noise (vel/effort derived)
    "deadband": ("abs", ""),  # rad, servo dead band / backlash
    "action_scale": ("scale", ""),  # multiplies the action before it reaches the robot
    "eq_solref": ("scale", "equality"),  # time constant of equality constraints (mocap weld)
    "goal": ("abs", ""),  # a task goal (target velocity, direction angle...), not dynamics
    "custom": ("abs", ""),  # applied by the distribution's own Python (e.g. pole length)
}

REQUIRED_PARAM = ("name", "target", "range", "unit", "why")
REQUIRED_DIST = ("name", "robot", "model", "control_dt", "physics_dt", "episode_steps")


@dataclass(frozen=True)
class ParamSpec:
    """One randomized physical parameter."""

    name: str
    target: str
    lo: float
    hi: float
    unit: str
    why: str
    elements: tuple[str, ...] = ()
    per: str = "all"
    sampling: str = "uniform"
    ood_lo: float = 0.0
    ood_hi: float = 0.0

    @property
    def kind(self) -> str:
        return TARGETS[self.target][0]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "target": self.target,
            "range": [self.lo, self.hi],
            "ood_range": [self.ood_lo, self.ood_hi],
            "unit": self.unit,
            "why": self.why,
            "elements": list(self.elements),
            "per": self.per,
            "sampling": self.sampling,
        }

    def from_unit(self, u: float, ood: bool = False) -> float:
        """Map u in [0, 1) onto the (training or ood) range."""
        lo, hi = (self.ood_lo, self.ood_hi) if ood else (self.lo, self.hi)
        if self.sampling == "int":
            return float(min(int(lo + math.floor(u * (hi - lo + 1))), int(hi)))
        if self.sampling == "log":
            return float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return float(lo + u * (hi - lo))

    def normalize(self, v: float) -> float:
        """Value -> [-1, 1] over the training range (outside for ood draws)."""
        if self.hi == self.lo:
            return 0.0
        if self.sampling == "log":
            return (
                2 * (math.log(v) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo)) - 1
            )
        return 2 * (v - self.lo) / (self.hi - self.lo) - 1


@dataclass(frozen=True)
class DistSpec:
    """A whole distribution: model, rates and randomized parameters."""

    path: str
    name: str
    robot: str
    model: str  # absolute path of the MJCF
    control_dt: float
    physics_dt: float
    episode_steps: int
    encoder_counts: int
    description: str
    params: tuple[ParamSpec, ...]
    action_step: float = 0.0
    command_history: int = 0
    observe_effort: bool = True

    @property
    def substeps(self) -> int:
        return int(round(self.control_dt / self.physics_dt))

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


def _num(path: str, where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{path}: {where} must be a finite number, got {value!r}")
    return float(value)


def _parse_param(path: str, i: int, raw: object) -> ParamSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: param[{i}] must be a table")
    label = f"param[{i}]" + (f" ({raw['name']!r})" if "name" in raw else "")
    for key in REQUIRED_PARAM:
        if key not in raw:
            raise ConfigError(f"{path}: {label}: missing field '{key}'")
    target = raw["target"]
    if target not in TARGETS:
        raise ConfigError(
            f"{path}: {label}.target: unknown target {target!r} (one of {sorted(TARGETS)})"
        )
    kind = TARGETS[target][0]

    def rng(field: str) -> tuple[float, float]:
        r = raw[field]
        if not isinstance(r, list) or len(r) != 2:
            raise ConfigError(f"{path}: {label}.{field} must be [lo, hi]")
        lo, hi = (_num(path, f"{label}.{field}", v) for v in r)
        if lo > hi:
            raise ConfigError(f"{path}: {label}.{field}: lo {lo} > hi {hi}")
        if kind == "scale" and lo <= 0:
            raise ConfigError(f"{path}: {label}.{field}: a scale factor must be > 0, got {lo}")
        if kind in ("abs", "int") and lo < 0:
            raise ConfigError(f"{path}: {label}.{field}: must be >= 0 {raw['unit']}, got {lo}")
        if kind == "int" and (lo != int(lo) or hi != int(hi)):
            raise ConfigError(f"{path}: {label}.{field}: {target} needs whole numbers")
        return lo, hi

    lo, hi = rng("range")
    sampling = raw.get(
        "sampling", "int" if kind == "int" else "log" if kind == "scale" else "uniform"
    )
    if kind == "int":
        sampling = "int"
    if sampling not in ("uniform", "log", "int"):
        raise ConfigError(f"{path}: {label}.sampling: {sampling!r} not uniform|log")
    if sampling == "log" and lo <= 0:
        raise ConfigError(f"{path}: {label}.sampling: log sampling needs lo > 0")
    if "ood_range" in raw:
        ood_lo, ood_hi = rng("ood_range")
        if ood_lo > lo or ood_hi < hi:
            raise ConfigError(f"{path}: {label}.ood_range must contain range")
    elif sampling == "log":
        w = 0.5 * (math.log(hi) - math.log(lo)) if hi > lo else 0.0
        ood_lo, ood_hi = math.exp(math.log(lo) - w), math.exp(math.log(hi) + w)
    else:
        w = 0.5 * (hi - lo)
        ood_lo, ood_hi = max(lo - w, 0.0), hi + w
        if sampling == "int":
            ood_lo, ood_hi = float(math.floor(ood_lo)), float(math.ceil(ood_hi))
    per = raw.get("per", "all")
    if per not in ("all", "each"):
        raise ConfigError(f"{path}: {label}.per: {per!r} not all|each")
    elements = raw.get("elements", [])
    if not isinstance(elements, list) or not all(isinstance(e, str) for e in elements):
        raise ConfigError(f"{path}: {label}.elements must be a list of names")
    for key in ("name", "unit", "why"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            raise ConfigError(f"{path}: {label}.{key} must be a non-empty string")
    return ParamSpec(
        name=raw["name"],
        target=target,
        lo=lo,
        hi=hi,
        unit=raw["unit"],
        why=raw["why"],
        elements=tuple(elements),
        per=per,
        sampling=sampling,
        ood_lo=float(ood_lo),
        ood_hi=float(ood_hi),
    )


def _resolve_model(spec_path: Path, model: str) -> Path:
    """A path relative to the spec, or `pkg:PACKAGE/relative/path` inside an installed package
    (for robots shipped by gymnasium / gymnasium-robotics; nothing is downloaded)."""
    if model.startswith("pkg:"):
        import importlib.util

        pkg, _, rel = model[4:].partition("/")
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            return Path(model)
        return Path(next(iter(spec.submodule_search_locations))) / rel
    return (spec_path.parent / model).resolve()


def load_spec(path: str | Path) -> DistSpec:
    """Read and validate a TOML randomization spec (ConfigError names file and field)."""
    path = Path(path)
    p = str(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{p}: no such randomization spec") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    dist = raw.get("distribution")
    if not isinstance(dist, dict):
        raise ConfigError(f"{p}: missing [distribution] table")
    for key in REQUIRED_DIST:
        if key not in dist:
            raise ConfigError(f"{p}: distribution: missing field '{key}'")
    control_dt = _num(p, "distribution.control_dt", dist["control_dt"])
    physics_dt = _num(p, "distribution.physics_dt", dist["physics_dt"])
    if not 0 < physics_dt <= 0.01 + 1e-12:
        raise ConfigError(f"{p}: distribution.physics_dt must be in (0, 0.01] s, got {physics_dt}")
    if not 0.01 - 1e-12 <= control_dt <= 0.05 + 1e-12:
        raise ConfigError(
            f"{p}: distribution.control_dt must be 10-50 ms (20-100 Hz), got {control_dt}"
        )
    ratio = control_dt / physics_dt
    if abs(ratio - round(ratio)) > 1e-6:
        raise ConfigError(f"{p}: distribution.control_dt must be a multiple of physics_dt")
    steps = dist["episode_steps"]
    if not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"{p}: distribution.episode_steps must be a positive integer")
    counts = dist.get("encoder_counts", 0)
    if not isinstance(counts, int) or counts < 0:
        raise ConfigError(f"{p}: distribution.encoder_counts must be an integer >= 0")
    action_step = _num(p, "distribution.action_step", dist.get("action_step", 0.0))
    if not 0.0 <= action_step <= 1.0:
        raise ConfigError(
            f"{p}: distribution.action_step must be 0-1 rad per step, got {action_step}"
        )
    history = dist.get("command_history", 0)
    if not isinstance(history, int) or not 0 <= history <= 16:
        raise ConfigError(f"{p}: distribution.command_history must be an integer 0-16")
    observe_effort = dist.get("observe_effort", True)
    if not isinstance(observe_effort, bool):
        raise ConfigError(f"{p}: distribution.observe_effort must be true or false")
    model = _resolve_model(path, str(dist["model"]))
    if not model.is_file():
        raise ConfigError(f"{p}: distribution.model: no such MJCF {str(model)!r}")
    params_raw = raw.get("param", [])
    if not isinstance(params_raw, list):
        raise ConfigError(f"{p}: 'param' must be an array of tables ([[param]])")
    params = tuple(_parse_param(p, i, r) for i, r in enumerate(params_raw))
    names = [q.name for q in params]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ConfigError(f"{p}: duplicate param name(s) {sorted(dup)}")
    for q in params:  # a whole control step or more of delay is action_delay's job
        if q.target == "command_delay" and q.hi >= control_dt:
            raise ConfigError(
                f"{p}: param {q.name!r}: command_delay must stay below control_dt "
                f"({control_dt} s), got {q.hi}; use action_delay for whole steps"
            )
    return DistSpec(
        path=p,
        name=str(dist["name"]),
        robot=str(dist["robot"]),
        model=str(model),
        control_dt=control_dt,
        physics_dt=physics_dt,
        episode_steps=steps,
        encoder_counts=counts,
        description=str(dist.get("description", "")),
        params=params,
        action_step=action_step,
        command_history=history,
        observe_effort=observe_effort,
    )
