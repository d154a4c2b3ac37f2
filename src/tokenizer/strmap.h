/* An open-addressing hash table from byte strings to non-negative int32 values: the
 * vocabulary's text -> id map and the BPE merge table. Keys are not copied: every key
 * lives in one arena (the vocabulary's own text, or its merge strings) that must outlive
 * the map, and a slot keeps the key's offset there, so a slot is 12 bytes: Gemma 3's
 * 262k-token vocabulary takes 3.9 MiB of slots (24-byte slots with pointers took 12.6). */
#ifndef QR_TOKENIZER_STRMAP_H
#define QR_TOKENIZER_STRMAP_H

#include <stddef.h>
#include <stdint.h>

/* Longest key the map takes (its length is stored in 16 bits). */
#define QR_STRMAP_MAX_KEY 65535u

typedef struct qr_strmap_slot {
    uint32_t off;   /* the key's offset in the arena */
    uint16_t len;   /* its length */
    uint16_t tag;   /* 16 bits of its hash: most mismatches end here, without a memcmp */
    int32_t value;  /* -1: empty slot */
} qr_strmap_slot;

typedef struct qr_strmap {
    const char *arena;
    qr_strmap_slot *slots;
    size_t cap;
    size_t n;
} qr_strmap;

uint32_t qr_strmap_hash(const char *s, size_t len);

/* Sizes the table for `expected` keys in `arena` (load factor <= 4/5). QR_OK or QR_ERR
 * (no memory). */
int qr_strmap_init(qr_strmap *m, const char *arena, size_t expected);
void qr_strmap_free(qr_strmap *m);
/* Inserts or overwrites (the last insertion of a key wins, as in llama.cpp). The key must
 * lie in the arena within 4 GiB of its start, be at most QR_STRMAP_MAX_KEY bytes, and the
 * value be >= 0; QR_ERR otherwise, or when more keys come than init was told. */
int qr_strmap_put(qr_strmap *m, const char *key, size_t len, int32_t value);
/* The value, or -1 when absent. The key may be anywhere. */
int32_t qr_strmap_get(const qr_strmap *m, const char *key, size_t len);

#endif
