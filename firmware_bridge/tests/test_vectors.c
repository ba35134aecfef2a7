/* Runs firmware_bridge/vectors/vectors.txt through the C codec: decode decisions, decoded
 * fields and re-encoded bytes must match the Python codec's exactly. Exit 0 when all pass. */
#include "test_util.h"

#define LINE_MAX_LEN 8192

static int check_crc(void) {
    const char *s = "123456789";
    uint32_t c = mb_crc32c(0u, (const uint8_t *)s, 9);
    if (c != 0xE3069283u) {
        printf("FAIL crc32c check value %08x\n", (unsigned)c);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    static char line[LINE_MAX_LEN], got_fields[LINE_MAX_LEN], events[LINE_MAX_LEN];
    static unsigned char data[4096], wire[MB_MAX_WIRE_FRAME];
    FILE *fp;
    int failures = check_crc(), count = 0;
    if (argc < 2 || !(fp = fopen(argv[1], "r"))) {
        fprintf(stderr, "usage: test_vectors vectors.txt\n");
        return 2;
    }
    while (fgets(line, sizeof(line), fp)) {
        char *kind, *name, *hex, *expect, *fields;
        long n;
        long i;
        mb_decoder_t d;
        mb_frame_t f;
        int got, accepted = 0;
        size_t ev = 0;
        if (line[0] == '#' || line[0] == '\n') continue;
        kind = strtok(line, " \n");
        name = strtok(NULL, " \n");
        hex = strtok(NULL, " \n");
        expect = strtok(NULL, " \n");
        fields = strtok(NULL, " \n");
        if (!kind || !name || !hex || !expect || !fields) {
            printf("FAIL malformed line\n");
            failures++;
            continue;
        }
        n = hex_decode(hex, data, sizeof(data));
        if (n < 0) {
            printf("FAIL %s: bad hex\n", name);
            failures++;
            continue;
        }
        count++;
        mb_decoder_init(&d);
        events[0] = 0;
        for (i = 0; i < n; i++) {
            mb_result_t r = mb_decoder_push(&d, data[i], &f, &got);
            if (got) {
                accepted++;
                ev += (size_t)sprintf(events + ev, "%sok:%u", ev ? "," : "", f.msg_id);
                if (strcmp(kind, "frame") == 0) {
                    size_t w;
                    fields_string(&f, got_fields);
                    if (strcmp(got_fields, fields) != 0) {
                        printf("FAIL %s: fields\n  C:  %s\n  py: %s\n", name, got_fields, fields);
                        failures++;
                    }
                    w = mb_encode(&f, wire, sizeof(wire));
                    if (w != (size_t)n || memcmp(wire, data, w) != 0) {
                        printf("FAIL %s: re-encoding differs (%zu vs %ld bytes)\n", name, w, n);
                        failures++;
                    }
                }
            } else if (r != MB_OK) {
                ev += (size_t)sprintf(events + ev, "%s%s", ev ? "," : "", mb_result_name(r));
            }
        }
        if (strcmp(kind, "frame") == 0) {
            const char *want = strcmp(expect, "ok") == 0 ? "ok" : expect;
            const char *have = accepted ? "ok" : events;
            if (accepted > 1 || strcmp(want, have) != 0 || (!accepted && strchr(events, ','))) {
                printf("FAIL %s: expected %s, C gave %s\n", name, want, events);
                failures++;
            }
        } else {
            const char *want = strcmp(expect, "-") == 0 ? "" : expect;
            if (strcmp(want, events) != 0) {
                printf("FAIL %s: expected events %s, C gave %s\n", name, want, events);
                failures++;
            }
        }
    }
    fclose(fp);
    printf("vectors: %d checked, %d failures\n", count, failures);
    return failures ? 1 : 0;
}
