/* Metadata values: the bounds-checked cursor, validation of values (nested arrays
 * included) as they are read at open, and decoding of already-validated values for the
 * accessors and array iteration. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gguf/gguf_internal.h"

static const char *const VTYPE_NAMES[QR_GGUF_VTYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

const char *qr_gguf_vtype_name(qr_gguf_vtype t) {
    return (unsigned)t < QR_GGUF_VTYPE_COUNT ? VTYPE_NAMES[t] : "invalid";
}

size_t qr_gguf_vtype_size(uint32_t t) {
    switch (t) {
    case QR_GGUF_UINT8: case QR_GGUF_INT8: case QR_GGUF_BOOL: return 1;
    case QR_GGUF_UINT16: case QR_GGUF_INT16: return 2;
    case QR_GGUF_UINT32: case QR_GGUF_INT32: case QR_GGUF_FLOAT32: return 4;
    case QR_GGUF_UINT64: case QR_GGUF_INT64: case QR_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

bool qr_gguf_str_eq(qr_gguf_str s, const char *c) {
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

/* ---- Cursor ---------------------------------------------------------------------- */

int qr_gguf_cursor_fail(const qr_gguf_cursor *c, qr_error *err, const char *field, uint64_t off,
                        const char *fmt, ...) {
    if (!err) return QR_ERR;
    char problem[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    return qr_fail(err, "%s: %s%s%s at offset %llu: %s", c->file, c->where, c->where[0] ? " " : "",
                   field, (unsigned long long)off, problem);
}

static int need(qr_gguf_cursor *c, const char *field, uint64_t n, qr_error *err) {
    if (qr_gguf_cursor_left(c) >= n) return QR_OK;
    return qr_gguf_cursor_fail(c, err, field, c->pos,
                               "truncated file: needs %llu bytes, %llu left (file size %llu)",
                               (unsigned long long)n, (unsigned long long)qr_gguf_cursor_left(c),
                               (unsigned long long)c->size);
}

int qr_gguf_read_u32(qr_gguf_cursor *c, const char *field, uint32_t *out, qr_error *err) {
    if (need(c, field, 4, err) != QR_OK) return QR_ERR;
    *out = qr_gguf_le32(c->base + c->pos);
    c->pos += 4;
    return QR_OK;
}

int qr_gguf_read_u64(qr_gguf_cursor *c, const char *field, uint64_t *out, qr_error *err) {
    if (need(c, field, 8, err) != QR_OK) return QR_ERR;
    *out = qr_gguf_le64(c->base + c->pos);
    c->pos += 8;
    return QR_OK;
}

int qr_gguf_read_str(qr_gguf_cursor *c, const char *field, qr_gguf_str *out, qr_error *err) {
    uint64_t at = c->pos, len;
    if (qr_gguf_read_u64(c, field, &len, err) != QR_OK) return QR_ERR;
    if (len > qr_gguf_cursor_left(c)) {
        return qr_gguf_cursor_fail(c, err, field, at,
                                   "string length %llu exceeds the %llu bytes left in the file",
                                   (unsigned long long)len, (unsigned long long)qr_gguf_cursor_left(c));
    }
    out->ptr = (const char *)(c->base + c->pos);
    out->len = len;
    c->pos += len;
    return QR_OK;
}

/* ---- Validation at open ------------------------------------------------------------ */

static int read_array(qr_gguf_cursor *c, int depth, qr_gguf_value *out, qr_error *err) {
    uint64_t at = c->pos;
    uint32_t et;
    uint64_t count;
    if (depth + 1 > QR_GGUF_MAX_ARRAY_DEPTH) {
        return qr_gguf_cursor_fail(c, err, "array", at, "arrays nested deeper than %d levels",
                                   QR_GGUF_MAX_ARRAY_DEPTH);
    }
    if (qr_gguf_read_u32(c, "array element type", &et, err) != QR_OK) return QR_ERR;
    if (et >= QR_GGUF_VTYPE_COUNT) {
        return qr_gguf_cursor_fail(c, err, "array element type", at, "unknown value type %u", et);
    }
    uint64_t count_at = c->pos;
    if (qr_gguf_read_u64(c, "array count", &count, err) != QR_OK) return QR_ERR;
    /* Every element takes at least this many bytes: a count the file cannot hold is
     * rejected before anything walks or allocates by it. */
    size_t fixed = qr_gguf_vtype_size(et);
    uint64_t min_elem = fixed ? fixed : (et == QR_GGUF_STRING ? 8 : 12);
    if (count > qr_gguf_cursor_left(c) / min_elem) {
        return qr_gguf_cursor_fail(c, err, "array count", count_at,
                                   "%llu elements of type %s cannot fit in the %llu bytes left",
                                   (unsigned long long)count, qr_gguf_vtype_name((qr_gguf_vtype)et),
                                   (unsigned long long)qr_gguf_cursor_left(c));
    }
    out->type = QR_GGUF_ARRAY;
    out->v.arr.elem_type = (qr_gguf_vtype)et;
    out->v.arr.count = count;
    out->v.arr.data = c->base + c->pos;
    uint64_t start = c->pos;
    if (fixed) {
        c->pos += count * fixed;
    } else {
        for (uint64_t i = 0; i < count; i++) {
            qr_gguf_value elem;
            if (et == QR_GGUF_STRING) {
                if (qr_gguf_read_str(c, "array element string length", &elem.v.str, err) != QR_OK)
                    return QR_ERR;
            } else if (read_array(c, depth + 1, &elem, err) != QR_OK) {
                return QR_ERR;
            }
        }
    }
    out->v.arr.data_bytes = c->pos - start;
    return QR_OK;
}

int qr_gguf_read_value(qr_gguf_cursor *c, uint32_t type, int depth, qr_gguf_value *out,
                       qr_error *err) {
    if (type == QR_GGUF_ARRAY) return read_array(c, depth, out, err);
    if (type == QR_GGUF_STRING) {
        out->type = QR_GGUF_STRING;
        return qr_gguf_read_str(c, "value (string length)", &out->v.str, err);
    }
    size_t n = qr_gguf_vtype_size(type);
    if (n == 0) {
        return qr_gguf_cursor_fail(c, err, "value type", c->pos - 4, "unknown value type %u", type);
    }
    if (need(c, "value", n, err) != QR_OK) return QR_ERR;
    qr_gguf_decode_value((qr_gguf_vtype)type, c->base + c->pos, out);
    c->pos += n;
    return QR_OK;
}

/* ---- Decoding validated bytes ------------------------------------------------------ */

static uint64_t array_encoded_size(const uint8_t *p, qr_gguf_value *out);

uint64_t qr_gguf_decode_value(qr_gguf_vtype type, const uint8_t *p, qr_gguf_value *out) {
    out->type = type;
    switch (type) {
    case QR_GGUF_UINT8: out->v.u64 = p[0]; return 1;
    case QR_GGUF_BOOL: out->v.u64 = p[0] != 0; return 1;
    case QR_GGUF_INT8: out->v.i64 = (int8_t)p[0]; return 1;
    case QR_GGUF_UINT16: out->v.u64 = (uint16_t)(p[0] | p[1] << 8); return 2;
    case QR_GGUF_INT16: out->v.i64 = (int16_t)(uint16_t)(p[0] | p[1] << 8); return 2;
    case QR_GGUF_UINT32: out->v.u64 = qr_gguf_le32(p); return 4;
    case QR_GGUF_INT32: out->v.i64 = (int32_t)qr_gguf_le32(p); return 4;
    case QR_GGUF_UINT64: out->v.u64 = qr_gguf_le64(p); return 8;
    case QR_GGUF_INT64: out->v.i64 = (int64_t)qr_gguf_le64(p); return 8;
    case QR_GGUF_FLOAT32: {
        uint32_t u = qr_gguf_le32(p);
        float f;
        memcpy(&f, &u, 4);
        out->v.f64 = f;
        return 4;
    }
    case QR_GGUF_FLOAT64: {
        uint64_t u = qr_gguf_le64(p);
        memcpy(&out->v.f64, &u, 8);
        return 8;
    }
    case QR_GGUF_STRING:
        out->v.str.len = qr_gguf_le64(p);
        out->v.str.ptr = (const char *)p + 8;
        return 8 + out->v.str.len;
    case QR_GGUF_ARRAY:
        return array_encoded_size(p, out);
    default:
        return 0; /* unreachable for validated data */
    }
}

static uint64_t array_encoded_size(const uint8_t *p, qr_gguf_value *out) {
    out->type = QR_GGUF_ARRAY;
    out->v.arr.elem_type = (qr_gguf_vtype)qr_gguf_le32(p);
    out->v.arr.count = qr_gguf_le64(p + 4);
    out->v.arr.data = p + 12;
    size_t fixed = qr_gguf_vtype_size(out->v.arr.elem_type);
    uint64_t bytes = 0;
    if (fixed) {
        bytes = out->v.arr.count * fixed;
    } else {
        for (uint64_t i = 0; i < out->v.arr.count; i++) {
            qr_gguf_value elem;
            bytes += qr_gguf_decode_value(out->v.arr.elem_type, p + 12 + bytes, &elem);
        }
    }
    out->v.arr.data_bytes = bytes;
    return 12 + bytes;
}

int qr_gguf_array_get(const qr_gguf_value *arr, uint64_t i, qr_gguf_value *out) {
    if (!arr || arr->type != QR_GGUF_ARRAY || i >= arr->v.arr.count) return QR_ERR;
    size_t fixed = qr_gguf_vtype_size(arr->v.arr.elem_type);
    if (fixed) {
        qr_gguf_decode_value(arr->v.arr.elem_type, arr->v.arr.data + i * fixed, out);
        return QR_OK;
    }
    qr_gguf_array_iter it;
    qr_gguf_array_iter_init(&it, arr);
    for (uint64_t k = 0; k <= i; k++) qr_gguf_array_iter_next(&it, out);
    return QR_OK;
}

void qr_gguf_array_iter_init(qr_gguf_array_iter *it, const qr_gguf_value *arr) {
    it->arr = arr;
    it->index = 0;
    it->pos = arr && arr->type == QR_GGUF_ARRAY ? arr->v.arr.data : NULL;
}

bool qr_gguf_array_iter_next(qr_gguf_array_iter *it, qr_gguf_value *out) {
    if (!it->pos || it->index >= it->arr->v.arr.count) return false;
    it->pos += qr_gguf_decode_value(it->arr->v.arr.elem_type, it->pos, out);
    it->index++;
    return true;
}
