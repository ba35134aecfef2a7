// Reference firmware on an Arduino-class board (sketch; adapt the servo calls to your bus).
// Copy include/*.h and src/*.{c,h} next to this sketch. The codec and state machine are
// plain C99; this file only wires the hooks to Serial, the servos and the clock.
extern "C" {
#include "mb_firmware.h"
}

static mb_fw_t fw;
static const uint8_t N = 6;

static size_t uart_read(void *, uint8_t *buf, size_t cap) {
  size_t n = 0;
  while (n < cap && Serial.available() > 0) buf[n++] = (uint8_t)Serial.read();
  return n;
}

static void uart_write(void *, const uint8_t *data, size_t len) { Serial.write(data, len); }

static int servo_read(void *, float *pos, float *vel, float *eff, uint8_t n) {
  for (uint8_t j = 0; j < n; j++) {
    pos[j] = readServoPosition(j);   // your bus driver, radians
    vel[j] = readServoVelocity(j);   // rad/s
    eff[j] = readServoCurrent(j);    // A or N*m
  }
  return 0;
}

static void servo_write(void *, const mb_drive_t *d, const mb_fw_config_t *cfg) {
  for (uint8_t j = 0; j < d->n; j++) {
    if (d->kind == MB_DRIVE_OFF) {
      setServoTorqueEnabled(j, false);
      continue;
    }
    setServoTorqueEnabled(j, true);
    setServoEffortLimit(j, d->effort_limit[j]);  // limited torque while holding
    setServoGains(j, cfg->kp[j], cfg->kd[j]);
    if (d->mode == MB_MODE_POSITION) setServoPosition(j, d->targets[j]);
    else if (d->mode == MB_MODE_VELOCITY) setServoVelocity(j, d->targets[j]);
    else setServoTorque(j, d->targets[j]);
  }
}

static uint64_t micros64() {  // extend the 32-bit micros() counter
  static uint32_t last = 0, high = 0;
  uint32_t now = micros();
  if (now < last) high++;
  last = now;
  return ((uint64_t)high << 32) | now;
}

void setup() {
  Serial.begin(1000000);
  mb_fw_info_t info = {};
  info.n_joints = N;
  info.control_modes = (1u << MB_MODE_POSITION) | (1u << MB_MODE_VELOCITY);
  info.firmware_id = 0x4D420001u;
  for (uint8_t j = 0; j < N; j++) {
    info.pos_min[j] = -3.1f; info.pos_max[j] = 3.1f;
    info.vel_max[j] = 4.0f;  info.effort_max[j] = 2.0f;
  }
  mb_hooks_t hooks = {};
  hooks.serial_read = uart_read;
  hooks.serial_write = uart_write;
  hooks.servo_read = servo_read;
  hooks.servo_write = servo_write;
  // A fresh session id per boot: hash of floating-pin ADC noise and the time.
  uint32_t session = 0;
  for (int i = 0; i < 32; i++) session = (session << 1) ^ (analogRead(A0) & 1) ^ micros();
  if (session == 0) session = 1;
  mb_fw_init(&fw, &info, &hooks, session, 2000);  // STATE every 2 ms (500 Hz)
}

void loop() { mb_fw_poll(&fw, micros64()); }
