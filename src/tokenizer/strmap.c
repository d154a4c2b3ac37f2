#include "tokenizer/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

/* A small multiply-xorshift hash over 8-byte words: token strings are short, so the
 * per-call cost matters more than quality on long inputs. */
uint32_t qr_strmap_hash(const char *s, size_t len) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xC2B2AE3D27D4EB4Full);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    if (i < len) {
        uint64_t w = 0;
        memcpy(&w, s + i, len - i);
        h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 29;
    }
    h *= 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    return (uint32_t)h;
}

/* Slot index of a hash: the multiply-shift range reduction (Lemire), so the table size need
 * not be a power of two and can follow the key count closely. */
static size_t home(const qr_strmap *m, uint32_t h) { return (size_t)(((uint64_t)h * m->cap) >> 32); }

static uint32_t id_mask(const qr_strmap *m) { return (1u << m->id_bits) - 1; } /* id_bits <= 31 */
/* The tag takes the hash's LOW bits: home() is decided by its high ones, so keys probing
 * the same run share those, and a tag made of them would hardly ever tell them apart. */
static uint32_t tag_of(const qr_strmap *m, uint32_t h) { return h << m->id_bits; }

int qr_strmap_init(qr_strmap *m, const qr_strtab *keys, size_t expected) {
    memset(m, 0, sizeof *m);
    if (keys->n >= (1u << 31)) return QR_ERR;
    m->keys = keys;
    m->id_bits = 1;
    while ((1u << m->id_bits) <= keys->n) m->id_bits++; /* slots hold index + 1 <= n */
    m->cap = expected + expected / 4 + 1; /* load factor <= 4/5: linear probes stay short */
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        m->cap = 0;
        return QR_ERR;
    }
    return QR_OK;
}

void qr_strmap_free(qr_strmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* The slot holding key, or the empty slot where it would go (the table is never full:
 * put refuses more keys than init sized it for). */
static uint32_t *find(const qr_strmap *m, const char *key, size_t len, uint32_t h) {
    const uint32_t tag = tag_of(m, h), mask = id_mask(m);
    for (size_t i = home(m, h);; i = i + 1 == m->cap ? 0 : i + 1) {
        uint32_t *s = &m->slots[i];
        if (*s == 0) return s;
        if ((*s & ~mask) != tag) continue;
        size_t klen;
        const char *k = qr_strtab_get(m->keys, (*s & mask) - 1, &klen);
        if (klen == len && memcmp(k, key, len) == 0) return s;
    }
}

int qr_strmap_put(qr_strmap *m, uint32_t index) {
    if (index >= m->keys->n) return QR_ERR;
    size_t len;
    const char *key = qr_strtab_get(m->keys, index, &len);
    const uint32_t h = qr_strmap_hash(key, len);
    uint32_t *s = find(m, key, len, h);
    if (*s == 0) {
        if (m->n + 1 >= m->cap) return QR_ERR; /* one slot stays empty: probes end */
        m->n++;
    }
    *s = (index + 1) | tag_of(m, h);
    return QR_OK;
}

int32_t qr_strmap_get(const qr_strmap *m, const char *key, size_t len) {
    if (m->cap == 0) return -1;
    uint32_t s = *find(m, key, len, qr_strmap_hash(key, len));
    return s == 0 ? -1 : (int32_t)((s & id_mask(m)) - 1);
}
