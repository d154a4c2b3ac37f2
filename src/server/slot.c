#include "server/slot.h"

#include <stdlib.h>
#include <string.h>

int32_t qs_slot_common_prefix(const qs_slot *s, const qr_token *toks, int32_t n) {
    int32_t i = 0;
    while (i < n && i < s->n_cache && s->cache[i] == toks[i]) i++;
    return i;
}

int qs_slot_cache_push(qs_slot *s, const qr_token *toks, int32_t n) {
    if (s->n_cache + n > s->cap_cache) {
        const int32_t cap = 2 * (s->n_cache + n) + 16;
        qr_token *c = realloc(s->cache, (size_t)cap * sizeof *c);
        if (!c) return -1;
        s->cache = c;
        s->cap_cache = cap;
    }
    memmove(s->cache + s->n_cache, toks, (size_t)n * sizeof *toks);
    s->n_cache += n;
    return 0;
}
