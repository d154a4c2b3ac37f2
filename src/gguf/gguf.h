/* GGUF v2/v3 reader and v3 writer.
 *
 * Reader: the file is mmapped read-only; metadata is parsed and validated once at open,
 * tensors are views into the mapping. Every size read from the file is checked before it
 * drives an allocation or a pointer; every failure is an error naming the file, the field
 * and its byte offset. */
#ifndef QR_GGUF_GGUF_H
#define QR_GGUF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/types.h"

#define QR_GGUF_DEFAULT_ALIGNMENT 32
#define QR_GGUF_MAX_DIMS 4
/* Arrays of arrays are read up to this many levels deep (an array of scalars is 1). */
#define QR_GGUF_MAX_ARRAY_DEPTH 8

typedef enum qr_gguf_vtype {
    QR_GGUF_UINT8 = 0,
    QR_GGUF_INT8 = 1,
    QR_GGUF_UINT16 = 2,
    QR_GGUF_INT16 = 3,
    QR_GGUF_UINT32 = 4,
    QR_GGUF_INT32 = 5,
    QR_GGUF_FLOAT32 = 6,
    QR_GGUF_BOOL = 7,
    QR_GGUF_STRING = 8,
    QR_GGUF_ARRAY = 9,
    QR_GGUF_UINT64 = 10,
    QR_GGUF_INT64 = 11,
    QR_GGUF_FLOAT64 = 12,
    QR_GGUF_VTYPE_COUNT
} qr_gguf_vtype;

const char *qr_gguf_vtype_name(qr_gguf_vtype t);

/* A string inside the mapping: NOT NUL-terminated. */
typedef struct qr_gguf_str {
    const char *ptr;
    uint64_t len;
} qr_gguf_str;

/* A metadata value. Scalars are decoded; strings point into the mapping; arrays keep
 * their element type, count and a pointer to their first element in the file, so large
 * arrays (a 256k-token vocabulary) cost nothing until read. Nested arrays are parsed
 * and validated, and are reachable through qr_gguf_array_get. */
typedef struct qr_gguf_value {
    qr_gguf_vtype type;
    union {
        uint64_t u64; /* UINT8/16/32/64, BOOL (0/1) */
        int64_t i64;  /* INT8/16/32/64 */
        double f64;   /* FLOAT32/64 */
        qr_gguf_str str;
        struct {
            qr_gguf_vtype elem_type;
            uint64_t count;
            const uint8_t *data;   /* first element in the file */
            uint64_t data_bytes;   /* total encoded size of the elements */
        } arr;
    } v;
} qr_gguf_value;

typedef struct qr_gguf_kv {
    qr_gguf_str key;
    qr_gguf_value value;
    uint64_t offset; /* file offset of the key, for messages */
} qr_gguf_kv;

typedef struct qr_gguf_tensor {
    qr_gguf_str name;
    qr_type type;
    uint32_t n_dims;
    int64_t ne[QR_GGUF_MAX_DIMS]; /* ggml order: ne[0] contiguous; unused dims are 1 */
    int64_t n_elements;
    uint64_t offset;   /* relative to the start of the data section */
    uint64_t n_bytes;
    const void *data;  /* view into the mapping */
    uint64_t info_offset; /* file offset of the tensor's info record, for messages */
} qr_gguf_tensor;

typedef struct qr_gguf qr_gguf;

/* Opens, maps and validates a file. On failure returns QR_ERR, *out is NULL, and err
 * holds a one-line message "<file>: <item> <field> at offset <N>: <problem>", such as
 *   "model.gguf: tensor[3] 'blk.0.attn_q.weight' type at offset 1234: unknown tensor type id 99".
 * docs/gguf.md lists every check. Memory allocated at open is bounded by a small
 * multiple of the file size. */
int qr_gguf_open(const char *path, qr_gguf **out, qr_error *err);
/* Parses a caller-owned buffer (kept alive by the caller) with the same validation;
 * `name` is used in messages. Used by the fuzzer and tests. */
int qr_gguf_open_memory(const void *data, size_t size, const char *name, qr_gguf **out, qr_error *err);
void qr_gguf_close(qr_gguf *g);

const char *qr_gguf_path(const qr_gguf *g);
uint32_t qr_gguf_version(const qr_gguf *g);
uint32_t qr_gguf_alignment(const qr_gguf *g);
uint64_t qr_gguf_data_offset(const qr_gguf *g); /* absolute file offset of tensor data */
uint64_t qr_gguf_file_size(const qr_gguf *g);

/* Metadata, in file order. */
int64_t qr_gguf_n_kv(const qr_gguf *g);
const qr_gguf_kv *qr_gguf_kv_at(const qr_gguf *g, int64_t i);
const qr_gguf_kv *qr_gguf_find_kv(const qr_gguf *g, const char *key); /* NULL if absent */

/* Typed accessors: QR_ERR with "model.gguf: key 'llama.block_count' is missing" or
 * "... has type string, expected uint32" when the key is absent or of another type.
 * Integer accessors accept any integer type whose value fits the requested type. */
int qr_gguf_get_u32(const qr_gguf *g, const char *key, uint32_t *out, qr_error *err);
int qr_gguf_get_i32(const qr_gguf *g, const char *key, int32_t *out, qr_error *err);
int qr_gguf_get_u64(const qr_gguf *g, const char *key, uint64_t *out, qr_error *err);
int qr_gguf_get_f32(const qr_gguf *g, const char *key, float *out, qr_error *err);
int qr_gguf_get_bool(const qr_gguf *g, const char *key, bool *out, qr_error *err);
/* Copies a string value, NUL-terminated, into a fresh malloc'd buffer owned by the caller. */
int qr_gguf_get_str(const qr_gguf *g, const char *key, char **out, qr_error *err);
/* Returns the array's element type and count and checks elem_type when it is not
 * QR_GGUF_VTYPE_COUNT (meaning "any"). */
int qr_gguf_get_arr(const qr_gguf *g, const char *key, qr_gguf_vtype elem_type,
                    const qr_gguf_value **out, qr_error *err);

/* Element i of an array value (scalars decoded, strings pointed to, nested arrays
 * described). Random access into arrays of strings or arrays walks from the start;
 * use qr_gguf_array_iter for sequential reads of big string arrays. */
int qr_gguf_array_get(const qr_gguf_value *arr, uint64_t i, qr_gguf_value *out);

typedef struct qr_gguf_array_iter {
    const qr_gguf_value *arr;
    uint64_t index;
    const uint8_t *pos;
} qr_gguf_array_iter;
void qr_gguf_array_iter_init(qr_gguf_array_iter *it, const qr_gguf_value *arr);
/* Returns false after the last element. */
bool qr_gguf_array_iter_next(qr_gguf_array_iter *it, qr_gguf_value *out);

/* Tensors, in file order. */
int64_t qr_gguf_n_tensors(const qr_gguf *g);
const qr_gguf_tensor *qr_gguf_tensor_at(const qr_gguf *g, int64_t i);
const qr_gguf_tensor *qr_gguf_find_tensor(const qr_gguf *g, const char *name); /* NULL if absent */

/* True when a GGUF string equals a C string. */
bool qr_gguf_str_eq(qr_gguf_str s, const char *c);

/* ---- Writer ----------------------------------------------------------------------
 * Produces GGUF v3. Usage: create; add metadata and tensor infos (any order, names must
 * be unique); then write each tensor's data in the order the infos were added, either
 * at once or in several chunks (streaming: an 8B-shape file never needs to sit in RAM);
 * then finish. The header is written when the first data arrives (or at finish). */
typedef struct qr_gguf_writer qr_gguf_writer;

int qr_gguf_writer_create(const char *path, qr_gguf_writer **out, qr_error *err);
/* Sets general.alignment (default 32); call before writing data. Writes the key too. */
int qr_gguf_writer_set_alignment(qr_gguf_writer *w, uint32_t alignment, qr_error *err);

int qr_gguf_writer_add_u8(qr_gguf_writer *w, const char *key, uint8_t v, qr_error *err);
int qr_gguf_writer_add_i8(qr_gguf_writer *w, const char *key, int8_t v, qr_error *err);
int qr_gguf_writer_add_u16(qr_gguf_writer *w, const char *key, uint16_t v, qr_error *err);
int qr_gguf_writer_add_i16(qr_gguf_writer *w, const char *key, int16_t v, qr_error *err);
int qr_gguf_writer_add_u32(qr_gguf_writer *w, const char *key, uint32_t v, qr_error *err);
int qr_gguf_writer_add_i32(qr_gguf_writer *w, const char *key, int32_t v, qr_error *err);
int qr_gguf_writer_add_u64(qr_gguf_writer *w, const char *key, uint64_t v, qr_error *err);
int qr_gguf_writer_add_i64(qr_gguf_writer *w, const char *key, int64_t v, qr_error *err);
int qr_gguf_writer_add_f32(qr_gguf_writer *w, const char *key, float v, qr_error *err);
int qr_gguf_writer_add_f64(qr_gguf_writer *w, const char *key, double v, qr_error *err);
int qr_gguf_writer_add_bool(qr_gguf_writer *w, const char *key, bool v, qr_error *err);
int qr_gguf_writer_add_str(qr_gguf_writer *w, const char *key, const char *v, qr_error *err);
/* An array of fixed-size scalars (elem_type not STRING/ARRAY), copied from `data`. */
int qr_gguf_writer_add_arr(qr_gguf_writer *w, const char *key, qr_gguf_vtype elem_type,
                           const void *data, uint64_t count, qr_error *err);
int qr_gguf_writer_add_str_arr(qr_gguf_writer *w, const char *key, const char *const *strs,
                               uint64_t count, qr_error *err);
/* Adds a value of any type. For an ARRAY value, v.arr.data must hold data_bytes of
 * valid GGUF encoding of the elements (as qr_gguf_value arrays from the reader do): this
 * is how nested arrays are written. */
int qr_gguf_writer_add_value(qr_gguf_writer *w, const char *key, const qr_gguf_value *v,
                             qr_error *err);
/* Copies a metadata entry from a file being read (any type, nested arrays included). */
int qr_gguf_writer_copy_kv(qr_gguf_writer *w, const qr_gguf_kv *kv, qr_error *err);

int qr_gguf_writer_add_tensor(qr_gguf_writer *w, const char *name, qr_type type,
                              uint32_t n_dims, const int64_t *ne, qr_error *err);
/* Appends bytes of the current tensor's data; a tensor is complete when its n_bytes
 * have been written, after which the next one begins. */
int qr_gguf_writer_write_data(qr_gguf_writer *w, const void *data, size_t n, qr_error *err);
/* Checks every tensor was written in full, flushes, closes. Frees w in all cases. */
int qr_gguf_writer_finish(qr_gguf_writer *w, qr_error *err);
/* Discards an unfinished file (deletes it) and frees w. */
void qr_gguf_writer_abort(qr_gguf_writer *w);

#endif
