/* libFuzzer target for the GGUF reader: parse an arbitrary buffer, and when it is
 * accepted, touch everything the reader promised is valid (every metadata value, every
 * array element, every byte range of tensor data) so that ASan sees any lie. libFuzzer's
 * buffer is exactly `size` bytes, so a read past the end is caught. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "gguf/gguf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    qr_log_set_level(QR_LOG_OFF);
    return 0;
}

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n) {
    if (n == 0) return;
    sink ^= ((const uint8_t *)p)[0];
    sink ^= ((const uint8_t *)p)[n - 1];
}

static void walk(const qr_gguf_value *v, int depth) {
    if (v->type == QR_GGUF_STRING) touch(v->v.str.ptr, v->v.str.len);
    if (v->type != QR_GGUF_ARRAY) return;
    if (depth > QR_GGUF_MAX_ARRAY_DEPTH) abort(); /* the reader promised a bound */
    qr_gguf_array_iter it;
    qr_gguf_value e;
    uint64_t n = 0;
    qr_gguf_array_iter_init(&it, v);
    while (qr_gguf_array_iter_next(&it, &e)) {
        walk(&e, depth + 1);
        n++;
    }
    if (n != v->v.arr.count) abort();
    if (n > 0 && qr_gguf_array_get(v, n - 1, &e) != QR_OK) abort();
    if (qr_gguf_array_get(v, n, &e) != QR_ERR) abort();
}

static void exercise_kv(const qr_gguf *g, const qr_gguf_kv *kv) {
    char key[256];
    walk(&kv->value, 1);
    if (kv->key.len >= sizeof key || memchr(kv->key.ptr, 0, kv->key.len)) return;
    memcpy(key, kv->key.ptr, kv->key.len);
    key[kv->key.len] = '\0';
    if (qr_gguf_find_kv(g, key) != kv) abort(); /* keys are unique */
    qr_error err;
    uint32_t u32;
    float f;
    char *s = NULL;
    const qr_gguf_value *arr;
    (void)qr_gguf_get_u32(g, key, &u32, &err);
    (void)qr_gguf_get_f32(g, key, &f, &err);
    if (qr_gguf_get_str(g, key, &s, &err) == QR_OK) free(s);
    (void)qr_gguf_get_arr(g, key, QR_GGUF_VTYPE_COUNT, &arr, &err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qr_gguf *g;
    qr_error err;
    if (qr_gguf_open_memory(data, size, "fuzz.gguf", &g, &err) != QR_OK) {
        if (!memchr(err.msg, '\0', sizeof err.msg) || strchr(err.msg, '\n')) abort();
        return 0;
    }
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++) exercise_kv(g, qr_gguf_kv_at(g, i));
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        touch(t->data, t->n_bytes);
        if ((uint64_t)((const uint8_t *)t->data - data) % qr_gguf_alignment(g) != 0) abort();
        char name[256];
        if (t->name.len < sizeof name && !memchr(t->name.ptr, 0, t->name.len)) {
            memcpy(name, t->name.ptr, t->name.len);
            name[t->name.len] = '\0';
            if (qr_gguf_find_tensor(g, name) != t) abort();
        }
    }
    qr_gguf_close(g);
    return 0;
}
