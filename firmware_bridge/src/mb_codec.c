/* metabot serial protocol codec (C99). Spec: docs/protocol.md. Twin: metabot/bridge/codec.py.
 * Framing uses integers only; floats are moved as 32-bit patterns (memcpy), never computed. */
#include "mb_protocol.h"

#include <string.h>

#include "mb_schema.h"

/* ---- CRC-32C, table driven (1 KiB of const data; fine for flash) ---------------------- */
static uint32_t crc_table[256];
static int crc_ready = 0;

static void crc_init(void) {
    uint32_t i, k, c;
    for (i = 0; i < 256u; i++) {
        c = i;
        for (k = 0; k < 8u; k++) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : (c >> 1);
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t mb_crc32c(uint32_t crc, const uint8_t *data, size_t len) {
    size_t i;
    if (!crc_ready) crc_init();
    crc = ~crc;
    for (i = 0; i < len; i++) crc = crc_table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

uint32_t mb_schema_hash(uint8_t msg_id) {
    switch (msg_id) {
    case MB_HELLO: return MB_SCHEMA_HASH_HELLO;
    case MB_HELLO_ACK: return MB_SCHEMA_HASH_HELLO_ACK;
    case MB_STATE: return MB_SCHEMA_HASH_STATE;
    case MB_COMMAND: return MB_SCHEMA_HASH_COMMAND;
    case MB_HEARTBEAT: return MB_SCHEMA_HASH_HEARTBEAT;
    case MB_SET_CONFIG: return MB_SCHEMA_HASH_SET_CONFIG;
    case MB_TORQUE: return MB_SCHEMA_HASH_TORQUE;
    case MB_ESTOP: return MB_SCHEMA_HASH_ESTOP;
    case MB_ACK: return MB_SCHEMA_HASH_ACK;
    case MB_NACK: return MB_SCHEMA_HASH_NACK;
    case MB_FAULT: return MB_SCHEMA_HASH_FAULT;
    default: return 0u;
    }
}

/* ---- COBS ----------------------------------------------------------------------------- */
size_t mb_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap) {
    size_t r = 0, w = 1, code_at = 0;
    uint8_t code = 1, b;
    if (out_cap < 1u) return 0;
    while (r < len) {
        b = in[r++];
        if (b == 0u) {
            out[code_at] = code;
            code_at = w++;
            code = 1;
            if (code_at >= out_cap) return 0;
        } else {
            if (w >= out_cap) return 0;
            out[w++] = b;
            code++;
            if (code == 0xFFu) {
                out[code_at] = code;
                /* Like the reference (Python cobs): no empty block after a full final one. */
                if (r == len) return w;
                code_at = w++;
                code = 1;
                if (code_at >= out_cap) return 0;
            }
        }
    }
    out[code_at] = code;
    return w;
}

int mb_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap) {
    size_t r = 0, w = 0, end, i;
    uint8_t code;
    if (len == 0u) return 0;
    for (;;) {
        code = in[r];
        if (code == 0u) return -1;
        r++;
        end = r + (size_t)code - 1u;
        if (end > len) return -1;
        for (i = r; i < end; i++) {
            if (in[i] == 0u || w >= out_cap) return -1;
            out[w++] = in[i];
        }
        r = end;
        if (r < len) {
            if (code < 0xFFu) {
                if (w >= out_cap) return -1;
                out[w++] = 0u;
            }
        } else {
            break;
        }
    }
    return (int)w;
}

/* ---- little-endian field writers/readers ---------------------------------------------- */
typedef struct {
    uint8_t *p;
    size_t n;
} wr_t;

static void w8(wr_t *w, uint8_t v) { w->p[w->n++] = v; }
static void w16(wr_t *w, uint16_t v) {
    w8(w, (uint8_t)(v & 0xFFu));
    w8(w, (uint8_t)(v >> 8));
}
static void w32(wr_t *w, uint32_t v) {
    w16(w, (uint16_t)(v & 0xFFFFu));
    w16(w, (uint16_t)(v >> 16));
}
static void w64(wr_t *w, uint64_t v) {
    w32(w, (uint32_t)(v & 0xFFFFFFFFu));
    w32(w, (uint32_t)(v >> 32));
}
static void wf(wr_t *w, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    w32(w, u);
}
static void warr(wr_t *w, const float *a, uint8_t n) {
    uint8_t i;
    for (i = 0; i < n; i++) wf(w, a[i]);
}

typedef struct {
    const uint8_t *p;
    size_t n;
} rd_t;

static uint8_t r8(rd_t *r) { return r->p[r->n++]; }
static uint16_t r16(rd_t *r) {
    uint16_t lo = r8(r);
    return (uint16_t)(lo | ((uint16_t)r8(r) << 8));
}
static uint32_t r32(rd_t *r) {
    uint32_t lo = r16(r);
    return lo | ((uint32_t)r16(r) << 16);
}
static uint64_t r64(rd_t *r) {
    uint64_t lo = r32(r);
    return lo | ((uint64_t)r32(r) << 32);
}
static float rf(rd_t *r) {
    uint32_t u = r32(r);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static void rarr(rd_t *r, float *a, uint8_t n) {
    uint8_t i;
    for (i = 0; i < n; i++) a[i] = rf(r);
}

/* Fixed (scalar) part size incl. the joint count byte, and number of float[n] arrays. */
static int layout(uint8_t msg_id, size_t *fixed, unsigned *arrays) {
    switch (msg_id) {
    case MB_HELLO: *fixed = 6; *arrays = 0; break;
    case MB_HELLO_ACK: *fixed = 20; *arrays = 4; break;
    case MB_STATE: *fixed = 20; *arrays = 3; break;
    case MB_COMMAND: *fixed = 14; *arrays = 1; break;
    case MB_HEARTBEAT: *fixed = 12; *arrays = 0; break;
    case MB_SET_CONFIG: *fixed = 12; *arrays = 6; break;
    case MB_TORQUE: *fixed = 5; *arrays = 0; break;
    case MB_ESTOP: *fixed = 1; *arrays = 0; break;
    case MB_ACK: *fixed = 3; *arrays = 0; break;
    case MB_NACK: *fixed = 4; *arrays = 0; break;
    case MB_FAULT: *fixed = 10; *arrays = 0; break;
    default: return 0;
    }
    return 1;
}

/* Payload writer; returns payload length or -1 (too many joints). */
static int pack_payload(const mb_frame_t *f, uint8_t *out) {
    wr_t w;
    w.p = out;
    w.n = 0;
    switch (f->msg_id) {
    case MB_HELLO:
        w16(&w, f->u.hello.protocol_version);
        w32(&w, f->u.hello.host_nonce);
        break;
    case MB_HELLO_ACK: {
        const mb_hello_ack_t *m = &f->u.hello_ack;
        if (m->n > MB_MAX_JOINTS) return -1;
        w16(&w, m->protocol_version);
        w32(&w, m->host_nonce);
        w32(&w, m->firmware_id);
        w32(&w, m->session_id);
        w8(&w, m->control_modes);
        w32(&w, m->names_digest);
        w8(&w, m->n);
        warr(&w, m->pos_min, m->n);
        warr(&w, m->pos_max, m->n);
        warr(&w, m->vel_max, m->n);
        warr(&w, m->effort_max, m->n);
        break;
    }
    case MB_STATE: {
        const mb_state_t *m = &f->u.state;
        if (m->n > MB_MAX_JOINTS) return -1;
        w32(&w, m->session_id);
        w64(&w, m->t_us);
        w32(&w, m->last_cmd_seq);
        w16(&w, m->status);
        w8(&w, m->fault);
        w8(&w, m->n);
        warr(&w, m->positions, m->n);
        warr(&w, m->velocities, m->n);
        warr(&w, m->efforts, m->n);
        break;
    }
    case MB_COMMAND: {
        const mb_command_t *m = &f->u.command;
        if (m->n > MB_MAX_JOINTS) return -1;
        w32(&w, m->session_id);
        w32(&w, m->cmd_seq);
        w32(&w, m->ttl_us);
        w8(&w, m->mode);
        w8(&w, m->n);
        warr(&w, m->targets, m->n);
        break;
    }
    case MB_HEARTBEAT:
        w32(&w, f->u.heartbeat.session_id);
        w64(&w, f->u.heartbeat.t_us);
        break;
    case MB_SET_CONFIG: {
        const mb_set_config_t *m = &f->u.set_config;
        if (m->n > MB_MAX_JOINTS) return -1;
        w32(&w, m->session_id);
        w16(&w, m->watchdog_ms);
        w8(&w, m->watchdog_action);
        wf(&w, m->hold_effort_frac);
        w8(&w, m->n);
        warr(&w, m->pos_min, m->n);
        warr(&w, m->pos_max, m->n);
        warr(&w, m->vel_max, m->n);
        warr(&w, m->effort_max, m->n);
        warr(&w, m->kp, m->n);
        warr(&w, m->kd, m->n);
        break;
    }
    case MB_TORQUE:
        w32(&w, f->u.torque.session_id);
        w8(&w, f->u.torque.action);
        break;
    case MB_ESTOP: w8(&w, f->u.estop.reason); break;
    case MB_ACK:
        w16(&w, f->u.ack.acked_seq);
        w8(&w, f->u.ack.acked_id);
        break;
    case MB_NACK:
        w16(&w, f->u.nack.acked_seq);
        w8(&w, f->u.nack.acked_id);
        w8(&w, f->u.nack.reason);
        break;
    case MB_FAULT:
        w32(&w, f->u.fault.session_id);
        w8(&w, f->u.fault.code);
        w8(&w, f->u.fault.joint);
        wf(&w, f->u.fault.value);
        break;
    default: return -1;
    }
    return (int)w.n;
}

/* Payload reader; the caller checked the size against layout(). */
static void unpack_payload(uint8_t msg_id, const uint8_t *p, mb_frame_t *f) {
    rd_t r;
    r.p = p;
    r.n = 0;
    switch (msg_id) {
    case MB_HELLO:
        f->u.hello.protocol_version = r16(&r);
        f->u.hello.host_nonce = r32(&r);
        break;
    case MB_HELLO_ACK: {
        mb_hello_ack_t *m = &f->u.hello_ack;
        m->protocol_version = r16(&r);
        m->host_nonce = r32(&r);
        m->firmware_id = r32(&r);
        m->session_id = r32(&r);
        m->control_modes = r8(&r);
        m->names_digest = r32(&r);
        m->n = r8(&r);
        rarr(&r, m->pos_min, m->n);
        rarr(&r, m->pos_max, m->n);
        rarr(&r, m->vel_max, m->n);
        rarr(&r, m->effort_max, m->n);
        break;
    }
    case MB_STATE: {
        mb_state_t *m = &f->u.state;
        m->session_id = r32(&r);
        m->t_us = r64(&r);
        m->last_cmd_seq = r32(&r);
        m->status = r16(&r);
        m->fault = r8(&r);
        m->n = r8(&r);
        rarr(&r, m->positions, m->n);
        rarr(&r, m->velocities, m->n);
        rarr(&r, m->efforts, m->n);
        break;
    }
    case MB_COMMAND: {
        mb_command_t *m = &f->u.command;
        m->session_id = r32(&r);
        m->cmd_seq = r32(&r);
        m->ttl_us = r32(&r);
        m->mode = r8(&r);
        m->n = r8(&r);
        rarr(&r, m->targets, m->n);
        break;
    }
    case MB_HEARTBEAT:
        f->u.heartbeat.session_id = r32(&r);
        f->u.heartbeat.t_us = r64(&r);
        break;
    case MB_SET_CONFIG: {
        mb_set_config_t *m = &f->u.set_config;
        m->session_id = r32(&r);
        m->watchdog_ms = r16(&r);
        m->watchdog_action = r8(&r);
        m->hold_effort_frac = rf(&r);
        m->n = r8(&r);
        rarr(&r, m->pos_min, m->n);
        rarr(&r, m->pos_max, m->n);
        rarr(&r, m->vel_max, m->n);
        rarr(&r, m->effort_max, m->n);
        rarr(&r, m->kp, m->n);
        rarr(&r, m->kd, m->n);
        break;
    }
    case MB_TORQUE:
        f->u.torque.session_id = r32(&r);
        f->u.torque.action = r8(&r);
        break;
    case MB_ESTOP: f->u.estop.reason = r8(&r); break;
    case MB_ACK:
        f->u.ack.acked_seq = r16(&r);
        f->u.ack.acked_id = r8(&r);
        break;
    case MB_NACK:
        f->u.nack.acked_seq = r16(&r);
        f->u.nack.acked_id = r8(&r);
        f->u.nack.reason = r8(&r);
        break;
    case MB_FAULT:
        f->u.fault.session_id = r32(&r);
        f->u.fault.code = r8(&r);
        f->u.fault.joint = r8(&r);
        f->u.fault.value = rf(&r);
        break;
    default: break;
    }
}

void mb_frame_init(mb_frame_t *f, uint8_t msg_id, uint16_t seq) {
    memset(f, 0, sizeof(*f));
    f->msg_id = msg_id;
    f->seq = seq;
    f->version = MB_PROTOCOL_VERSION;
}

static void put_u32le(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

size_t mb_encode(const mb_frame_t *f, uint8_t *out, size_t out_cap) {
    uint8_t raw[MB_MAX_RAW_FRAME]; /* n <= 8 joints keeps every payload <= 204 bytes */
    uint8_t hash[4];
    uint32_t crc;
    int plen;
    size_t n, enc;
    if (mb_schema_hash(f->msg_id) == 0u || out_cap < 3u) return 0;
    plen = pack_payload(f, raw + MB_HEADER_SIZE);
    if (plen < 0 || (size_t)plen > MB_MAX_PAYLOAD) return 0;
    raw[0] = MB_MAGIC;
    raw[1] = f->version;
    raw[2] = f->incompat_flags;
    raw[3] = f->compat_flags;
    raw[4] = (uint8_t)(f->seq & 0xFFu);
    raw[5] = (uint8_t)(f->seq >> 8);
    raw[6] = f->msg_id;
    raw[7] = (uint8_t)plen;
    n = MB_HEADER_SIZE + (size_t)plen;
    put_u32le(hash, mb_schema_hash(f->msg_id));
    crc = mb_crc32c(mb_crc32c(0u, raw, n), hash, 4);
    put_u32le(raw + n, crc);
    n += MB_CRC_SIZE;
    out[0] = 0u;
    enc = mb_cobs_encode(raw, n, out + 1, out_cap - 2u);
    if (enc == 0u) return 0;
    out[1 + enc] = 0u;
    return enc + 2u;
}

mb_result_t mb_decode_body(const uint8_t *body, size_t len, mb_frame_t *out) {
    uint8_t raw[MB_MAX_RAW_FRAME];
    uint8_t hash[4];
    int size;
    size_t fixed, plen, end;
    unsigned arrays;
    uint32_t crc, got;
    uint8_t msg_id, version;
    if (len > MB_MAX_ENCODED_FRAME) return MB_REJ_OVERSIZE;
    /* A valid body of <= 253 bytes decodes to <= 252 bytes: no room needed beyond raw. */
    size = mb_cobs_decode(body, len, raw, sizeof(raw));
    if (size < 0) return MB_REJ_COBS;
    if ((size_t)size < MB_HEADER_SIZE + MB_CRC_SIZE) return MB_REJ_LENGTH;
    if (raw[0] != MB_MAGIC) return MB_REJ_MAGIC;
    plen = raw[7];
    if (plen != (size_t)size - MB_HEADER_SIZE - MB_CRC_SIZE) return MB_REJ_LENGTH;
    version = raw[1];
    msg_id = raw[6];
    if (version != MB_PROTOCOL_VERSION && msg_id != MB_HELLO && msg_id != MB_HELLO_ACK)
        return MB_REJ_VERSION;
    if ((raw[2] & (uint8_t)~MB_KNOWN_INCOMPAT_FLAGS) != 0u) return MB_REJ_INCOMPAT;
    if (!layout(msg_id, &fixed, &arrays)) return MB_REJ_UNKNOWN_ID;
    end = (size_t)size - MB_CRC_SIZE;
    put_u32le(hash, mb_schema_hash(msg_id));
    crc = mb_crc32c(mb_crc32c(0u, raw, end), hash, 4);
    got = (uint32_t)raw[end] | ((uint32_t)raw[end + 1] << 8) | ((uint32_t)raw[end + 2] << 16) |
          ((uint32_t)raw[end + 3] << 24);
    if (crc != got) return MB_REJ_CRC;
    if (arrays == 0u) {
        if (plen != fixed) return MB_REJ_PAYLOAD;
    } else {
        size_t n;
        if (plen < fixed) return MB_REJ_PAYLOAD;
        n = raw[MB_HEADER_SIZE + fixed - 1u];
        if (n > MB_MAX_JOINTS || plen != fixed + 4u * n * arrays) return MB_REJ_PAYLOAD;
    }
    memset(out, 0, sizeof(*out));
    out->seq = (uint16_t)(raw[4] | (raw[5] << 8));
    out->msg_id = msg_id;
    out->version = version;
    out->incompat_flags = raw[2];
    out->compat_flags = raw[3];
    unpack_payload(msg_id, raw + MB_HEADER_SIZE, out);
    return MB_OK;
}

void mb_decoder_init(mb_decoder_t *d) { memset(d, 0, sizeof(*d)); }

mb_result_t mb_decoder_push(mb_decoder_t *d, uint8_t byte, mb_frame_t *out, int *got) {
    mb_result_t r;
    *got = 0;
    if (byte != 0u) {
        if (d->overflow) return MB_OK;
        if (d->len >= MB_MAX_ENCODED_FRAME) {
            d->overflow = 1; /* too long for any valid frame: drop until the delimiter */
            d->len = 0;
            return MB_OK;
        }
        d->buf[d->len++] = byte;
        return MB_OK;
    }
    if (d->overflow) {
        d->overflow = 0;
        d->rejected[MB_REJ_OVERSIZE]++;
        return MB_REJ_OVERSIZE;
    }
    if (d->len == 0u) return MB_OK; /* idle fill */
    r = mb_decode_body(d->buf, d->len, out);
    d->len = 0;
    if (r == MB_OK) {
        d->accepted++;
        *got = 1;
    } else {
        d->rejected[r]++;
    }
    return r;
}

void mb_seq_init(mb_seq_tracker_t *t) { memset(t, 0, sizeof(*t)); }

void mb_seq_reset_to(mb_seq_tracker_t *t, uint16_t seq) {
    t->has_last = 1;
    t->last = seq;
}

mb_seq_result_t mb_seq_check(mb_seq_tracker_t *t, uint16_t seq) {
    uint16_t d;
    if (!t->has_last) {
        t->has_last = 1;
        t->last = seq;
        t->accepted++;
        return MB_SEQ_NEW;
    }
    d = (uint16_t)(seq - t->last);
    if (d == 0u) {
        t->duplicates++;
        return MB_SEQ_DUPLICATE;
    }
    if (d >= 0x8000u) {
        t->reordered++;
        return MB_SEQ_REORDERED;
    }
    t->lost += (uint32_t)(d - 1u);
    t->last = seq;
    t->accepted++;
    return MB_SEQ_NEW;
}

const char *mb_result_name(mb_result_t r) {
    static const char *const names[MB_REJ_COUNT] = {"ok",      "oversize", "cobs",
                                                    "length",  "magic",    "version",
                                                    "incompat", "unknown_id", "crc",
                                                    "payload"};
    return ((unsigned)r < MB_REJ_COUNT) ? names[r] : "?";
}
