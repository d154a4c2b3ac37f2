/* An open-addressing hash table from byte strings to int32 values: the vocabulary's
 * text -> id map and the BPE merge table. Keys are not copied: they must outlive the
 * map (they point into the vocabulary's own string arena). */
#ifndef QR_TOKENIZER_STRMAP_H
#define QR_TOKENIZER_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct qr_strmap_slot {
    const char *key; /* NULL: empty slot */
    uint32_t len;
    uint32_t hash;
    int32_t value;
} qr_strmap_slot;

typedef struct qr_strmap {
    qr_strmap_slot *slots;
    size_t cap; /* power of two */
    size_t n;
} qr_strmap;

uint32_t qr_strmap_hash(const char *s, size_t len);

/* Sizes the table for `expected` keys (load factor <= 3/4). QR_OK or QR_ERR (no memory). */
int qr_strmap_init(qr_strmap *m, size_t expected);
void qr_strmap_free(qr_strmap *m);
/* Inserts or overwrites (the last insertion of a key wins, as in llama.cpp). */
void qr_strmap_put(qr_strmap *m, const char *key, size_t len, int32_t value);
/* The value, or -1 when absent. */
int32_t qr_strmap_get(const qr_strmap *m, const char *key, size_t len);

#endif
