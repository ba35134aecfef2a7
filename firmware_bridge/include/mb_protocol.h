/* metabot serial protocol: portable C99 codec (twin of metabot/bridge, spec: docs/protocol.md).
 *
 * No malloc, fixed buffers, no floating-point arithmetic in framing (floats are copied as
 * bit patterns). Usable from an Arduino sketch or bare metal: include this header and
 * compile src/mb_codec.c.
 */
#ifndef MB_PROTOCOL_H
#define MB_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MB_PROTOCOL_VERSION 1u
#define MB_MAGIC 0xB5u
#define MB_MAX_JOINTS 8u
#define MB_MAX_PAYLOAD 240u
#define MB_HEADER_SIZE 8u
#define MB_CRC_SIZE 4u
#define MB_MAX_RAW_FRAME (MB_HEADER_SIZE + MB_MAX_PAYLOAD + MB_CRC_SIZE) /* 252 */
#define MB_MAX_ENCODED_FRAME (MB_MAX_RAW_FRAME + 1u)                    /* 253: COBS body */
#define MB_MAX_WIRE_FRAME (MB_MAX_ENCODED_FRAME + 2u)                   /* + 2 delimiters */
#define MB_KNOWN_INCOMPAT_FLAGS 0x00u

typedef enum {
    MB_HELLO = 0x01,
    MB_HELLO_ACK = 0x02,
    MB_STATE = 0x03,
    MB_COMMAND = 0x04,
    MB_HEARTBEAT = 0x05,
    MB_SET_CONFIG = 0x06,
    MB_TORQUE = 0x07,
    MB_ESTOP = 0x08,
    MB_ACK = 0x09,
    MB_NACK = 0x0A,
    MB_FAULT = 0x0B
} mb_msg_id_t;

typedef enum { MB_MODE_POSITION = 1, MB_MODE_VELOCITY = 2, MB_MODE_TORQUE = 3 } mb_mode_t;
typedef enum { MB_TORQUE_DISABLE = 0, MB_TORQUE_ENABLE = 1, MB_TORQUE_HOLD = 2 } mb_torque_t;
typedef enum { MB_WD_HOLD = 0, MB_WD_TORQUE_OFF = 1 } mb_wd_action_t;

typedef enum {
    MB_NACK_VERSION = 1,
    MB_NACK_NOT_HANDSHAKED = 2,
    MB_NACK_SESSION = 3,
    MB_NACK_ESTOPPED = 4,
    MB_NACK_WATCHDOG = 5,
    MB_NACK_DISABLED = 6,
    MB_NACK_MODE = 7,
    MB_NACK_JOINTS = 8,
    MB_NACK_RANGE = 9,
    MB_NACK_STALE_COMMAND = 10,
    MB_NACK_UNSUPPORTED = 11
} mb_nack_reason_t;

typedef enum {
    MB_FAULT_NONE = 0,
    MB_FAULT_WATCHDOG = 1,
    MB_FAULT_ESTOP = 2,
    MB_FAULT_POSITION_LIMIT = 3,
    MB_FAULT_SERVO = 4
} mb_fault_code_t;

enum {
    MB_ST_HANDSHAKED = 0x01,
    MB_ST_ENABLED = 0x02,
    MB_ST_ESTOPPED = 0x04,
    MB_ST_WATCHDOG_TRIPPED = 0x08,
    MB_ST_HOLDING = 0x10,
    MB_ST_LIMIT_CLAMPED = 0x20,
    MB_ST_FAULT = 0x40,
    MB_ST_COMMAND_EXPIRED = 0x80,
    MB_ST_TORQUE_ON = 0x100
};

/* Decoder rejection reasons, in the order they are checked (same as Python REASONS). */
typedef enum {
    MB_OK = 0,
    MB_REJ_OVERSIZE = 1,
    MB_REJ_COBS = 2,
    MB_REJ_LENGTH = 3,
    MB_REJ_MAGIC = 4,
    MB_REJ_VERSION = 5,
    MB_REJ_INCOMPAT = 6,
    MB_REJ_UNKNOWN_ID = 7,
    MB_REJ_CRC = 8,
    MB_REJ_PAYLOAD = 9,
    MB_REJ_COUNT = 10
} mb_result_t;

typedef struct {
    uint16_t protocol_version;
    uint32_t host_nonce;
} mb_hello_t;

typedef struct {
    uint16_t protocol_version;
    uint32_t host_nonce;
    uint32_t firmware_id;
    uint32_t session_id;
    uint8_t control_modes;
    uint32_t names_digest;
    uint8_t n;
    float pos_min[MB_MAX_JOINTS], pos_max[MB_MAX_JOINTS];
    float vel_max[MB_MAX_JOINTS], effort_max[MB_MAX_JOINTS];
} mb_hello_ack_t;

typedef struct {
    uint32_t session_id;
    uint64_t t_us;
    uint32_t last_cmd_seq;
    uint16_t status;
    uint8_t fault;
    uint8_t n;
    float positions[MB_MAX_JOINTS], velocities[MB_MAX_JOINTS], efforts[MB_MAX_JOINTS];
} mb_state_t;

typedef struct {
    uint32_t session_id;
    uint32_t cmd_seq;
    uint32_t ttl_us;
    uint8_t mode;
    uint8_t n;
    float targets[MB_MAX_JOINTS];
} mb_command_t;

typedef struct {
    uint32_t session_id;
    uint64_t t_us;
} mb_heartbeat_t;

typedef struct {
    uint32_t session_id;
    uint16_t watchdog_ms;
    uint8_t watchdog_action;
    float hold_effort_frac;
    uint8_t n; /* 0: keep limits and gains */
    float pos_min[MB_MAX_JOINTS], pos_max[MB_MAX_JOINTS];
    float vel_max[MB_MAX_JOINTS], effort_max[MB_MAX_JOINTS];
    float kp[MB_MAX_JOINTS], kd[MB_MAX_JOINTS];
} mb_set_config_t;

typedef struct {
    uint32_t session_id;
    uint8_t action;
} mb_torque_msg_t;

typedef struct {
    uint8_t reason;
} mb_estop_t;

typedef struct {
    uint16_t acked_seq;
    uint8_t acked_id;
} mb_ack_t;

typedef struct {
    uint16_t acked_seq;
    uint8_t acked_id;
    uint8_t reason;
} mb_nack_t;

typedef struct {
    uint32_t session_id;
    uint8_t code;
    uint8_t joint;
    float value;
} mb_fault_t;

/* One frame: header fields plus the message (tagged by msg_id). */
typedef struct {
    uint16_t seq;
    uint8_t msg_id;
    uint8_t version;
    uint8_t incompat_flags;
    uint8_t compat_flags;
    union {
        mb_hello_t hello;
        mb_hello_ack_t hello_ack;
        mb_state_t state;
        mb_command_t command;
        mb_heartbeat_t heartbeat;
        mb_set_config_t set_config;
        mb_torque_msg_t torque;
        mb_estop_t estop;
        mb_ack_t ack;
        mb_nack_t nack;
        mb_fault_t fault;
    } u;
} mb_frame_t;

/* CRC-32C (Castagnoli, reflected, poly 0x82F63B78); check value of "123456789": 0xE3069283.
 * Continue a running CRC by passing the previous result as crc (start with 0). */
uint32_t mb_crc32c(uint32_t crc, const uint8_t *data, size_t len);

/* Schema hash of a message id (CRC-32C of its schema string), 0 if unknown. */
uint32_t mb_schema_hash(uint8_t msg_id);

/* COBS. Encode returns the encoded length (<= len + len/254 + 1) or 0 if it does not fit.
 * Decode returns the decoded length, or -1 for invalid input / no room. */
size_t mb_cobs_encode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);
int mb_cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t out_cap);

/* Encode a frame (f->msg_id, f->seq, flags, version, message) to the wire:
 * 0x00, COBS(header | payload | crc), 0x00. Returns bytes written, 0 on invalid message
 * (too many joints) or too small a buffer (MB_MAX_WIRE_FRAME always suffices). */
size_t mb_encode(const mb_frame_t *f, uint8_t *out, size_t out_cap);

/* Convenience: fill version/flags with defaults. */
void mb_frame_init(mb_frame_t *f, uint8_t msg_id, uint16_t seq);

/* Decode one frame body (bytes between delimiters). */
mb_result_t mb_decode_body(const uint8_t *body, size_t len, mb_frame_t *out);

/* Streaming decoder: feed bytes one at a time; returns MB_OK with *got=1 when a frame is
 * complete, a rejection reason (and *got=0) when a frame was dropped, MB_OK with *got=0
 * otherwise. Empty frames (back-to-back delimiters) are idle fill. */
typedef struct {
    uint8_t buf[MB_MAX_ENCODED_FRAME];
    uint16_t len;
    uint8_t overflow;
    uint32_t accepted;
    uint32_t rejected[MB_REJ_COUNT];
} mb_decoder_t;

void mb_decoder_init(mb_decoder_t *d);
mb_result_t mb_decoder_push(mb_decoder_t *d, uint8_t byte, mb_frame_t *out, int *got);

/* Sequence tracking: 1..32767 ahead is new; equal is a duplicate; behind is reordered. */
typedef enum { MB_SEQ_NEW = 0, MB_SEQ_DUPLICATE = 1, MB_SEQ_REORDERED = 2 } mb_seq_result_t;
typedef struct {
    uint8_t has_last;
    uint16_t last;
    uint32_t accepted, duplicates, reordered, lost;
} mb_seq_tracker_t;

void mb_seq_init(mb_seq_tracker_t *t);
void mb_seq_reset_to(mb_seq_tracker_t *t, uint16_t seq);
mb_seq_result_t mb_seq_check(mb_seq_tracker_t *t, uint16_t seq);

const char *mb_result_name(mb_result_t r);

#ifdef __cplusplus
}
#endif
#endif
