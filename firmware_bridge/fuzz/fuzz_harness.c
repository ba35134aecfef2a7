/* Fuzz harness: the C side of firmware_bridge/fuzz/fuzz.py.
 *
 * stdin: cases, each a little-endian u32 length followed by that many stream bytes. All
 * cases go through ONE streaming decoder and ONE sequence tracker, as on a real link.
 * stdout: one line per case, "<accepted>|<rejections>": accepted frames in order as
 * A|D|R (new, duplicate, reordered by sequence number) + ':' + CRC-32C of the frame
 * re-encoded; rejections as reason=count in reason order. A length of 0xFFFFFFFF
 * flushes stdout. fuzz.py builds the same line
 * from the Python decoder and compares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mb_protocol.h"

static unsigned char buf[1u << 20];

int main(void) {
    static char out[1u << 16];
    static mb_decoder_t d;
    static mb_seq_tracker_t seq;
    unsigned char len_le[4], wire[MB_MAX_WIRE_FRAME];
    mb_frame_t f;
    unsigned long cases = 0;
    setvbuf(stdout, NULL, _IOFBF, 1u << 16);
    mb_decoder_init(&d);
    mb_seq_init(&seq);
    while (fread(len_le, 1, 4, stdin) == 4) {
        uint32_t i, n = (uint32_t)len_le[0] | ((uint32_t)len_le[1] << 8) |
                        ((uint32_t)len_le[2] << 16) | ((uint32_t)len_le[3] << 24);
        uint32_t rej[MB_REJ_COUNT];
        size_t k = 0;
        int r, got, first = 1;
        if (n == 0xFFFFFFFFu) { /* flush marker: the driver waits for this batch's lines */
            fflush(stdout);
            continue;
        }
        if (n > sizeof(buf) || fread(buf, 1, n, stdin) != n) {
            fprintf(stderr, "fuzz_harness: truncated input\n");
            return 2;
        }
        memset(rej, 0, sizeof(rej));
        for (i = 0; i < n; i++) {
            mb_result_t res = mb_decoder_push(&d, buf[i], &f, &got);
            if (got) {
                static const char tag[3] = {'A', 'D', 'R'};
                size_t w = mb_encode(&f, wire, sizeof(wire));
                uint32_t c = mb_crc32c(0u, wire, w);
                k += (size_t)sprintf(out + k, "%s%c:%08x", first ? "" : ",",
                                     tag[mb_seq_check(&seq, f.seq)], (unsigned)c);
                first = 0;
                if (k > sizeof(out) - 64u) k = sizeof(out) - 64u; /* never overflow */
            } else if (res != MB_OK) {
                rej[res]++;
            }
        }
        out[k++] = '|';
        first = 1;
        for (r = 1; r < MB_REJ_COUNT; r++) {
            if (rej[r]) {
                k += (size_t)sprintf(out + k, "%s%s=%u", first ? "" : ",",
                                     mb_result_name((mb_result_t)r), (unsigned)rej[r]);
                first = 0;
            }
        }
        out[k++] = '\n';
        fwrite(out, 1, k, stdout);
        cases++;
    }
    fflush(stdout);
    fprintf(stderr, "fuzz_harness: %lu cases\n", cases);
    return 0;
}
