/* Host-side demo of the reference firmware main loop: a C "host" and the firmware talk over
 * an in-memory UART; the servos are a first-order lag. Shows the hooks wired as on a board:
 *   make -C firmware_bridge BUILD=/tmp/mb /tmp/mb/loopback && /tmp/mb/loopback
 * Exits 0 if the arm tracked the commands, was refused before the handshake and held after
 * the host went silent (watchdog). */
#include <stdio.h>
#include <string.h>

#include "mb_firmware.h"

#define N 4

typedef struct {
    uint8_t to_mcu[4096], to_host[4096];
    size_t to_mcu_len, to_mcu_pos, to_host_len;
    float pos[N], vel[N];
    mb_drive_t last;
} board_t;

static size_t uart_read(void *ctx, uint8_t *buf, size_t cap) {
    board_t *b = (board_t *)ctx;
    size_t n = b->to_mcu_len - b->to_mcu_pos;
    if (n > cap) n = cap;
    memcpy(buf, b->to_mcu + b->to_mcu_pos, n);
    b->to_mcu_pos += n;
    if (b->to_mcu_pos == b->to_mcu_len) b->to_mcu_pos = b->to_mcu_len = 0;
    return n;
}

static void uart_write(void *ctx, const uint8_t *data, size_t len) {
    board_t *b = (board_t *)ctx;
    if (b->to_host_len + len <= sizeof(b->to_host)) {
        memcpy(b->to_host + b->to_host_len, data, len);
        b->to_host_len += len;
    }
}

static int servo_read(void *ctx, float *pos, float *vel, float *eff, uint8_t n) {
    board_t *b = (board_t *)ctx;
    uint8_t j;
    for (j = 0; j < n; j++) {
        pos[j] = b->pos[j];
        vel[j] = b->vel[j];
        eff[j] = 0.0f;
    }
    return 0;
}

static void servo_write(void *ctx, const mb_drive_t *d, const mb_fw_config_t *cfg) {
    board_t *b = (board_t *)ctx;
    uint8_t j;
    (void)cfg;
    b->last = *d;
    for (j = 0; j < N; j++) { /* toy servo: 1 ms step of a first-order position lag */
        float prev = b->pos[j];
        if (d->kind != MB_DRIVE_OFF && d->mode == MB_MODE_POSITION)
            b->pos[j] += 0.05f * (d->targets[j] - b->pos[j]);
        b->vel[j] = (b->pos[j] - prev) * 1000.0f;
    }
}

static mb_fw_t fw;
static board_t board;
static uint16_t host_seq;

static void host_send(mb_frame_t *f) {
    f->seq = ++host_seq;
    board.to_mcu_len += mb_encode(f, board.to_mcu + board.to_mcu_len,
                                  sizeof(board.to_mcu) - board.to_mcu_len);
}

/* Decode what the MCU sent; return the last message id seen and keep the last STATE. */
static int host_receive(mb_state_t *state, uint8_t *nack_reason) {
    mb_decoder_t d;
    mb_frame_t f;
    size_t i;
    int got, last = -1;
    mb_decoder_init(&d);
    for (i = 0; i < board.to_host_len; i++) {
        mb_decoder_push(&d, board.to_host[i], &f, &got);
        if (!got) continue;
        last = f.msg_id;
        if (f.msg_id == MB_STATE) *state = f.u.state;
        if (f.msg_id == MB_NACK) *nack_reason = f.u.nack.reason;
    }
    board.to_host_len = 0;
    return last;
}

int main(void) {
    mb_fw_info_t info;
    mb_hooks_t hooks;
    mb_frame_t f;
    mb_state_t st;
    uint8_t nack = 0;
    uint64_t t = 0;
    uint32_t session = 0, k;
    int j, failures = 0;
    memset(&info, 0, sizeof(info));
    memset(&hooks, 0, sizeof(hooks));
    memset(&st, 0, sizeof(st));
    info.n_joints = N;
    info.control_modes = 1u << MB_MODE_POSITION;
    info.firmware_id = 0x4D420001u;
    for (j = 0; j < N; j++) {
        info.pos_min[j] = -1.0f;
        info.pos_max[j] = 1.0f;
        info.vel_max[j] = 2.0f;
        info.effort_max[j] = 3.0f;
    }
    hooks.ctx = &board;
    hooks.serial_read = uart_read;
    hooks.serial_write = uart_write;
    hooks.servo_read = servo_read;
    hooks.servo_write = servo_write;
    mb_fw_init(&fw, &info, &hooks, 0x5EED0001u, 1000u);

    /* 1. A COMMAND before the handshake is refused. */
    mb_frame_init(&f, MB_COMMAND, 0);
    f.u.command.mode = MB_MODE_POSITION;
    f.u.command.n = N;
    f.u.command.ttl_us = 50000u;
    f.u.command.cmd_seq = 1;
    host_send(&f);
    mb_fw_poll(&fw, t += 1000);
    host_receive(&st, &nack);
    if (nack != MB_NACK_NOT_HANDSHAKED) { printf("FAIL: command before handshake\n"); failures++; }

    /* 2. Handshake and enable. */
    mb_frame_init(&f, MB_HELLO, 0);
    f.u.hello.protocol_version = MB_PROTOCOL_VERSION;
    f.u.hello.host_nonce = 99;
    host_send(&f);
    mb_fw_poll(&fw, t += 1000);
    {
        mb_decoder_t d;
        mb_frame_t r;
        size_t i;
        int got;
        mb_decoder_init(&d);
        for (i = 0; i < board.to_host_len; i++) {
            mb_decoder_push(&d, board.to_host[i], &r, &got);
            if (got && r.msg_id == MB_HELLO_ACK) session = r.u.hello_ack.session_id;
        }
        board.to_host_len = 0;
    }
    mb_frame_init(&f, MB_TORQUE, 0);
    f.u.torque.session_id = session;
    f.u.torque.action = MB_TORQUE_ENABLE;
    host_send(&f);
    mb_fw_poll(&fw, t += 1000);
    host_receive(&st, &nack);

    /* 3. 300 control steps at 1 kHz towards 0.5 rad (targets beyond 1.0 get clamped). */
    for (k = 2; k < 302; k++) {
        mb_frame_init(&f, MB_COMMAND, 0);
        f.u.command.session_id = session;
        f.u.command.cmd_seq = k;
        f.u.command.ttl_us = 20000u;
        f.u.command.mode = MB_MODE_POSITION;
        f.u.command.n = N;
        for (j = 0; j < N; j++) f.u.command.targets[j] = (j == 0) ? 5.0f : 0.5f;
        host_send(&f);
        mb_fw_poll(&fw, t += 1000);
        host_receive(&st, &nack);
    }
    printf("after 300 ms: pos = %.3f %.3f %.3f %.3f, status 0x%03x, last_cmd_seq %u\n",
           (double)st.positions[0], (double)st.positions[1], (double)st.positions[2],
           (double)st.positions[3], st.status, (unsigned)st.last_cmd_seq);
    if (!(st.positions[0] > 0.95f && st.positions[0] <= 1.0f)) { printf("FAIL: clamp\n"); failures++; }
    if (!(st.positions[1] > 0.45f && st.positions[1] < 0.55f)) { printf("FAIL: track\n"); failures++; }
    if (!(st.status & MB_ST_LIMIT_CLAMPED)) { printf("FAIL: clamp flag\n"); failures++; }

    /* 4. The host goes silent: the watchdog (100 ms default) trips and holds. */
    for (k = 0; k < 150; k++) {
        mb_fw_poll(&fw, t += 1000);
        host_receive(&st, &nack);
    }
    printf("after silence: status 0x%03x fault %u drive %u\n", st.status, st.fault, board.last.kind);
    if (!(st.status & MB_ST_WATCHDOG_TRIPPED) || st.fault != MB_FAULT_WATCHDOG ||
        board.last.kind != MB_DRIVE_HOLD) {
        printf("FAIL: watchdog\n");
        failures++;
    }
    printf("%s\n", failures ? "loopback: FAILED" : "loopback: ok");
    return failures ? 1 : 0;
}
