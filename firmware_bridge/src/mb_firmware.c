/* metabot reference firmware state machine (C99). Twin of metabot/bridge/mcu.py: keep the
 * order of checks identical; firmware_bridge/vectors/scenarios.txt pins both down. */
#include "mb_firmware.h"

#include <string.h>

static int f32_finite(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (u & 0x7F800000u) != 0x7F800000u; /* bit test: no libm, no FP exceptions */
}

static int all_finite(const float *a, uint8_t n) {
    uint8_t i;
    for (i = 0; i < n; i++)
        if (!f32_finite(a[i])) return 0;
    return 1;
}

static void read_joints(mb_fw_t *fw) {
    if (fw->hooks.servo_read)
        (void)fw->hooks.servo_read(fw->hooks.ctx, fw->pos, fw->vel, fw->eff, fw->info.n_joints);
}

static void drive_off(mb_fw_t *fw) {
    memset(&fw->drive, 0, sizeof(fw->drive));
    fw->drive.kind = MB_DRIVE_OFF;
    fw->drive.n = fw->info.n_joints;
}

/* Hold the current measured positions with torque limited to frac * effort_max. */
static void drive_hold(mb_fw_t *fw, const float *effort_limit) {
    uint8_t j;
    memset(&fw->drive, 0, sizeof(fw->drive));
    fw->drive.kind = MB_DRIVE_HOLD;
    fw->drive.mode = MB_MODE_POSITION;
    fw->drive.n = fw->info.n_joints;
    for (j = 0; j < fw->info.n_joints; j++) {
        fw->drive.targets[j] = fw->pos[j];
        fw->drive.effort_limit[j] = effort_limit[j];
    }
}

static void send(mb_fw_t *fw, mb_frame_t *f) {
    uint8_t wire[MB_MAX_WIRE_FRAME];
    size_t n;
    f->seq = fw->tx_seq;
    f->version = MB_PROTOCOL_VERSION;
    n = mb_encode(f, wire, sizeof(wire));
    fw->tx_seq = (uint16_t)(fw->tx_seq + 1u);
    if (n > 0u && fw->hooks.serial_write) fw->hooks.serial_write(fw->hooks.ctx, wire, n);
}

static void send_ack(mb_fw_t *fw, const mb_frame_t *rx) {
    mb_frame_t f;
    mb_frame_init(&f, MB_ACK, 0);
    f.u.ack.acked_seq = rx->seq;
    f.u.ack.acked_id = rx->msg_id;
    send(fw, &f);
}

static void send_nack(mb_fw_t *fw, const mb_frame_t *rx, uint8_t reason) {
    mb_frame_t f;
    mb_frame_init(&f, MB_NACK, 0);
    f.u.nack.acked_seq = rx->seq;
    f.u.nack.acked_id = rx->msg_id;
    f.u.nack.reason = reason;
    send(fw, &f);
}

static void send_hello_ack(mb_fw_t *fw, uint32_t host_nonce) {
    mb_frame_t *f = &fw->scratch;
    mb_hello_ack_t *m = &f->u.hello_ack;
    uint8_t n = fw->info.n_joints;
    mb_frame_init(f, MB_HELLO_ACK, 0);
    m->protocol_version = MB_PROTOCOL_VERSION;
    m->host_nonce = host_nonce;
    m->firmware_id = fw->info.firmware_id;
    m->session_id = fw->session_id;
    m->control_modes = fw->info.control_modes;
    m->names_digest = fw->info.names_digest;
    m->n = n;
    memcpy(m->pos_min, fw->info.pos_min, n * sizeof(float));
    memcpy(m->pos_max, fw->info.pos_max, n * sizeof(float));
    memcpy(m->vel_max, fw->info.vel_max, n * sizeof(float));
    memcpy(m->effort_max, fw->info.effort_max, n * sizeof(float));
    send(fw, f);
}

uint16_t mb_fw_status(const mb_fw_t *fw) {
    uint16_t s = 0;
    if (fw->handshaked) s |= MB_ST_HANDSHAKED;
    if (fw->armed) s |= MB_ST_ENABLED;
    if (fw->estopped) s |= MB_ST_ESTOPPED;
    if (fw->wd_tripped) s |= MB_ST_WATCHDOG_TRIPPED;
    if (fw->drive.kind == MB_DRIVE_HOLD) s |= MB_ST_HOLDING;
    if (fw->limit_clamped) s |= MB_ST_LIMIT_CLAMPED;
    if (fw->fault != MB_FAULT_NONE) s |= MB_ST_FAULT;
    if (fw->cmd_expired) s |= MB_ST_COMMAND_EXPIRED;
    if (fw->drive.kind != MB_DRIVE_OFF) s |= MB_ST_TORQUE_ON;
    return s;
}

void mb_fw_init(mb_fw_t *fw, const mb_fw_info_t *info, const mb_hooks_t *hooks,
                uint32_t session_id, uint32_t state_period_us) {
    uint8_t n;
    memset(fw, 0, sizeof(*fw));
    fw->info = *info;
    if (fw->info.n_joints > MB_MAX_JOINTS) fw->info.n_joints = MB_MAX_JOINTS;
    n = fw->info.n_joints;
    fw->hooks = *hooks;
    fw->session_id = session_id;
    fw->state_period_us = state_period_us;
    fw->cfg.watchdog_ms = MB_WATCHDOG_DEFAULT_MS;
    fw->cfg.watchdog_action = MB_WD_HOLD;
    fw->cfg.hold_effort_frac = MB_HOLD_EFFORT_FRAC_DEFAULT;
    memcpy(fw->cfg.pos_min, info->pos_min, n * sizeof(float));
    memcpy(fw->cfg.pos_max, info->pos_max, n * sizeof(float));
    memcpy(fw->cfg.vel_max, info->vel_max, n * sizeof(float));
    memcpy(fw->cfg.effort_max, info->effort_max, n * sizeof(float));
    mb_decoder_init(&fw->decoder);
    mb_seq_init(&fw->rx);
    drive_off(fw);
}

static void handle_command(mb_fw_t *fw, const mb_frame_t *rx, uint64_t now_us) {
    const mb_command_t *m = &rx->u.command;
    const float *lo_src, *hi_src;
    float lo, hi, t;
    uint8_t j, neg, clamped = 0;
    if (fw->estopped) { send_nack(fw, rx, MB_NACK_ESTOPPED); return; }
    if (fw->wd_tripped) { send_nack(fw, rx, MB_NACK_WATCHDOG); return; }
    if (!fw->armed) { send_nack(fw, rx, MB_NACK_DISABLED); return; }
    if (m->mode < 1u || m->mode > 3u || !((fw->info.control_modes >> m->mode) & 1u)) {
        send_nack(fw, rx, MB_NACK_MODE);
        return;
    }
    if (m->n != fw->info.n_joints) { send_nack(fw, rx, MB_NACK_JOINTS); return; }
    if (m->ttl_us == 0u || m->ttl_us > MB_TTL_MAX_US || !all_finite(m->targets, m->n)) {
        send_nack(fw, rx, MB_NACK_RANGE);
        return;
    }
    if (m->cmd_seq <= fw->last_cmd_seq) { send_nack(fw, rx, MB_NACK_STALE_COMMAND); return; }
    /* MCU-side limit check: clamp every target into the active limits. */
    if (m->mode == MB_MODE_POSITION) {
        lo_src = fw->cfg.pos_min; hi_src = fw->cfg.pos_max; neg = 0;
    } else if (m->mode == MB_MODE_VELOCITY) {
        lo_src = fw->cfg.vel_max; hi_src = fw->cfg.vel_max; neg = 1;
    } else {
        lo_src = fw->cfg.effort_max; hi_src = fw->cfg.effort_max; neg = 1;
    }
    memset(&fw->drive, 0, sizeof(fw->drive));
    for (j = 0; j < m->n; j++) {
        lo = neg ? -lo_src[j] : lo_src[j];
        hi = hi_src[j];
        t = m->targets[j];
        if (t < lo) t = lo;
        if (t > hi) t = hi;
        if (t != m->targets[j]) clamped = 1;
        fw->drive.targets[j] = t;
        fw->drive.effort_limit[j] = fw->cfg.effort_max[j];
    }
    fw->drive.kind = MB_DRIVE_TRACK;
    fw->drive.mode = m->mode;
    fw->drive.n = m->n;
    fw->limit_clamped = clamped;
    fw->cmd_expired = 0;
    fw->last_cmd_seq = m->cmd_seq;
    fw->cmd_expiry_us = now_us + m->ttl_us;
}

static int config_ok(const mb_fw_t *fw, const mb_set_config_t *m) {
    uint8_t j;
    const mb_fw_info_t *i = &fw->info;
    for (j = 0; j < m->n; j++) {
        if (!f32_finite(m->pos_min[j]) || !f32_finite(m->pos_max[j]) ||
            !f32_finite(m->vel_max[j]) || !f32_finite(m->effort_max[j]) ||
            !f32_finite(m->kp[j]) || !f32_finite(m->kd[j]))
            return 0;
        if (!(m->pos_min[j] >= i->pos_min[j]) || !(m->pos_max[j] <= i->pos_max[j])) return 0;
        if (!(m->pos_min[j] < m->pos_max[j])) return 0;
        if (!(m->vel_max[j] > 0.0f) || !(m->vel_max[j] <= i->vel_max[j])) return 0;
        if (!(m->effort_max[j] > 0.0f) || !(m->effort_max[j] <= i->effort_max[j])) return 0;
        if (!(m->kp[j] >= 0.0f) || !(m->kd[j] >= 0.0f)) return 0;
    }
    return 1;
}

static void handle_set_config(mb_fw_t *fw, const mb_frame_t *rx) {
    const mb_set_config_t *m = &rx->u.set_config;
    uint8_t n = m->n;
    if (m->watchdog_ms < MB_WATCHDOG_MIN_MS || m->watchdog_ms > MB_WATCHDOG_MAX_MS ||
        (m->watchdog_action != MB_WD_HOLD && m->watchdog_action != MB_WD_TORQUE_OFF) ||
        !f32_finite(m->hold_effort_frac) || !(m->hold_effort_frac >= 0.0f) ||
        !(m->hold_effort_frac <= 1.0f)) {
        send_nack(fw, rx, MB_NACK_RANGE);
        return;
    }
    if (n != 0u && n != fw->info.n_joints) { send_nack(fw, rx, MB_NACK_JOINTS); return; }
    if (!config_ok(fw, m)) { send_nack(fw, rx, MB_NACK_RANGE); return; }
    if (n) {
        memcpy(fw->cfg.pos_min, m->pos_min, n * sizeof(float));
        memcpy(fw->cfg.pos_max, m->pos_max, n * sizeof(float));
        memcpy(fw->cfg.vel_max, m->vel_max, n * sizeof(float));
        memcpy(fw->cfg.effort_max, m->effort_max, n * sizeof(float));
        memcpy(fw->cfg.kp, m->kp, n * sizeof(float));
        memcpy(fw->cfg.kd, m->kd, n * sizeof(float));
    }
    fw->cfg.watchdog_ms = m->watchdog_ms;
    fw->cfg.watchdog_action = m->watchdog_action;
    fw->cfg.hold_effort_frac = m->hold_effort_frac;
    send_ack(fw, rx);
}

static void handle_torque(mb_fw_t *fw, const mb_frame_t *rx) {
    switch (rx->u.torque.action) {
    case MB_TORQUE_ENABLE:
        fw->estopped = fw->wd_tripped = fw->cmd_expired = 0;
        fw->fault = MB_FAULT_NONE;
        fw->armed = 1;
        drive_hold(fw, fw->cfg.effort_max);
        break;
    case MB_TORQUE_DISABLE:
        fw->armed = 0;
        drive_off(fw);
        break;
    case MB_TORQUE_HOLD:
        if (fw->estopped) { send_nack(fw, rx, MB_NACK_ESTOPPED); return; }
        drive_hold(fw, fw->cfg.effort_max);
        break;
    default: send_nack(fw, rx, MB_NACK_RANGE); return;
    }
    send_ack(fw, rx);
}

static uint32_t session_of(const mb_frame_t *f) {
    switch (f->msg_id) {
    case MB_COMMAND: return f->u.command.session_id;
    case MB_HEARTBEAT: return f->u.heartbeat.session_id;
    case MB_SET_CONFIG: return f->u.set_config.session_id;
    default: return f->u.torque.session_id; /* MB_TORQUE */
    }
}

void mb_fw_handle(mb_fw_t *fw, const mb_frame_t *rx, uint64_t now_us) {
    if (rx->msg_id == MB_ESTOP) { /* every state, no session or sequence check */
        fw->estopped = 1;
        fw->armed = 0;
        fw->fault = MB_FAULT_ESTOP;
        drive_off(fw);
        send_ack(fw, rx);
        return;
    }
    if (rx->msg_id == MB_HELLO) {
        fw->armed = 0;
        if (fw->drive.kind == MB_DRIVE_TRACK) drive_hold(fw, fw->cfg.effort_max);
        if (rx->u.hello.protocol_version != MB_PROTOCOL_VERSION) {
            fw->handshaked = 0;
            send_hello_ack(fw, rx->u.hello.host_nonce);
            send_nack(fw, rx, MB_NACK_VERSION);
            return;
        }
        fw->handshaked = 1;
        mb_seq_reset_to(&fw->rx, rx->seq);
        fw->last_cmd_seq = 0;
        fw->last_feed_us = now_us;
        send_hello_ack(fw, rx->u.hello.host_nonce);
        return;
    }
    if (!fw->handshaked) { send_nack(fw, rx, MB_NACK_NOT_HANDSHAKED); return; }
    if (rx->msg_id != MB_COMMAND && rx->msg_id != MB_HEARTBEAT && rx->msg_id != MB_SET_CONFIG &&
        rx->msg_id != MB_TORQUE) {
        send_nack(fw, rx, MB_NACK_UNSUPPORTED);
        return;
    }
    if (session_of(rx) != fw->session_id) { send_nack(fw, rx, MB_NACK_SESSION); return; }
    if (mb_seq_check(&fw->rx, rx->seq) != MB_SEQ_NEW) return; /* never act twice */
    fw->last_feed_us = now_us;
    switch (rx->msg_id) {
    case MB_HEARTBEAT: break;
    case MB_COMMAND: handle_command(fw, rx, now_us); break;
    case MB_SET_CONFIG: handle_set_config(fw, rx); break;
    default: handle_torque(fw, rx); break;
    }
}

void mb_fw_receive(mb_fw_t *fw, const uint8_t *data, size_t len, uint64_t now_us) {
    size_t i;
    int got;
    read_joints(fw);
    for (i = 0; i < len; i++) {
        (void)mb_decoder_push(&fw->decoder, data[i], &fw->rx_frame, &got);
        if (got) mb_fw_handle(fw, &fw->rx_frame, now_us);
    }
}

void mb_fw_tick(mb_fw_t *fw, uint64_t now_us) {
    uint8_t j;
    read_joints(fw);
    if (fw->armed && now_us > fw->last_feed_us &&
        now_us - fw->last_feed_us > (uint64_t)fw->cfg.watchdog_ms * 1000u) {
        mb_frame_t f;
        uint64_t elapsed_ms = (now_us - fw->last_feed_us) / 1000u;
        fw->armed = 0;
        fw->wd_tripped = 1;
        fw->fault = MB_FAULT_WATCHDOG;
        if (fw->cfg.watchdog_action == MB_WD_HOLD) {
            float lim[MB_MAX_JOINTS];
            for (j = 0; j < fw->info.n_joints; j++)
                lim[j] = fw->cfg.effort_max[j] * fw->cfg.hold_effort_frac;
            drive_hold(fw, lim);
        } else {
            drive_off(fw);
        }
        mb_frame_init(&f, MB_FAULT, 0);
        f.u.fault.session_id = fw->session_id;
        f.u.fault.code = MB_FAULT_WATCHDOG;
        f.u.fault.joint = MB_NO_JOINT;
        f.u.fault.value = (float)elapsed_ms;
        send(fw, &f);
    }
    if (fw->drive.kind == MB_DRIVE_TRACK && now_us >= fw->cmd_expiry_us) {
        fw->cmd_expired = 1;
        drive_hold(fw, fw->cfg.effort_max);
    }
}

void mb_fw_send_state(mb_fw_t *fw, uint64_t now_us) {
    mb_frame_t *f = &fw->scratch;
    mb_state_t *m = &f->u.state;
    uint8_t n = fw->info.n_joints;
    read_joints(fw);
    mb_frame_init(f, MB_STATE, 0);
    m->session_id = fw->session_id;
    m->t_us = now_us;
    m->last_cmd_seq = fw->last_cmd_seq;
    m->status = mb_fw_status(fw);
    m->fault = fw->fault;
    m->n = n;
    memcpy(m->positions, fw->pos, n * sizeof(float));
    memcpy(m->velocities, fw->vel, n * sizeof(float));
    memcpy(m->efforts, fw->eff, n * sizeof(float));
    send(fw, f);
}

void mb_fw_poll(mb_fw_t *fw, uint64_t now_us) {
    uint8_t buf[64];
    size_t n;
    if (fw->hooks.serial_read) {
        while ((n = fw->hooks.serial_read(fw->hooks.ctx, buf, sizeof(buf))) > 0u)
            mb_fw_receive(fw, buf, n, now_us);
    }
    mb_fw_tick(fw, now_us);
    if (fw->state_period_us && now_us >= fw->next_state_us) {
        mb_fw_send_state(fw, now_us);
        fw->next_state_us = now_us + fw->state_period_us;
    }
    if (fw->hooks.servo_write) fw->hooks.servo_write(fw->hooks.ctx, &fw->drive, &fw->cfg);
    if (fw->hooks.hw_watchdog_kick) fw->hooks.hw_watchdog_kick(fw->hooks.ctx);
}
