/* Private to src/gguf: the parsed-file struct, the bounds-checked cursor that every read
 * from the file goes through, and the name index used for duplicate detection and lookup. */
#ifndef QR_GGUF_INTERNAL_H
#define QR_GGUF_INTERNAL_H

#include "gguf/gguf.h"

/* Fixed encoded size of a scalar value type; 0 for STRING and ARRAY (variable) and for
 * ids that are not value types. */
size_t qr_gguf_vtype_size(uint32_t t);

/* ---- Name index: open addressing over (string, id) pairs ---------------------------- */
typedef struct qr_gguf_index_slot {
    qr_gguf_str name; /* ptr NULL = empty */
    int64_t id;
} qr_gguf_index_slot;

typedef struct qr_gguf_index {
    qr_gguf_index_slot *slots;
    uint64_t cap; /* power of two, at least twice the number of entries */
    uint64_t count;
} qr_gguf_index;

/* Sized for n entries up front (n is already checked against the file size). */
int qr_gguf_index_init(qr_gguf_index *ix, uint64_t n);
/* Inserts name -> id and returns 1; when the name is already present returns 0 and
 * leaves the earlier id in *existing; -1 when out of memory. Grows as needed. The
 * string must outlive the index. */
int qr_gguf_index_insert(qr_gguf_index *ix, qr_gguf_str name, int64_t id, int64_t *existing);
int64_t qr_gguf_index_find(const qr_gguf_index *ix, const char *name, size_t len); /* -1 if absent */
void qr_gguf_index_free(qr_gguf_index *ix);

/* ---- Cursor ------------------------------------------------------------------------
 * Reads little-endian fields from [base, base+size). The "where" strings describe the
 * item being read (e.g. "kv[3] 'general.alignment'") so that a failure message names
 * the file, the field and the byte offset without formatting anything on success. */
typedef struct qr_gguf_cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    const char *file; /* for messages */
    char where[192];  /* the item being read; set by the caller */
} qr_gguf_cursor;

static inline uint64_t qr_gguf_cursor_left(const qr_gguf_cursor *c) { return c->size - c->pos; }

/* "<file>: <where> <field> at offset <off>: <problem>" */
int qr_gguf_cursor_fail(const qr_gguf_cursor *c, qr_error *err, const char *field, uint64_t off,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

int qr_gguf_read_u32(qr_gguf_cursor *c, const char *field, uint32_t *out, qr_error *err);
int qr_gguf_read_u64(qr_gguf_cursor *c, const char *field, uint64_t *out, qr_error *err);
int qr_gguf_read_str(qr_gguf_cursor *c, const char *field, qr_gguf_str *out, qr_error *err);

/* Reads and validates one value of type `type` at the cursor (nested arrays included,
 * `depth` levels deep), filling *out. Arrays are walked in full so that later
 * element access needs no checks. */
int qr_gguf_read_value(qr_gguf_cursor *c, uint32_t type, int depth, qr_gguf_value *out,
                       qr_error *err);

/* Decodes a value whose bytes were validated at open; returns its encoded size. */
uint64_t qr_gguf_decode_value(qr_gguf_vtype type, const uint8_t *p, qr_gguf_value *out);

/* Little-endian loads from validated memory. */
static inline uint32_t qr_gguf_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t qr_gguf_le64(const uint8_t *p) {
    return (uint64_t)qr_gguf_le32(p) | (uint64_t)qr_gguf_le32(p + 4) << 32;
}

/* ---- The parsed file ---------------------------------------------------------------- */
struct qr_gguf {
    char *path;
    const uint8_t *base;
    uint64_t size;
    bool mapped; /* base is our mmap (else a caller's buffer) */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    int64_t n_kv;
    qr_gguf_kv *kv;
    int64_t n_tensors;
    qr_gguf_tensor *tensors;
    qr_gguf_index kv_index;
    qr_gguf_index tensor_index;
};

/* Parses g->base/g->size (already set, with g->path) into g. */
int qr_gguf_parse(qr_gguf *g, qr_error *err);

#endif
