#include "server/text_out.h"

#include <stdlib.h>
#include <string.h>

void qs_text_out_reset(qs_text_out *t) {
    t->text.n = 0;
    t->released = 0;
}

void qs_text_out_free(qs_text_out *t) {
    qs_bytes_free(&t->text);
    t->released = 0;
}

size_t qs_utf8_complete_prefix(const char *s, size_t n) {
    /* Look back at most 3 bytes for the lead byte of the last character. */
    for (size_t back = 1; back <= 4 && back <= n; back++) {
        const unsigned char c = (unsigned char)s[n - back];
        if ((c & 0xC0) == 0x80) continue; /* continuation byte */
        const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > back ? n - back : n;
    }
    return n;
}

/* The earliest start of a suffix of s[from..n) that is a proper prefix of a stop string. */
static size_t hold_from(const char *s, size_t from, size_t n, char *const *stop, int n_stop) {
    size_t safe = n;
    for (int i = 0; i < n_stop; i++) {
        const size_t sl = strlen(stop[i]);
        for (size_t k = sl - 1 < n - from ? sl - 1 : n - from; k > 0; k--) {
            if (n - k < safe && memcmp(s + n - k, stop[i], k) == 0) {
                safe = n - k;
                break;
            }
        }
    }
    return safe;
}

int qs_text_out_add(qs_text_out *t, const char *piece, size_t len, char *const *stop, int n_stop,
                    const char **out, size_t *out_len, bool *stopped) {
    *stopped = false;
    if (qs_bytes_append(&t->text, piece, len) != 0) return -1;
    const char *buf = t->text.s;
    const size_t n = t->text.n, from = t->released;
    /* A match can only start in the held-back part: anything that could have begun one
     * was held back. */
    size_t end = n;
    for (int i = 0; i < n_stop; i++) {
        const char *hit = memmem(buf + from, n - from, stop[i], strlen(stop[i]));
        if (hit && (size_t)(hit - buf) < end) {
            end = (size_t)(hit - buf);
            *stopped = true;
        }
    }
    if (!*stopped) end = qs_utf8_complete_prefix(buf, hold_from(buf, from, n, stop, n_stop));
    if (end < from) end = from;
    *out = buf + from;
    *out_len = end - from;
    t->released = end;
    return 0;
}

void qs_text_out_flush(qs_text_out *t, const char **out, size_t *out_len) {
    *out = t->text.s ? t->text.s + t->released : "";
    *out_len = t->text.n - t->released;
    t->released = t->text.n;
}
