/* The CPU backend: multithreaded over rows, with a fixed reduction order per row. The
 * scalar kernels are the numeric reference; SIMD kernels (chosen here from what the CPU
 * supports) reproduce them bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/log.h"

static const char *const KERNEL_NAMES[] = {"auto", "scalar", "avx2", "avx512-nofp16", "avx512"};

/* The level asked for by QUARREL_CPU_KERNELS, or AVX512 (no cap) when unset or unknown. */
static qr_cpu_kernels env_cap(void) {
    const char *v = getenv("QUARREL_CPU_KERNELS");
    if (!v || !*v || strcmp(v, "auto") == 0) return QR_CPU_KERNELS_AVX512;
    for (int k = QR_CPU_KERNELS_SCALAR; k <= QR_CPU_KERNELS_AVX512; k++) {
        if (strcmp(v, KERNEL_NAMES[k]) == 0) return (qr_cpu_kernels)k;
    }
    QR_LOG_WARN("cpu", "QUARREL_CPU_KERNELS=%s is not one of scalar, avx2, avx512-nofp16, avx512, auto: ignored", v);
    return QR_CPU_KERNELS_AVX512;
}

/* Picks the kernels: the cap lowered to what the CPU runs. */
static void choose_kernels(qr_cpu_backend *cb, qr_cpu_kernels max) {
    if (max == QR_CPU_KERNELS_AUTO) max = env_cap();
    qr_cpu_features f = qr_cpu_detect_features();
    if (max < QR_CPU_KERNELS_AVX512) f.avx512fp16 = false;
    if (max < QR_CPU_KERNELS_AVX512_NOFP16) f.avx512 = false;
    if (max < QR_CPU_KERNELS_AVX2) f.avx2 = false;
    cb->features = f;
    cb->kernels = f.avx512fp16 ? QR_CPU_KERNELS_AVX512
                  : f.avx512   ? QR_CPU_KERNELS_AVX512_NOFP16
                  : f.avx2     ? QR_CPU_KERNELS_AVX2
                               : QR_CPU_KERNELS_SCALAR;
    int n = 0;
    if (f.avx512) cb->mm_fast[n++] = qr_cpu_mm_avx512;
    if (f.avx2) cb->mm_fast[n++] = qr_cpu_mm_avx2;
    QR_LOG_DEBUG("cpu", "kernels: %s", KERNEL_NAMES[cb->kernels]);
}

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
    return qr_backend_cpu_create_with(n_threads, QR_CPU_KERNELS_AUTO, out, err);
}

qr_cpu_kernels qr_backend_cpu_kernels(const qr_backend *be) {
    return ((const qr_cpu_backend *)be->impl)->kernels;
}

int qr_backend_cpu_create_with(int n_threads, qr_cpu_kernels max, qr_backend **out, qr_error *err) {
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
    cb->gelu_f16 = calloc(65536 + 1, sizeof *cb->gelu_f16); /* +1: the SIMD gather reads 4 bytes */
    if (!cb->per_thread || !cb->gelu_f16) {
        cpu_destroy(be);
        return qr_fail(err, "out of memory creating the CPU backend");
    }
    qr_cpu_gelu_table_init(cb->gelu_f16);
    choose_kernels(cb, max);
    if (qr_threadpool_create(n_threads, &cb->pool, err) != QR_OK) {
        cpu_destroy(be);
        return QR_ERR;
    }
    const char *pin = getenv("QUARREL_PIN_THREADS");
    if (pin && strcmp(pin, "1") == 0 && qr_threadpool_pin(cb->pool, err) != QR_OK) {
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
