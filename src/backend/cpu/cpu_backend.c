/* The CPU backend: straightforward, multithreaded over rows, with a fixed reduction order
 * per row. Speed comes in a later milestone; this one is the numeric reference. */
#include <stdlib.h>

#include "backend/cpu/cpu_internal.h"

static void cpu_destroy(qr_backend *be) {
    qr_cpu_backend *cb = be->impl;
    if (cb) {
        qr_threadpool_destroy(cb->pool);
        free(cb->act.ptr);
        if (cb->per_thread) {
            for (int i = 0; i < cb->n_threads; i++) free(cb->per_thread[i].ptr);
        }
        free(cb->per_thread);
        free(cb->gelu_f16);
        free(cb);
    }
    free(be);
}

static const qr_backend_ops CPU_OPS = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .matmul = qr_cpu_matmul,
    .get_rows = qr_cpu_get_rows,
    .rmsnorm = qr_cpu_rmsnorm,
    .rope = qr_cpu_rope,
    .attention = qr_cpu_attention,
    .glu = qr_cpu_glu,
};

int qr_backend_cpu_create(int n_threads, qr_backend **out, qr_error *err) {
    *out = NULL;
    if (n_threads < 1) return qr_fail(err, "n_threads must be >= 1 (got %d)", n_threads);
    qr_backend *be = calloc(1, sizeof *be);
    qr_cpu_backend *cb = calloc(1, sizeof *cb);
    if (!be || !cb) {
        free(be);
        free(cb);
        return qr_fail(err, "out of memory creating the CPU backend");
    }
    be->ops = &CPU_OPS;
    be->impl = cb;
    cb->n_threads = n_threads;
    cb->per_thread = calloc((size_t)n_threads, sizeof *cb->per_thread);
    cb->gelu_f16 = malloc(65536 * sizeof *cb->gelu_f16);
    if (!cb->per_thread || !cb->gelu_f16) {
        cpu_destroy(be);
        return qr_fail(err, "out of memory creating the CPU backend");
    }
    qr_cpu_gelu_table_init(cb->gelu_f16);
    if (qr_threadpool_create(n_threads, &cb->pool, err) != QR_OK) {
        cpu_destroy(be);
        return QR_ERR;
    }
    *out = be;
    return QR_OK;
}

int qr_cpu_scratch_reserve(qr_cpu_scratch *s, size_t n, qr_error *err) {
    if (s->cap >= n) return QR_OK;
    free(s->ptr);
    s->ptr = malloc(n ? n : 1);
    s->cap = s->ptr ? n : 0;
    if (!s->ptr) return qr_fail(err, "out of memory (%zu bytes of CPU scratch)", n);
    return QR_OK;
}

int qr_cpu_reserve_per_thread(qr_cpu_backend *cb, size_t n, qr_error *err) {
    for (int i = 0; i < cb->n_threads; i++) {
        if (qr_cpu_scratch_reserve(&cb->per_thread[i], n, err) != QR_OK) return QR_ERR;
    }
    return QR_OK;
}

qr_type qr_backend_vec_dot_type(qr_type wtype) {
    switch (wtype) {
    case QR_TYPE_F32: return QR_TYPE_F32;
    case QR_TYPE_F16: return QR_TYPE_F16;
    case QR_TYPE_BF16: return QR_TYPE_BF16;
    case QR_TYPE_Q4_0: case QR_TYPE_Q5_0: case QR_TYPE_Q8_0: case QR_TYPE_IQ4_NL: return QR_TYPE_Q8_0;
    case QR_TYPE_Q4_1: case QR_TYPE_Q5_1: return QR_TYPE_Q8_1;
    case QR_TYPE_Q2_K: case QR_TYPE_Q3_K: case QR_TYPE_Q4_K: case QR_TYPE_Q5_K: case QR_TYPE_Q6_K:
    case QR_TYPE_IQ4_XS:
        return QR_TYPE_Q8_K;
    default: return QR_TYPE_COUNT;
    }
}
