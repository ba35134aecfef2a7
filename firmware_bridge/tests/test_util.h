/* Helpers shared by the host test programs (not part of the firmware). */
#ifndef MB_TEST_UTIL_H
#define MB_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mb_protocol.h"

static inline int hex_nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Parse hex into out; returns length or -1. "-" is empty. */
static inline long hex_decode(const char *s, unsigned char *out, size_t cap) {
    size_t n = 0;
    if (strcmp(s, "-") == 0) return 0;
    while (s[0] && s[1]) {
        int hi = hex_nibble(s[0]), lo = hex_nibble(s[1]);
        if (hi < 0 || lo < 0 || n >= cap) return -1;
        out[n++] = (unsigned char)((hi << 4) | lo);
        s += 2;
    }
    return s[0] ? -1 : (long)n;
}

static inline void hex_encode(const unsigned char *d, size_t n, char *out) {
    size_t i;
    for (i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
    out[2 * n] = 0;
    if (n == 0) strcpy(out, "-");
}

static inline unsigned f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (unsigned)u;
}

typedef struct {
    char *p;
    size_t n;
} sbuf_t;

static inline void sb_int(sbuf_t *b, unsigned long long v) {
    b->n += (size_t)sprintf(b->p + b->n, "%s%llu", b->n ? "," : "", v);
}
static inline void sb_f(sbuf_t *b, float f) {
    b->n += (size_t)sprintf(b->p + b->n, "%s0x%08x", b->n ? "," : "", f32_bits(f));
}
static inline void sb_arr(sbuf_t *b, const float *a, unsigned n) {
    unsigned i;
    for (i = 0; i < n; i++) sb_f(b, a[i]);
}

/* Same canonical text as gen_vectors.fields_string. */
static inline void fields_string(const mb_frame_t *f, char *out) {
    sbuf_t b;
    b.p = out;
    b.n = 0;
    out[0] = 0;
    sb_int(&b, f->seq);
    sb_int(&b, f->msg_id);
    sb_int(&b, f->version);
    sb_int(&b, f->incompat_flags);
    sb_int(&b, f->compat_flags);
    switch (f->msg_id) {
    case MB_HELLO:
        sb_int(&b, f->u.hello.protocol_version);
        sb_int(&b, f->u.hello.host_nonce);
        break;
    case MB_HELLO_ACK: {
        const mb_hello_ack_t *m = &f->u.hello_ack;
        sb_int(&b, m->protocol_version);
        sb_int(&b, m->host_nonce);
        sb_int(&b, m->firmware_id);
        sb_int(&b, m->session_id);
        sb_int(&b, m->control_modes);
        sb_int(&b, m->names_digest);
        sb_int(&b, m->n);
        sb_arr(&b, m->pos_min, m->n);
        sb_arr(&b, m->pos_max, m->n);
        sb_arr(&b, m->vel_max, m->n);
        sb_arr(&b, m->effort_max, m->n);
        break;
    }
    case MB_STATE: {
        const mb_state_t *m = &f->u.state;
        sb_int(&b, m->session_id);
        sb_int(&b, m->t_us);
        sb_int(&b, m->last_cmd_seq);
        sb_int(&b, m->status);
        sb_int(&b, m->fault);
        sb_int(&b, m->n);
        sb_arr(&b, m->positions, m->n);
        sb_arr(&b, m->velocities, m->n);
        sb_arr(&b, m->efforts, m->n);
        break;
    }
    case MB_COMMAND: {
        const mb_command_t *m = &f->u.command;
        sb_int(&b, m->session_id);
        sb_int(&b, m->cmd_seq);
        sb_int(&b, m->ttl_us);
        sb_int(&b, m->mode);
        sb_int(&b, m->n);
        sb_arr(&b, m->targets, m->n);
        break;
    }
    case MB_HEARTBEAT:
        sb_int(&b, f->u.heartbeat.session_id);
        sb_int(&b, f->u.heartbeat.t_us);
        break;
    case MB_SET_CONFIG: {
        const mb_set_config_t *m = &f->u.set_config;
        sb_int(&b, m->session_id);
        sb_int(&b, m->watchdog_ms);
        sb_int(&b, m->watchdog_action);
        sb_f(&b, m->hold_effort_frac);
        sb_int(&b, m->n);
        sb_arr(&b, m->pos_min, m->n);
        sb_arr(&b, m->pos_max, m->n);
        sb_arr(&b, m->vel_max, m->n);
        sb_arr(&b, m->effort_max, m->n);
        sb_arr(&b, m->kp, m->n);
        sb_arr(&b, m->kd, m->n);
        break;
    }
    case MB_TORQUE:
        sb_int(&b, f->u.torque.session_id);
        sb_int(&b, f->u.torque.action);
        break;
    case MB_ESTOP: sb_int(&b, f->u.estop.reason); break;
    case MB_ACK:
        sb_int(&b, f->u.ack.acked_seq);
        sb_int(&b, f->u.ack.acked_id);
        break;
    case MB_NACK:
        sb_int(&b, f->u.nack.acked_seq);
        sb_int(&b, f->u.nack.acked_id);
        sb_int(&b, f->u.nack.reason);
        break;
    case MB_FAULT:
        sb_int(&b, f->u.fault.session_id);
        sb_int(&b, f->u.fault.code);
        sb_int(&b, f->u.fault.joint);
        sb_f(&b, f->u.fault.value);
        break;
    default: break;
    }
}

#endif
