/* Runs firmware_bridge/vectors/scenarios.txt through the C reference firmware: every
 * reply byte and every drive decision must equal metabot.bridge.mcu's. Exit 0 on success. */
#include "mb_firmware.h"
#include "test_util.h"

#define LINE_MAX_LEN 16384

typedef struct {
    float pos[MB_MAX_JOINTS];
    unsigned char tx[8192];
    size_t tx_len;
} board_t;

static int board_servo_read(void *ctx, float *pos, float *vel, float *eff, uint8_t n) {
    board_t *b = (board_t *)ctx;
    uint8_t j;
    for (j = 0; j < n; j++) {
        pos[j] = b->pos[j];
        vel[j] = 0.0f;
        eff[j] = 0.0f;
    }
    return 0;
}

static void board_write(void *ctx, const uint8_t *data, size_t len) {
    board_t *b = (board_t *)ctx;
    if (b->tx_len + len <= sizeof(b->tx)) {
        memcpy(b->tx + b->tx_len, data, len);
        b->tx_len += len;
    }
}

static void bits_list(const float *a, unsigned n, char *out) {
    unsigned i;
    size_t k = 0;
    for (i = 0; i < n; i++) k += (size_t)sprintf(out + k, "%s%08x", i ? "," : "", f32_bits(a[i]));
    if (n == 0) strcpy(out, "-");
}

static void drive_string(const mb_fw_t *fw, char *out) {
    char t[256], e[256];
    bits_list(fw->drive.targets, fw->info.n_joints, t);
    bits_list(fw->drive.effort_limit, fw->info.n_joints, e);
    sprintf(out, "%u:%u:%x:%s:%s", fw->drive.kind, fw->drive.mode, mb_fw_status(fw), t, e);
}

int main(int argc, char **argv) {
    static char line[LINE_MAX_LEN], name[128], got_tx[LINE_MAX_LEN], got_drive[1024];
    static unsigned char data[4096];
    static mb_fw_t fw;
    static board_t board;
    FILE *fp;
    int failures = 0, steps = 0, scenarios = 0, lineno = 0;
    mb_fw_info_t info;
    mb_hooks_t hooks;
    if (argc < 2 || !(fp = fopen(argv[1], "r"))) {
        fprintf(stderr, "usage: test_scenarios scenarios.txt\n");
        return 2;
    }
    memset(&hooks, 0, sizeof(hooks));
    hooks.ctx = &board;
    hooks.servo_read = board_servo_read;
    hooks.serial_write = board_write;
    while (fgets(line, sizeof(line), fp)) {
        char *kind = strtok(line, " \n");
        lineno++;
        if (!kind || kind[0] == '#') continue;
        if (strcmp(kind, "scenario") == 0) {
            char *nm = strtok(NULL, " \n"), *nj = strtok(NULL, " \n"), *sess = strtok(NULL, " \n");
            char *pos = strtok(NULL, " \n");
            unsigned j, n = (unsigned)atoi(nj);
            strncpy(name, nm, sizeof(name) - 1);
            memset(&info, 0, sizeof(info));
            info.n_joints = (uint8_t)n;
            info.control_modes = 0x0E;
            info.firmware_id = 0x4D420001u;
            info.names_digest = 0x1234ABCDu;
            for (j = 0; j < n; j++) {
                uint32_t u = (uint32_t)strtoul(pos + 9 * j, NULL, 16);
                memcpy(&board.pos[j], &u, 4);
                info.pos_min[j] = -2.0f;
                info.pos_max[j] = 2.0f;
                info.vel_max[j] = 3.0f;
                info.effort_max[j] = 4.0f;
            }
            mb_fw_init(&fw, &info, &hooks, (uint32_t)strtoul(sess, NULL, 10), 0);
            scenarios++;
        } else {
            char *t = strtok(NULL, " \n"), *hex = strtok(NULL, " \n");
            char *want_tx = strtok(NULL, " \n"), *want_drive = strtok(NULL, " \n");
            uint64_t now = (uint64_t)strtoull(t, NULL, 10);
            long n = hex_decode(hex, data, sizeof(data));
            board.tx_len = 0;
            if (strcmp(kind, "rx") == 0) mb_fw_receive(&fw, data, (size_t)n, now);
            else if (strcmp(kind, "tick") == 0) mb_fw_tick(&fw, now);
            else if (strcmp(kind, "state") == 0) mb_fw_send_state(&fw, now);
            hex_encode(board.tx, board.tx_len, got_tx);
            drive_string(&fw, got_drive);
            steps++;
            if (strcmp(got_tx, want_tx) != 0) {
                printf("FAIL %s line %d (%s @%s): tx\n  C:  %s\n  py: %s\n", name, lineno, kind,
                       t, got_tx, want_tx);
                failures++;
            }
            if (strcmp(got_drive, want_drive) != 0) {
                printf("FAIL %s line %d (%s @%s): drive\n  C:  %s\n  py: %s\n", name, lineno,
                       kind, t, got_drive, want_drive);
                failures++;
            }
        }
    }
    fclose(fp);
    printf("scenarios: %d scenarios, %d steps, %d failures\n", scenarios, steps, failures);
    return failures ? 1 : 0;
}
