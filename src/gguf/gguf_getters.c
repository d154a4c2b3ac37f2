/* Typed metadata accessors: a missing key, a value of another type or a value that does
 * not fit the requested type is an error naming the file and the key. */
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf_internal.h"

static int find(const qr_gguf *g, const char *key, const qr_gguf_kv **kv, qr_error *err) {
    *kv = qr_gguf_find_kv(g, key);
    if (!*kv) return qr_fail(err, "%s: key '%s' is missing", g->path, key);
    return QR_OK;
}

static int wrong_type(const qr_gguf *g, const qr_gguf_kv *kv, const char *key, const char *expected,
                      qr_error *err) {
    return qr_fail(err, "%s: key '%s' (at offset %llu) has type %s, expected %s", g->path, key,
                   (unsigned long long)kv->offset, qr_gguf_vtype_name(kv->value.type), expected);
}

static bool is_unsigned(qr_gguf_vtype t) {
    return t == QR_GGUF_UINT8 || t == QR_GGUF_UINT16 || t == QR_GGUF_UINT32 || t == QR_GGUF_UINT64;
}

static bool is_signed(qr_gguf_vtype t) {
    return t == QR_GGUF_INT8 || t == QR_GGUF_INT16 || t == QR_GGUF_INT32 || t == QR_GGUF_INT64;
}

/* Reads any integer-typed key and checks that it lies in [lo, hi]. Values are compared
 * as (negative flag, magnitude) so that the whole uint64 and int64 ranges fit. */
static int get_int(const qr_gguf *g, const char *key, bool want_signed, int64_t lo, uint64_t hi,
                   const char *tname, uint64_t *u, int64_t *s, qr_error *err) {
    const qr_gguf_kv *kv;
    if (find(g, key, &kv, err) != QR_OK) return QR_ERR;
    qr_gguf_vtype t = kv->value.type;
    if (!is_unsigned(t) && !is_signed(t)) return wrong_type(g, kv, key, tname, err);
    bool neg = is_signed(t) && kv->value.v.i64 < 0;
    bool fits = neg ? (want_signed && kv->value.v.i64 >= lo)
                    : (is_signed(t) ? (uint64_t)kv->value.v.i64 : kv->value.v.u64) <= hi;
    if (!fits) {
        if (neg) {
            return qr_fail(err, "%s: key '%s' (at offset %llu) has value %lld, which does not fit %s",
                           g->path, key, (unsigned long long)kv->offset, (long long)kv->value.v.i64, tname);
        }
        return qr_fail(err, "%s: key '%s' (at offset %llu) has value %llu, which does not fit %s", g->path,
                       key, (unsigned long long)kv->offset,
                       (unsigned long long)(is_signed(t) ? (uint64_t)kv->value.v.i64 : kv->value.v.u64), tname);
    }
    if (u) *u = is_signed(t) ? (uint64_t)kv->value.v.i64 : kv->value.v.u64;
    if (s) *s = is_signed(t) ? kv->value.v.i64 : (int64_t)kv->value.v.u64;
    return QR_OK;
}

int qr_gguf_get_u32(const qr_gguf *g, const char *key, uint32_t *out, qr_error *err) {
    uint64_t v = 0;
    if (get_int(g, key, false, 0, UINT32_MAX, "uint32", &v, NULL, err) != QR_OK) return QR_ERR;
    *out = (uint32_t)v;
    return QR_OK;
}

int qr_gguf_get_i32(const qr_gguf *g, const char *key, int32_t *out, qr_error *err) {
    int64_t v = 0;
    if (get_int(g, key, true, INT32_MIN, INT32_MAX, "int32", NULL, &v, err) != QR_OK) return QR_ERR;
    *out = (int32_t)v;
    return QR_OK;
}

int qr_gguf_get_u64(const qr_gguf *g, const char *key, uint64_t *out, qr_error *err) {
    return get_int(g, key, false, 0, UINT64_MAX, "uint64", out, NULL, err);
}

int qr_gguf_get_f32(const qr_gguf *g, const char *key, float *out, qr_error *err) {
    const qr_gguf_kv *kv;
    if (find(g, key, &kv, err) != QR_OK) return QR_ERR;
    if (kv->value.type != QR_GGUF_FLOAT32 && kv->value.type != QR_GGUF_FLOAT64) {
        return wrong_type(g, kv, key, "float32", err);
    }
    *out = (float)kv->value.v.f64;
    return QR_OK;
}

int qr_gguf_get_bool(const qr_gguf *g, const char *key, bool *out, qr_error *err) {
    const qr_gguf_kv *kv;
    if (find(g, key, &kv, err) != QR_OK) return QR_ERR;
    if (kv->value.type != QR_GGUF_BOOL) return wrong_type(g, kv, key, "bool", err);
    *out = kv->value.v.u64 != 0;
    return QR_OK;
}

int qr_gguf_get_str(const qr_gguf *g, const char *key, char **out, qr_error *err) {
    const qr_gguf_kv *kv;
    *out = NULL;
    if (find(g, key, &kv, err) != QR_OK) return QR_ERR;
    if (kv->value.type != QR_GGUF_STRING) return wrong_type(g, kv, key, "string", err);
    /* len is bounded by the file size, so len + 1 cannot overflow. */
    char *s = malloc((size_t)kv->value.v.str.len + 1);
    if (!s) return qr_fail(err, "%s: key '%s': out of memory", g->path, key);
    if (kv->value.v.str.len) memcpy(s, kv->value.v.str.ptr, (size_t)kv->value.v.str.len);
    s[kv->value.v.str.len] = '\0';
    *out = s;
    return QR_OK;
}

int qr_gguf_get_arr(const qr_gguf *g, const char *key, qr_gguf_vtype elem_type,
                    const qr_gguf_value **out, qr_error *err) {
    const qr_gguf_kv *kv;
    *out = NULL;
    if (find(g, key, &kv, err) != QR_OK) return QR_ERR;
    if (kv->value.type != QR_GGUF_ARRAY) return wrong_type(g, kv, key, "array", err);
    if (elem_type != QR_GGUF_VTYPE_COUNT && kv->value.v.arr.elem_type != elem_type) {
        return qr_fail(err, "%s: key '%s' (at offset %llu) is an array of %s, expected an array of %s",
                       g->path, key, (unsigned long long)kv->offset,
                       qr_gguf_vtype_name(kv->value.v.arr.elem_type), qr_gguf_vtype_name(elem_type));
    }
    *out = &kv->value;
    return QR_OK;
}
