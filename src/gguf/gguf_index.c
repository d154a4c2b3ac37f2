/* A hash set of names (metadata keys, tensor names). A hash rather than pairwise
 * comparison so that a crafted file with millions of entries cannot make duplicate
 * detection quadratic (a hang is as bad as a crash). */
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_internal.h"

/* FNV-1a, seeded with the table's address: names that collide on purpose would need to
 * know where the table lands in memory (ASLR), so a crafted file cannot make lookups
 * quadratic either. Output never depends on slot order, so this costs no determinism. */
static uint64_t hash_bytes(const qr_gguf_index *ix, const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull ^ ((uint64_t)(uintptr_t)ix->slots * 0x9e3779b97f4a7c15ull);
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29); /* let the high bits reach the slot index too */
}

int qr_gguf_index_init(qr_gguf_index *ix, uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    ix->slots = calloc(cap, sizeof *ix->slots);
    ix->cap = ix->slots ? cap : 0;
    ix->count = 0;
    return ix->slots ? QR_OK : QR_ERR;
}

static uint64_t probe(const qr_gguf_index *ix, const char *name, size_t len) {
    uint64_t mask = ix->cap - 1;
    uint64_t i = hash_bytes(ix, name, len) & mask;
    while (ix->slots[i].name.ptr) {
        const qr_gguf_str *s = &ix->slots[i].name;
        if (s->len == len && memcmp(s->ptr, name, len) == 0) return i;
        i = (i + 1) & mask;
    }
    return i;
}

static int grow(qr_gguf_index *ix) {
    qr_gguf_index bigger;
    if (qr_gguf_index_init(&bigger, ix->cap) != QR_OK) return QR_ERR;
    for (uint64_t i = 0; i < ix->cap; i++) {
        const qr_gguf_index_slot *s = &ix->slots[i];
        if (s->name.ptr) bigger.slots[probe(&bigger, s->name.ptr, (size_t)s->name.len)] = *s;
    }
    bigger.count = ix->count;
    free(ix->slots);
    *ix = bigger;
    return QR_OK;
}

int qr_gguf_index_insert(qr_gguf_index *ix, qr_gguf_str name, int64_t id, int64_t *existing) {
    if (2 * (ix->count + 1) > ix->cap && grow(ix) != QR_OK) return -1;
    /* An empty name has ptr pointing into the file, never NULL, so it is stored fine. */
    uint64_t i = probe(ix, name.ptr, (size_t)name.len);
    if (ix->slots[i].name.ptr) {
        if (existing) *existing = ix->slots[i].id;
        return 0;
    }
    ix->slots[i].name = name;
    ix->slots[i].id = id;
    ix->count++;
    return 1;
}

int64_t qr_gguf_index_find(const qr_gguf_index *ix, const char *name, size_t len) {
    if (!ix->slots) return -1;
    uint64_t i = probe(ix, name, len);
    return ix->slots[i].name.ptr ? ix->slots[i].id : -1;
}

void qr_gguf_index_free(qr_gguf_index *ix) {
    free(ix->slots);
    ix->slots = NULL;
    ix->cap = ix->count = 0;
}
