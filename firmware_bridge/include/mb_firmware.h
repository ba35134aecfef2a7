/* metabot reference firmware: the MCU's protocol state machine and main loop (C99).
 *
 * Same rules as metabot/bridge/mcu.py (docs/protocol.md, "MCU state machine"); both are
 * checked against firmware_bridge/vectors/scenarios.txt. Port it by filling mb_hooks_t
 * and calling mb_fw_poll() from the main loop (see examples/arduino_arm.ino).
 */
#ifndef MB_FIRMWARE_H
#define MB_FIRMWARE_H

#include "mb_protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MB_WATCHDOG_MIN_MS 20u
#define MB_WATCHDOG_MAX_MS 2500u
#define MB_WATCHDOG_DEFAULT_MS 100u
#define MB_HOLD_EFFORT_FRAC_DEFAULT 0.3f
#define MB_TTL_MAX_US 2500000u
#define MB_NO_JOINT 0xFFu

typedef enum { MB_DRIVE_OFF = 0, MB_DRIVE_HOLD = 1, MB_DRIVE_TRACK = 2 } mb_drive_kind_t;

/* What the servos must do now. HOLD: position-hold `targets` with |effort| <= effort_limit. */
typedef struct {
    uint8_t kind;
    uint8_t mode;
    uint8_t n;
    float targets[MB_MAX_JOINTS];
    float effort_limit[MB_MAX_JOINTS];
} mb_drive_t;

/* Firmware identity and hard limits (HELLO_ACK); SET_CONFIG may only tighten them. */
typedef struct {
    uint8_t n_joints;
    uint8_t control_modes; /* bit (1 << mode) per supported mb_mode_t */
    uint32_t firmware_id;
    uint32_t names_digest;
    float pos_min[MB_MAX_JOINTS], pos_max[MB_MAX_JOINTS];
    float vel_max[MB_MAX_JOINTS], effort_max[MB_MAX_JOINTS];
} mb_fw_info_t;

typedef struct {
    uint16_t watchdog_ms;
    uint8_t watchdog_action;
    float hold_effort_frac;
    float pos_min[MB_MAX_JOINTS], pos_max[MB_MAX_JOINTS];
    float vel_max[MB_MAX_JOINTS], effort_max[MB_MAX_JOINTS];
    float kp[MB_MAX_JOINTS], kd[MB_MAX_JOINTS];
} mb_fw_config_t;

/* Board hooks. All are called from mb_fw_* functions only; none may block for long. */
typedef struct {
    void *ctx;
    /* Non-blocking: copy up to cap received bytes into buf, return how many. */
    size_t (*serial_read)(void *ctx, uint8_t *buf, size_t cap);
    void (*serial_write)(void *ctx, const uint8_t *data, size_t len);
    /* Measured joints; return 0 on success. */
    int (*servo_read)(void *ctx, float *pos, float *vel, float *eff, uint8_t n);
    /* Apply the drive; also receives kp/kd from the active config. */
    void (*servo_write)(void *ctx, const mb_drive_t *drive, const mb_fw_config_t *cfg);
    /* Optional (may be NULL): kick the hardware watchdog once per poll. */
    void (*hw_watchdog_kick)(void *ctx);
} mb_hooks_t;

typedef struct {
    mb_fw_info_t info;
    mb_hooks_t hooks;
    mb_fw_config_t cfg;
    mb_decoder_t decoder;
    mb_seq_tracker_t rx;
    mb_drive_t drive;
    uint32_t session_id;
    uint16_t tx_seq;
    uint8_t handshaked, armed, estopped, wd_tripped, limit_clamped, cmd_expired, fault;
    uint32_t last_cmd_seq;
    uint64_t last_feed_us, cmd_expiry_us;
    uint32_t state_period_us;
    uint64_t next_state_us;
    float pos[MB_MAX_JOINTS], vel[MB_MAX_JOINTS], eff[MB_MAX_JOINTS];
    mb_frame_t rx_frame; /* the frame being handled */
    mb_frame_t scratch;  /* large replies (HELLO_ACK, STATE): keeps handler stacks small */
} mb_fw_t;

/* session_id: fresh and non-zero at every boot (hardware RNG, or hash of ADC noise and a
 * boot counter). state_period_us: STATE rate for mb_fw_poll (0: never, call send_state). */
void mb_fw_init(mb_fw_t *fw, const mb_fw_info_t *info, const mb_hooks_t *hooks,
                uint32_t session_id, uint32_t state_period_us);
/* One main-loop iteration: read serial, handle frames, run timers, send STATE when due,
 * write the drive to the servos. */
void mb_fw_poll(mb_fw_t *fw, uint64_t now_us);
/* Building blocks of mb_fw_poll (used directly by host tests). */
void mb_fw_receive(mb_fw_t *fw, const uint8_t *data, size_t len, uint64_t now_us);
void mb_fw_handle(mb_fw_t *fw, const mb_frame_t *frame, uint64_t now_us);
void mb_fw_tick(mb_fw_t *fw, uint64_t now_us);
void mb_fw_send_state(mb_fw_t *fw, uint64_t now_us);
uint16_t mb_fw_status(const mb_fw_t *fw);

#ifdef __cplusplus
}
#endif
#endif
