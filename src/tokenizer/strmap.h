/* An open-addressing hash table from byte strings to their index in a string table: the
 * vocabulary's text -> id map and the BPE merge table. Keys are not stored: a slot holds
 * the index plus one (0 marks an empty slot) and, in the bits the index leaves free, a tag
 * of the key's hash; the key is read from the table only when the tag matches. A slot is
 * 4 bytes: Gemma 3's 262k-token vocabulary takes 1.25 MiB of slots (12-byte slots with the
 * key's offset and length took 3.9, 24-byte ones with pointers 12.6), and tokenizing is as
 * fast: misses end at a tag mismatch, and a hit reads the table's offsets, which the
 * vocabulary needs anyway. */
#ifndef QR_TOKENIZER_STRMAP_H
#define QR_TOKENIZER_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/strtab.h"

typedef struct qr_strmap {
    const qr_strtab *keys; /* must outlive the map and stay where it is */
    uint32_t *slots;       /* 0: empty; else (index + 1) | tag << id_bits */
    size_t cap;
    size_t n;
    unsigned id_bits;      /* enough for keys->n; the other 32 - id_bits bits are the tag */
} qr_strmap;

uint32_t qr_strmap_hash(const char *s, size_t len);

/* Sizes the table for `expected` distinct keys of `keys` (load factor <= 4/5). QR_OK or
 * QR_ERR (no memory, or a table of 2^31 strings or more). */
int qr_strmap_init(qr_strmap *m, const qr_strtab *keys, size_t expected);
void qr_strmap_free(qr_strmap *m);
/* Maps string `index` of the table to `index`; a string equal to an earlier one takes its
 * place (the last insertion of a text wins, as in llama.cpp). QR_ERR when index is out of
 * range or more distinct keys come than init was told. */
int qr_strmap_put(qr_strmap *m, uint32_t index);
/* The index of the string equal to key (the last one put), or -1 when absent. */
int32_t qr_strmap_get(const qr_strmap *m, const char *key, size_t len);

#endif
