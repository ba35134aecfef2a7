"""The mock robot's physical arm: MuJoCo physics driven by an emulated servo position loop.

The task library models each servo as MuJoCo's position actuator. A real bus servo is a
firmware PD loop at about 1 kHz that reads its own output encoder and saturates at its
stall torque; that is what this module runs, with the actuators turned into pure torque
motors (gainprm[0] = 1, biasprm = 0) so MuJoCo applies exactly the firmware's torque.
On top it adds what the training distribution does not model:
  - backlash: a gear play of +-b between motor and output; on a torque reversal the motor
    crosses the gap at its free speed and transmits nothing meanwhile (hysteresis, not the
    training set's dead band);
  - stiction: static friction above the Coulomb friction while a joint is (nearly) still;
  - encoder quantization (counts per turn) of the reported and controlled position, and a
    velocity that, as on a real servo, is a filtered difference of those counts.
Imports mujoco: only the mock robot imports this module.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from metabot.errors import MissingExtraError

try:
    import mujoco
except ImportError:  # the robot-side install has no MuJoCo; only the mock needs it
    raise MissingExtraError("the mock robot", "sim") from None

from metabot.bridge.mcu import DriveKind


@dataclass
class ServoParams:
    """The firmware servo loop (per joint arrays, SI units)."""

    kp: np.ndarray  # N m / rad
    kd: np.ndarray  # N m s / rad
    tau_max: np.ndarray  # stall torque, N m
    deadband: np.ndarray  # rad of position error ignored (the servo's dead-band register)
    delay_s: float = 0.0  # command-to-servo delay (bus scheduling), from the task
    obs_noise: float = 0.0  # rad std of encoder noise, from the task


@dataclass
class Effects:
    """Effects beyond the training distribution, drawn per mock from its own seed."""

    backlash: np.ndarray  # rad, half the gear play per joint
    stiction: np.ndarray  # N m of static friction added to the Coulomb friction
    encoder_counts: int = 4096
    free_speed: float = 8.0  # rad/s at which the motor crosses the backlash gap
    stick_speed: float = 0.02  # rad/s below which a joint counts as still

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}

    @classmethod
    def draw(cls, n: int, rng: np.random.Generator) -> Effects:
        return cls(backlash=rng.uniform(0.001, 0.005, n), stiction=rng.uniform(0.01, 0.06, n))


def servo_params_from_model(model: mujoco.MjModel) -> ServoParams:
    """Read kp, kd and stall torque from a model's position actuators (before conversion)."""
    kp = model.actuator_gainprm[:, 0].copy()
    kd = -model.actuator_biasprm[:, 2].copy()
    tau = np.where(model.actuator_forcelimited > 0, model.actuator_forcerange[:, 1], 3.0)
    n = model.nu
    return ServoParams(kp=kp, kd=np.maximum(kd, 0.0), tau_max=tau.copy(), deadband=np.zeros(n))


class MockArm:
    """Physics + servo loop. `step(kind, mode, targets, effort_limit)` advances one dt."""

    def __init__(self, model: mujoco.MjModel, servo: ServoParams, effects: Effects,
                 rng: np.random.Generator, *, dt: float = 0.001, home: np.ndarray | None = None):
        self.model = model
        self.servo = servo
        self.effects = effects
        self.rng = rng
        n = model.nu
        self.n = n
        # Servo loop replaces MuJoCo's position actuator: the actuators become torque motors.
        model.actuator_gainprm[:, :] = 0.0
        model.actuator_gainprm[:, 0] = 1.0
        model.actuator_biasprm[:, :] = 0.0
        model.actuator_ctrllimited[:] = 1
        model.actuator_ctrlrange[:, 0] = -servo.tau_max
        model.actuator_ctrlrange[:, 1] = servo.tau_max
        model.opt.timestep = dt
        self.dt = dt
        joints = model.actuator_trnid[:, 0]
        self.qadr = model.jnt_qposadr[joints].copy()
        self.vadr = model.jnt_dofadr[joints].copy()
        # Contiguous joints (every arm here): slices are cheaper than index arrays.
        contiguous = bool(np.all(np.diff(self.qadr) == 1) and np.all(np.diff(self.vadr) == 1))
        self.qsl = slice(int(self.qadr[0]), int(self.qadr[0]) + n) if contiguous else self.qadr
        self.vsl = slice(int(self.vadr[0]), int(self.vadr[0]) + n) if contiguous else self.vadr
        self.lower = model.jnt_range[joints, 0].copy()
        self.upper = model.jnt_range[joints, 1].copy()
        self.coulomb = model.dof_frictionloss[self.vadr].copy()
        self.data = mujoco.MjData(model)
        if home is not None:  # where the arm was left at power-on (not a reset: a start)
            self.data.qpos[self.qadr] = home
        mujoco.mj_forward(model, self.data)
        self.res = 2 * np.pi / effects.encoder_counts
        self.gap = np.zeros(n)  # motor minus output angle, within +-backlash
        self.q_meas = self._encoder()
        self.qd_meas = np.zeros(n)
        self.tau_cmd = np.zeros(n)
        self.vel_setpoint: np.ndarray | None = None
        self._delay_line: deque = deque()
        self.time = 0.0
        self.payload_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "payload")
        self.max_speed = 0.0  # highest true joint speed since the last reset (side channel)
        self._zeros = np.zeros(n)
        self._lim_src = self._tgt_src = None
        self._has_deadband = bool(np.any(servo.deadband > 0))
        self._b = effects.backlash.copy()
        self._nb = -self._b
        self._b_in = self._b - 1e-9
        self._cross_step = effects.free_speed * dt
        self._static = self.coulomb + effects.stiction
        self._alpha = dt / (0.005 + dt)

    # -- sensing -----------------------------------------------------------------------------
    def _encoder(self) -> np.ndarray:
        q = self.data.qpos[self.qsl]
        if self.servo.obs_noise > 0:
            q = q + self.servo.obs_noise * self.rng.standard_normal(self.n)
        return np.round(q / self.res) * self.res

    @property
    def q_true(self) -> np.ndarray:
        return self.data.qpos[self.qadr].copy()

    @property
    def qd_true(self) -> np.ndarray:
        return self.data.qvel[self.vadr].copy()

    # -- actuation ---------------------------------------------------------------------------
    def _delayed(self, drive: tuple) -> tuple:
        if self.servo.delay_s <= 0:
            return drive
        line = self._delay_line
        line.append((self.time, drive))
        while len(line) > 1 and line[1][0] <= self.time - self.servo.delay_s:
            line.popleft()
        return line[0][1]

    def step(self, kind: int, mode: int, targets: np.ndarray, effort_limit: np.ndarray) -> None:
        # Hot path (1 kHz in Python): slices instead of fancy indexing, min/max instead of
        # np.clip (whose wrapper costs more than the math on 6 numbers), cached conversions.
        kind, mode, targets, effort_limit = self._delayed((kind, mode, targets, effort_limit))
        s = self.servo
        q, qd = self.q_meas, self.qd_meas
        if effort_limit is not self._lim_src:
            self._lim_src = effort_limit
            self._lim = np.minimum(np.asarray(effort_limit, np.float64), s.tau_max)
            self._nlim = -self._lim
        lim, nlim = self._lim, self._nlim
        if targets is not self._tgt_src:
            self._tgt_src = targets
            self._tgt = np.asarray(targets, np.float64)
        if kind == DriveKind.OFF:
            tau = self._zeros
            self.vel_setpoint = None
        elif kind == DriveKind.TRACK and mode == 3:  # torque mode
            tau = np.minimum(np.maximum(self._tgt, nlim), lim)
            self.vel_setpoint = None
        else:
            if kind == DriveKind.TRACK and mode == 2:  # velocity: integrate a position setpoint
                if self.vel_setpoint is None:
                    self.vel_setpoint = q.copy()
                self.vel_setpoint = np.minimum(np.maximum(
                    self.vel_setpoint + self._tgt * self.dt, self.lower), self.upper)
                goal = self.vel_setpoint
            else:
                self.vel_setpoint = None
                goal = self._tgt
            err = goal - q
            if self._has_deadband:
                err = np.sign(err) * np.maximum(np.abs(err) - s.deadband, 0.0)
            tau = np.minimum(np.maximum(s.kp * err - s.kd * qd, nlim), lim)
        self.tau_cmd = tau
        # Backlash: torque reaches the output only with the gap closed in its direction.
        gap = self.gap
        pos, neg = tau > 0, tau < 0
        engaged = (pos & (gap >= self._b_in)) | (neg & (gap <= -self._b_in))
        crossing = (pos | neg) & ~engaged
        if crossing.any():
            gap = np.where(crossing, np.minimum(np.maximum(
                gap + np.sign(tau) * self._cross_step, self._nb), self._b), gap)
        d = self.data
        qsl = self.qsl
        d.ctrl[:] = np.where(engaged, tau, 0.0)
        # Stiction: breakaway friction above Coulomb while (nearly) still.
        speed = np.abs(d.qvel[self.vsl])
        still = speed < self.effects.stick_speed
        self.model.dof_frictionloss[self.vsl] = np.where(still, self._static, self.coulomb)
        q_before = d.qpos[qsl].copy()
        mujoco.mj_step(self.model, d)
        self.time += self.dt
        # The output drags the free motor along when it moves across the gap.
        self.gap = np.where(engaged, gap, np.minimum(np.maximum(
            gap - (d.qpos[qsl] - q_before), self._nb), self._b))
        q_new = self._encoder()
        raw_v = (q_new - self.q_meas) / self.dt
        self.qd_meas = qd + self._alpha * (raw_v - qd)  # 5 ms low-pass, a servo's speed register
        self.q_meas = q_new
        top = float(speed.max())
        if top > self.max_speed:
            self.max_speed = top

    def measured(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the servos report: quantized position, speed and load (commanded torque)."""
        tau_q = np.round(self.tau_cmd / (self.servo.tau_max / 1000)) * (self.servo.tau_max / 1000)
        return self.q_meas.copy(), self.qd_meas.copy(), tau_q

    def set_payload(self, kg: float) -> None:
        """Change the tool payload mid-run (a point-like mass at the tool frame)."""
        if self.payload_body < 0:
            raise ValueError("this arm has no 'payload' body")
        m = max(float(kg), 1e-4)
        self.model.body_mass[self.payload_body] = m
        self.model.body_inertia[self.payload_body] = 0.4 * m * 0.02 ** 2  # 2 cm sphere
        mujoco.mj_setConst(self.model, self.data)

    @property
    def payload(self) -> float:
        return float(self.model.body_mass[self.payload_body]) if self.payload_body >= 0 else 0.0
