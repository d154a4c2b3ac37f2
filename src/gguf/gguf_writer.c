/* GGUF v3 writer. Metadata and tensor infos are encoded into memory as they are added
 * (they are small next to the weights); the header goes to disk when the first tensor
 * bytes arrive, and tensor data then streams straight to the file, each tensor padded to
 * the alignment, exactly as the gguf package and llama.cpp lay files out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "gguf/gguf_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF writer assumes a little-endian host"
#endif

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytebuf;

typedef struct {
    char *name;
    qr_type type;
    uint32_t n_dims;
    int64_t ne[QR_GGUF_MAX_DIMS];
    uint64_t n_bytes;
    uint64_t offset; /* within the data section */
} wtensor;

struct qr_gguf_writer {
    char *path;
    FILE *f;
    uint32_t alignment;
    bytebuf kv;        /* encoded metadata entries */
    uint64_t n_kv;
    char **keys;       /* owned copies, indexed for duplicate detection */
    uint64_t keys_cap;
    qr_gguf_index key_index;
    wtensor *tensors;
    int64_t n_tensors, tensors_cap;
    qr_gguf_index tensor_index;
    bool header_written;
    bool failed;       /* sticky: after an I/O error every call fails */
    int64_t cur;       /* tensor whose data is being written */
    uint64_t cur_written;
    uint64_t file_pos;
};

/* ---- Encoding ----------------------------------------------------------------------- */

static int buf_put(bytebuf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return QR_ERR;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
    return QR_OK;
}

static int put_u32(bytebuf *b, uint32_t v) { return buf_put(b, &v, 4); }
static int put_u64(bytebuf *b, uint64_t v) { return buf_put(b, &v, 8); }
static int put_str(bytebuf *b, const char *s, uint64_t len) {
    return put_u64(b, len) == QR_OK ? buf_put(b, s, (size_t)len) : QR_ERR;
}

/* Encodes a value's payload (after its type tag). */
static int put_value(bytebuf *b, const qr_gguf_value *v) {
    switch (v->type) {
    case QR_GGUF_UINT8: case QR_GGUF_BOOL: { uint8_t x = (uint8_t)v->v.u64; return buf_put(b, &x, 1); }
    case QR_GGUF_INT8: { int8_t x = (int8_t)v->v.i64; return buf_put(b, &x, 1); }
    case QR_GGUF_UINT16: { uint16_t x = (uint16_t)v->v.u64; return buf_put(b, &x, 2); }
    case QR_GGUF_INT16: { int16_t x = (int16_t)v->v.i64; return buf_put(b, &x, 2); }
    case QR_GGUF_UINT32: return put_u32(b, (uint32_t)v->v.u64);
    case QR_GGUF_INT32: { int32_t x = (int32_t)v->v.i64; return buf_put(b, &x, 4); }
    case QR_GGUF_UINT64: return put_u64(b, v->v.u64);
    case QR_GGUF_INT64: return buf_put(b, &v->v.i64, 8);
    case QR_GGUF_FLOAT32: { float x = (float)v->v.f64; return buf_put(b, &x, 4); }
    case QR_GGUF_FLOAT64: return buf_put(b, &v->v.f64, 8);
    case QR_GGUF_STRING: return put_str(b, v->v.str.ptr, v->v.str.len);
    case QR_GGUF_ARRAY:
        if (put_u32(b, v->v.arr.elem_type) != QR_OK || put_u64(b, v->v.arr.count) != QR_OK) return QR_ERR;
        return buf_put(b, v->v.arr.data, (size_t)v->v.arr.data_bytes);
    default: return QR_ERR;
    }
}

/* ---- Lifecycle ---------------------------------------------------------------------- */

int qr_gguf_writer_create(const char *path, qr_gguf_writer **out, qr_error *err) {
    *out = NULL;
    qr_gguf_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path)) || qr_gguf_index_init(&w->key_index, 0) != QR_OK ||
        qr_gguf_index_init(&w->tensor_index, 0) != QR_OK) {
        if (w) {
            free(w->path);
            qr_gguf_index_free(&w->key_index);
            free(w);
        }
        return qr_fail(err, "%s: out of memory", path);
    }
    w->alignment = QR_GGUF_DEFAULT_ALIGNMENT;
    w->f = fopen(path, "wb");
    if (!w->f) {
        int e = errno;
        qr_gguf_writer_abort(w);
        return qr_fail(err, "%s: cannot create: %s", path, strerror(e));
    }
    *out = w;
    return QR_OK;
}

static void writer_free(qr_gguf_writer *w) {
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (int64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    free(w->kv.p);
    qr_gguf_index_free(&w->key_index);
    qr_gguf_index_free(&w->tensor_index);
    free(w->path);
    free(w);
}

void qr_gguf_writer_abort(qr_gguf_writer *w) {
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        unlink(w->path);
    }
    writer_free(w);
}

static int check_open_for_header(qr_gguf_writer *w, const char *what, qr_error *err) {
    if (w->failed) return qr_fail(err, "%s: an earlier write failed", w->path);
    if (w->header_written) {
        return qr_fail(err, "%s: cannot add %s after tensor data has been written", w->path, what);
    }
    return QR_OK;
}

/* ---- Metadata ----------------------------------------------------------------------- */

static int add_key(qr_gguf_writer *w, const char *key, qr_error *err) {
    if (check_open_for_header(w, "metadata", err) != QR_OK) return QR_ERR;
    if (w->n_kv == w->keys_cap) {
        uint64_t cap = w->keys_cap ? 2 * w->keys_cap : 32;
        char **k = realloc(w->keys, cap * sizeof *k);
        if (!k) return qr_fail(err, "%s: out of memory", w->path);
        w->keys = k;
        w->keys_cap = cap;
    }
    char *copy = strdup(key);
    if (!copy) return qr_fail(err, "%s: out of memory", w->path);
    qr_gguf_str s = {copy, strlen(copy)};
    int r = qr_gguf_index_insert(&w->key_index, s, (int64_t)w->n_kv, NULL);
    if (r <= 0) {
        free(copy);
        return r < 0 ? qr_fail(err, "%s: out of memory", w->path)
                     : qr_fail(err, "%s: duplicate metadata key '%s'", w->path, key);
    }
    w->keys[w->n_kv] = copy;
    return QR_OK;
}

int qr_gguf_writer_add_value(qr_gguf_writer *w, const char *key, const qr_gguf_value *v, qr_error *err) {
    if ((unsigned)v->type >= QR_GGUF_VTYPE_COUNT) {
        return qr_fail(err, "%s: key '%s': invalid value type %d", w->path, key, (int)v->type);
    }
    /* The alignment key governs the layout, however it arrives (set_alignment, copy_kv). */
    bool is_alignment = strcmp(key, "general.alignment") == 0;
    if (is_alignment && (v->type != QR_GGUF_UINT32 || v->v.u64 == 0 || v->v.u64 > UINT32_MAX || (v->v.u64 & (v->v.u64 - 1)) != 0)) {
        return qr_fail(err, "%s: general.alignment must be a uint32 nonzero power of two", w->path);
    }
    if (add_key(w, key, err) != QR_OK) return QR_ERR;
    size_t mark = w->kv.len;
    if (put_str(&w->kv, key, strlen(key)) != QR_OK || put_u32(&w->kv, v->type) != QR_OK ||
        put_value(&w->kv, v) != QR_OK) {
        w->kv.len = mark;
        /* The writer is unusable after running out of memory; the index is never
         * searched again, so its entry for the freed key is harmless. */
        free(w->keys[w->n_kv]);
        w->failed = true;
        return qr_fail(err, "%s: key '%s': out of memory", w->path, key);
    }
    w->n_kv++;
    if (is_alignment) w->alignment = (uint32_t)v->v.u64;
    return QR_OK;
}

#define ADD_SCALAR(fn, ctype, vtype, field)                                                   \
    int fn(qr_gguf_writer *w, const char *key, ctype v, qr_error *err) {                      \
        qr_gguf_value val = {.type = vtype};                                                  \
        val.v.field = v;                                                                      \
        return qr_gguf_writer_add_value(w, key, &val, err);                                   \
    }
ADD_SCALAR(qr_gguf_writer_add_u8, uint8_t, QR_GGUF_UINT8, u64)
ADD_SCALAR(qr_gguf_writer_add_i8, int8_t, QR_GGUF_INT8, i64)
ADD_SCALAR(qr_gguf_writer_add_u16, uint16_t, QR_GGUF_UINT16, u64)
ADD_SCALAR(qr_gguf_writer_add_i16, int16_t, QR_GGUF_INT16, i64)
ADD_SCALAR(qr_gguf_writer_add_u32, uint32_t, QR_GGUF_UINT32, u64)
ADD_SCALAR(qr_gguf_writer_add_i32, int32_t, QR_GGUF_INT32, i64)
ADD_SCALAR(qr_gguf_writer_add_u64, uint64_t, QR_GGUF_UINT64, u64)
ADD_SCALAR(qr_gguf_writer_add_i64, int64_t, QR_GGUF_INT64, i64)
ADD_SCALAR(qr_gguf_writer_add_f32, float, QR_GGUF_FLOAT32, f64)
ADD_SCALAR(qr_gguf_writer_add_f64, double, QR_GGUF_FLOAT64, f64)
ADD_SCALAR(qr_gguf_writer_add_bool, bool, QR_GGUF_BOOL, u64)
#undef ADD_SCALAR

int qr_gguf_writer_add_str(qr_gguf_writer *w, const char *key, const char *v, qr_error *err) {
    qr_gguf_value val = {.type = QR_GGUF_STRING};
    val.v.str.ptr = v;
    val.v.str.len = strlen(v);
    return qr_gguf_writer_add_value(w, key, &val, err);
}

int qr_gguf_writer_add_arr(qr_gguf_writer *w, const char *key, qr_gguf_vtype elem_type,
                           const void *data, uint64_t count, qr_error *err) {
    size_t size = qr_gguf_vtype_size(elem_type);
    if (size == 0) {
        return qr_fail(err, "%s: key '%s': add_arr takes fixed-size elements, not %s", w->path, key,
                       qr_gguf_vtype_name(elem_type));
    }
    if (count > SIZE_MAX / size) return qr_fail(err, "%s: key '%s': %llu elements is too many", w->path, key,
                                                (unsigned long long)count);
    qr_gguf_value val = {.type = QR_GGUF_ARRAY};
    val.v.arr.elem_type = elem_type;
    val.v.arr.count = count;
    val.v.arr.data = data; /* the host is little-endian: native bytes are the encoding */
    val.v.arr.data_bytes = count * size;
    return qr_gguf_writer_add_value(w, key, &val, err);
}

int qr_gguf_writer_add_str_arr(qr_gguf_writer *w, const char *key, const char *const *strs,
                               uint64_t count, qr_error *err) {
    bytebuf b = {0};
    for (uint64_t i = 0; i < count; i++) {
        if (put_str(&b, strs[i], strlen(strs[i])) != QR_OK) {
            free(b.p);
            return qr_fail(err, "%s: key '%s': out of memory", w->path, key);
        }
    }
    qr_gguf_value val = {.type = QR_GGUF_ARRAY};
    val.v.arr.elem_type = QR_GGUF_STRING;
    val.v.arr.count = count;
    val.v.arr.data = b.p;
    val.v.arr.data_bytes = b.len;
    int r = qr_gguf_writer_add_value(w, key, &val, err);
    free(b.p);
    return r;
}

int qr_gguf_writer_copy_kv(qr_gguf_writer *w, const qr_gguf_kv *kv, qr_error *err) {
    /* Keys may hold any bytes; a key with an embedded NUL cannot be copied by name. */
    char key[1024];
    if (kv->key.len >= sizeof key || memchr(kv->key.ptr, 0, (size_t)kv->key.len)) {
        return qr_fail(err, "%s: cannot copy a key of %llu bytes or with a NUL byte", w->path,
                       (unsigned long long)kv->key.len);
    }
    memcpy(key, kv->key.ptr, (size_t)kv->key.len);
    key[kv->key.len] = '\0';
    return qr_gguf_writer_add_value(w, key, &kv->value, err);
}

int qr_gguf_writer_set_alignment(qr_gguf_writer *w, uint32_t alignment, qr_error *err) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        return qr_fail(err, "%s: alignment %u is not a nonzero power of two", w->path, alignment);
    }
    return qr_gguf_writer_add_u32(w, "general.alignment", alignment, err);
}

/* ---- Tensors ------------------------------------------------------------------------ */

static int check_shape(const qr_gguf_writer *w, const char *name, qr_type type, uint32_t n_dims,
                       const int64_t *ne, uint64_t *n_bytes, qr_error *err) {
    const qr_type_traits *tr = qr_type_get_traits((uint32_t)type);
    if (!tr) return qr_fail(err, "%s: tensor '%s': unknown tensor type id %d", w->path, name, (int)type);
    if (n_dims < 1 || n_dims > QR_GGUF_MAX_DIMS) {
        return qr_fail(err, "%s: tensor '%s': n_dims %u is not in [1, %d]", w->path, name, n_dims, QR_GGUF_MAX_DIMS);
    }
    int64_t n = 1;
    for (uint32_t j = 0; j < n_dims; j++) {
        if (ne[j] <= 0 || n > INT64_MAX / ne[j]) {
            return qr_fail(err, "%s: tensor '%s': ne[%u] = %lld is not positive or overflows the element count",
                           w->path, name, j, (long long)ne[j]);
        }
        n *= ne[j];
    }
    if (ne[0] % tr->block_size != 0) {
        return qr_fail(err, "%s: tensor '%s': ne[0] = %lld is not a multiple of the %s block size %d", w->path,
                       name, (long long)ne[0], tr->name, tr->block_size);
    }
    *n_bytes = (uint64_t)(n / tr->block_size) * (uint64_t)tr->type_size;
    return QR_OK;
}

int qr_gguf_writer_add_tensor(qr_gguf_writer *w, const char *name, qr_type type,
                              uint32_t n_dims, const int64_t *ne, qr_error *err) {
    if (check_open_for_header(w, "tensors", err) != QR_OK) return QR_ERR;
    wtensor t = {.type = type, .n_dims = n_dims};
    if (check_shape(w, name, type, n_dims, ne, &t.n_bytes, err) != QR_OK) return QR_ERR;
    for (int j = 0; j < QR_GGUF_MAX_DIMS; j++) t.ne[j] = (uint32_t)j < n_dims ? ne[j] : 1;
    if (w->n_tensors == w->tensors_cap) {
        int64_t cap = w->tensors_cap ? 2 * w->tensors_cap : 64;
        wtensor *p = realloc(w->tensors, (size_t)cap * sizeof *p);
        if (!p) return qr_fail(err, "%s: out of memory", w->path);
        w->tensors = p;
        w->tensors_cap = cap;
    }
    if (!(t.name = strdup(name))) return qr_fail(err, "%s: out of memory", w->path);
    qr_gguf_str s = {t.name, strlen(t.name)};
    int r = qr_gguf_index_insert(&w->tensor_index, s, w->n_tensors, NULL);
    if (r <= 0) {
        free(t.name);
        return r < 0 ? qr_fail(err, "%s: out of memory", w->path)
                     : qr_fail(err, "%s: duplicate tensor name '%s'", w->path, name);
    }
    w->tensors[w->n_tensors++] = t;
    return QR_OK;
}

/* ---- Writing ------------------------------------------------------------------------ */

static int emit(qr_gguf_writer *w, const void *p, size_t n, qr_error *err) {
    if (n && fwrite(p, 1, n, w->f) != n) {
        w->failed = true;
        return qr_fail(err, "%s: write failed at offset %llu: %s", w->path, (unsigned long long)w->file_pos,
                       strerror(errno));
    }
    w->file_pos += n;
    return QR_OK;
}

static int pad(qr_gguf_writer *w, qr_error *err) {
    static const uint8_t zeros[256] = {0};
    uint64_t n = (w->alignment - w->file_pos % w->alignment) % w->alignment;
    while (n > 0) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (emit(w, zeros, k, err) != QR_OK) return QR_ERR;
        n -= k;
    }
    return QR_OK;
}

static int write_header(qr_gguf_writer *w, qr_error *err) {
    bytebuf h = {0};
    uint64_t offset = 0;
    bool ok = buf_put(&h, "GGUF", 4) == QR_OK && put_u32(&h, 3) == QR_OK &&
              put_u64(&h, (uint64_t)w->n_tensors) == QR_OK && put_u64(&h, w->n_kv) == QR_OK &&
              buf_put(&h, w->kv.p, w->kv.len) == QR_OK;
    for (int64_t i = 0; ok && i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        t->offset = offset;
        offset += (t->n_bytes + w->alignment - 1) / w->alignment * w->alignment;
        ok = put_str(&h, t->name, strlen(t->name)) == QR_OK && put_u32(&h, t->n_dims) == QR_OK;
        for (uint32_t j = 0; ok && j < t->n_dims; j++) ok = put_u64(&h, (uint64_t)t->ne[j]) == QR_OK;
        ok = ok && put_u32(&h, (uint32_t)t->type) == QR_OK && put_u64(&h, t->offset) == QR_OK;
    }
    if (!ok) {
        free(h.p);
        w->failed = true;
        return qr_fail(err, "%s: out of memory encoding the header", w->path);
    }
    w->header_written = true;
    int r = emit(w, h.p, h.len, err);
    free(h.p);
    if (r != QR_OK || pad(w, err) != QR_OK) return QR_ERR;
    QR_LOG_DEBUG("gguf", "%s: header written: %llu kv, %lld tensors, data at %llu", w->path,
                 (unsigned long long)w->n_kv, (long long)w->n_tensors, (unsigned long long)w->file_pos);
    return QR_OK;
}

int qr_gguf_writer_write_data(qr_gguf_writer *w, const void *data, size_t n, qr_error *err) {
    if (w->failed) return qr_fail(err, "%s: an earlier write failed", w->path);
    if (!w->header_written && write_header(w, err) != QR_OK) return QR_ERR;
    const uint8_t *p = data;
    while (n > 0) {
        if (w->cur >= w->n_tensors) {
            return qr_fail(err, "%s: %zu bytes of data beyond the last tensor", w->path, n);
        }
        const wtensor *t = &w->tensors[w->cur];
        uint64_t left = t->n_bytes - w->cur_written;
        size_t k = n < left ? n : (size_t)left;
        if (emit(w, p, k, err) != QR_OK) return QR_ERR;
        p += k;
        n -= k;
        w->cur_written += k;
        if (w->cur_written == t->n_bytes) {
            if (pad(w, err) != QR_OK) return QR_ERR;
            w->cur++;
            w->cur_written = 0;
        }
    }
    return QR_OK;
}

int qr_gguf_writer_finish(qr_gguf_writer *w, qr_error *err) {
    int r = QR_OK;
    if (w->failed) {
        r = qr_fail(err, "%s: an earlier write failed", w->path);
    } else if (!w->header_written) {
        r = write_header(w, err);
    }
    if (r == QR_OK && w->cur < w->n_tensors) {
        const wtensor *t = &w->tensors[w->cur];
        r = qr_fail(err, "%s: tensor '%s' has %llu of its %llu bytes written", w->path, t->name,
                    (unsigned long long)w->cur_written, (unsigned long long)t->n_bytes);
    }
    if (r == QR_OK && (fflush(w->f) != 0 || ferror(w->f))) {
        r = qr_fail(err, "%s: write failed: %s", w->path, strerror(errno));
    }
    if (r != QR_OK) {
        qr_gguf_writer_abort(w);
        return QR_ERR;
    }
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) {
        r = qr_fail(err, "%s: close failed: %s", w->path, strerror(errno));
        unlink(w->path);
    }
    writer_free(w);
    return r;
}
