#include "tokenizer/strtab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Room for "[EMPTY_<i>]" with any int32 i. */
#define EMPTY_NAME_MAX 24

/* Offsets of the strings where they lie in the file. False when one is not where the GGUF
 * layout puts it (never for a validated v2/v3 file) or is empty and must be renamed. */
static bool index_in_place(qr_strtab *t, const qr_gguf_value *arr, bool name_empty) {
    const char *base = (const char *)arr->v.arr.data + QR_STRTAB_GAP;
    qr_gguf_array_iter it;
    qr_gguf_array_iter_init(&it, arr);
    qr_gguf_value s;
    uint64_t at = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        if (!qr_gguf_array_iter_next(&it, &s) || s.v.str.ptr != base + at || (name_empty && s.v.str.len == 0)) {
            return false;
        }
        t->off[i] = (uint32_t)at;
        at += s.v.str.len + QR_STRTAB_GAP;
    }
    t->off[t->n] = (uint32_t)at;
    t->base = base;
    return true;
}

/* The private copy, in the file's layout (the gaps are left unwritten: nothing reads them). */
static int copy_strings(qr_strtab *t, const qr_gguf_value *arr, bool name_empty, const char *path,
                        const char *key, qr_error *err) {
    uint64_t cap = arr->v.arr.data_bytes + (uint64_t)t->n * (name_empty ? EMPTY_NAME_MAX : 0) + QR_STRTAB_GAP;
    if (cap > UINT32_MAX) return qr_fail(err, "%s: '%s' holds more than 4 GiB of strings", path, key);
    t->own = malloc((size_t)cap);
    if (!t->own) return qr_fail(err, "%s: out of memory for '%s'", path, key);
    char *base = t->own + QR_STRTAB_GAP;
    qr_gguf_array_iter it;
    qr_gguf_array_iter_init(&it, arr);
    qr_gguf_value s;
    size_t at = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        if (!qr_gguf_array_iter_next(&it, &s)) return qr_fail(err, "%s: '%s' ended at entry %u", path, key, i);
        size_t len = (size_t)s.v.str.len;
        if (len == 0 && name_empty) {
            QR_LOG_WARN("tokenizer", "%s: empty token at index %u", path, i);
            len = (size_t)snprintf(base + at, EMPTY_NAME_MAX, "[EMPTY_%u]", i);
        } else {
            memcpy(base + at, s.v.str.ptr, len);
        }
        t->off[i] = (uint32_t)at;
        at += len + QR_STRTAB_GAP;
    }
    t->off[t->n] = (uint32_t)at;
    t->base = base;
    return QR_OK;
}

int qr_strtab_load(qr_strtab *t, const qr_gguf_value *arr, bool name_empty, const char *path, const char *key,
                   qr_error *err) {
    memset(t, 0, sizeof *t);
    if (arr->v.arr.count >= UINT32_MAX || arr->v.arr.data_bytes + QR_STRTAB_GAP > UINT32_MAX) {
        return qr_fail(err, "%s: '%s' holds more than 4 GiB of strings", path, key);
    }
    t->n = (uint32_t)arr->v.arr.count;
    t->off = malloc(sizeof(uint32_t) * ((size_t)t->n + 1));
    if (!t->off) return qr_fail(err, "%s: out of memory for '%s'", path, key);
    if (index_in_place(t, arr, name_empty)) return QR_OK;
    return copy_strings(t, arr, name_empty, path, key, err);
}

void qr_strtab_free(qr_strtab *t) {
    free(t->off);
    free(t->own);
    memset(t, 0, sizeof *t);
}
