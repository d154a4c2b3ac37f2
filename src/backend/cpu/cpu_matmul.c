/* Matrix times activations, the way llama.cpp's CPU backend pairs formats.
 *
 * Activations are first converted to the weight type's vec_dot_type (MODELS.md section
 * 4): Q8_0 / Q8_1 with the x86 rounding (scale 127/amax, round half to even), Q8_K with
 * the reference rounding, F16 or BF16 by round-to-nearest-even. Weights of the 32-element
 * formats then meet those activations in exact integer block sums scaled by the two fp16
 * scales (Q4_1/Q5_1 add min * s with s the fp16 sum of the activation block), as ggml's
 * kernels do. K-quants, IQ4_XS, F16 and BF16 weights are dequantized row by row and dotted
 * in float with the converted activations: the same products up to float rounding.
 *
 * Work is split over output features; each output is one dot in a fixed order, so a
 * row's result does not depend on the batch it is in or on the thread count. */
/* Bit-exactness with llama.cpp needs each a*b+c rounded exactly as written here (fmaf
 * where ggml's build fuses, two roundings elsewhere): no FMA contraction by the compiler.
 * Clang contracts by default unless told; GCC does not in ISO C mode (-std=c11). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__) && defined(__FMA__)
#error "compile the CPU backend as ISO C (-std=c11): in GNU C mode GCC fuses multiply-adds"
#endif

#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant.h"

/* ---- Activation conversion --------------------------------------------------------------- */

/* ggml's x86 quantize_row_q8_0/q8_1: d = amax/127 stored as fp16, values multiplied by
 * 127/amax and rounded half to even (ggml/src/ggml-cpu/arch/x86/quants.c). */
static void quantize_q8_block(const float *x, int8_t *q, float *d_out, float *s_out, int32_t *sum_out) {
    float amax = 0.0f;
    for (int j = 0; j < QR_QK; j++) {
        float a = fabsf(x[j]);
        amax = a > amax ? a : amax;
    }
    const float d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < QR_QK; j++) {
        int v = (int)nearbyintf(x[j] * id);
        q[j] = (int8_t)v;
        sum += v;
    }
    *d_out = qr_f16_to_f32(qr_f32_to_f16(d));
    *s_out = qr_f16_to_f32(qr_f32_to_f16(d * (float)sum));
    *sum_out = sum;
}

static void convert_q8(const qr_cpu_backend *cb, const float *x, int64_t n_rows, int64_t n_in, q8_rows *out) {
    const int64_t nb = n_in / QR_QK;
    for (int64_t r = 0; r < n_rows; r++) {
        if (cb->features.avx512) {
            qr_cpu_quantize_q8_row_avx512(x + r * n_in, nb, out->q + r * n_in, out->d + r * nb, out->s + r * nb,
                                          out->sum + r * nb);
            continue;
        }
        for (int64_t b = 0; b < nb; b++) {
            quantize_q8_block(x + r * n_in + b * QR_QK, out->q + r * n_in + b * QR_QK,
                              out->d + r * nb + b, out->s + r * nb + b, out->sum + r * nb + b);
        }
    }
}

/* F16 / BF16 activations as the float values they stand for; F16 also as its bits (xh,
 * for ggml_vec_dot_f16's order), from one rounding per element. */
static void convert_half(qr_type vt, const float *x, size_t n, float *xf, uint16_t *xh) {
    for (size_t i = 0; i < n; i++) {
        if (vt == QR_TYPE_F16) {
            xh[i] = qr_f32_to_f16(x[i]);
            xf[i] = qr_f16_to_f32(xh[i]);
        } else {
            xf[i] = qr_bf16_to_f32(qr_f32_to_bf16(x[i]));
        }
    }
}

/* Q8_K blocks for the K-quant and IQ4_XS kernels (they read nothing else). */
static int convert_q8_k(const qr_cpu_backend *cb, const float *x, int64_t n, qr_block_q8_k *blocks, qr_error *err) {
    if (cb->features.avx512) {
        qr_cpu_quantize_q8_k_row_avx512(x, n / QR_QK_K, blocks);
        return QR_OK;
    }
    for (int64_t i = 0; i < n; i += QR_QK_K) {
        if (qr_quantize_row(QR_TYPE_Q8_K, x + i, blocks + i / QR_QK_K, QR_QK_K, err) != QR_OK) return QR_ERR;
    }
    return QR_OK;
}

/* ---- 32-element weight blocks as integers ------------------------------------------------- */

static const int8_t IQ4NL_VALUES[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                        1,    13,   25,  38,  53,  69,  89,  113};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Unpacks one block to 32 signed integers q, its scale d and (Q4_1/Q5_1) min m, such
 * that element j = d*q[j] + m. Returns the block size in bytes. */
static size_t unpack_block32(qr_type t, const uint8_t *b, int8_t q[32], float *d, float *m) {
    *d = qr_f16_to_f32(rd16(b));
    *m = 0.0f;
    switch (t) {
    case QR_TYPE_Q4_0:
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)((b[2 + j] & 15) - 8);
            q[j + 16] = (int8_t)((b[2 + j] >> 4) - 8);
        }
        return 18;
    case QR_TYPE_Q4_1:
        *m = qr_f16_to_f32(rd16(b + 2));
        for (int j = 0; j < 16; j++) {
            q[j] = (int8_t)(b[4 + j] & 15);
            q[j + 16] = (int8_t)(b[4 + j] >> 4);
        }
        return 20;
    case QR_TYPE_Q5_0:
    case QR_TYPE_Q5_1: {
        const int one = t == QR_TYPE_Q5_1;
        if (one) *m = qr_f16_to_f32(rd16(b + 2));
        const uint8_t *qhp = b + 2 + 2 * one;
        const uint32_t qh = (uint32_t)qhp[0] | (uint32_t)qhp[1] << 8 | (uint32_t)qhp[2] << 16 |
                            (uint32_t)qhp[3] << 24;
        const uint8_t *qs = qhp + 4;
        const int off = one ? 0 : 16;
        for (int j = 0; j < 16; j++) {
            const int h0 = (int)((qh >> j) << 4) & 0x10;
            const int h1 = (int)(qh >> (j + 12)) & 0x10;
            q[j] = (int8_t)(((qs[j] & 15) | h0) - off);
            q[j + 16] = (int8_t)(((qs[j] >> 4) | h1) - off);
        }
        return one ? 24 : 22;
    }
    case QR_TYPE_Q8_0:
        memcpy(q, b + 2, 32);
        return 34;
    case QR_TYPE_IQ4_NL:
        for (int j = 0; j < 16; j++) {
            q[j] = IQ4NL_VALUES[b[2 + j] & 15];
            q[j + 16] = IQ4NL_VALUES[b[2 + j] >> 4];
        }
        return 18;
    default:
        return 0;
    }
}

/* ---- The job ---------------------------------------------------------------------------------- */

static void mm_rows_q8(const mm_job *j, int64_t o0, int64_t o1, int tid) {
    const int64_t nb = j->n_in / QR_QK;
    int8_t *q = j->cb->per_thread[tid].ptr;
    float *d = (float *)(q + ((j->n_in + 15) & ~(int64_t)15)), *m = d + nb;
    const bool has_min = j->wtype == QR_TYPE_Q4_1 || j->wtype == QR_TYPE_Q5_1;
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *b = j->w + (size_t)o * j->row_bytes;
        for (int64_t ib = 0; ib < nb; ib++) b += unpack_block32(j->wtype, b, q + ib * 32, &d[ib], &m[ib]);
        for (int64_t r = 0; r < j->n_rows; r++) {
            j->y[r * j->n_out + o] = qr_cpu_vdot_q32(j->wtype, q, d, has_min ? m : NULL, j->xq.q + r * j->n_in,
                                                     j->xq.d + r * nb, j->xq.s + r * nb, nb);
        }
    }
}

/* Q6_K, Q5_K, Q3_K, IQ4_XS against Q8_K blocks in the AVX2 kernels' orders. */
static void mm_rows_kq(const mm_job *j, int64_t o0, int64_t o1) {
    const int64_t nb = j->n_in / QR_QK_K;
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *wrow = j->w + (size_t)o * j->row_bytes;
        for (int64_t r = 0; r < j->n_rows; r++) {
            const qr_block_q8_k *yr = j->xk + r * nb;
            float v;
            if (j->wtype == QR_TYPE_Q6_K) v = qr_cpu_vdot_q6_k(wrow, yr, nb);
            else if (j->wtype == QR_TYPE_Q4_K) v = qr_cpu_vdot_q4_k_repack(wrow, yr, nb, r < j->n_gemm_rows);
            else if (j->wtype == QR_TYPE_Q2_K) v = qr_cpu_vdot_q2_k_repack(wrow, yr, nb, r < j->n_gemm_rows);
            else v = qr_cpu_vdot_kq(j->wtype, wrow, yr, nb);
            j->y[r * j->n_out + o] = v;
        }
    }
}

/* F16 weights in ggml's decode order: ggml_vec_dot_f16 on the F16 bits. */
static void mm_rows_f16_vec(const mm_job *j, int64_t o0, int64_t o1) {
    for (int64_t o = o0; o < o1; o++) {
        const uint16_t *wrow = (const uint16_t *)(j->w + (size_t)o * j->row_bytes);
        for (int64_t r = 0; r < j->n_rows; r++) {
            j->y[r * j->n_out + o] = qr_cpu_dot_f16(wrow, j->xh + r * j->n_in, j->n_in);
        }
    }
}

static void mm_rows_float(const mm_job *j, int64_t o0, int64_t o1, int tid) {
    if (j->xh && !j->gemm_order) {
        mm_rows_f16_vec(j, o0, o1);
        return;
    }
    float *wbuf = j->cb->per_thread[tid].ptr;
    for (int64_t o = o0; o < o1; o++) {
        const void *src = j->w + (size_t)o * j->row_bytes;
        const float *wrow = src;
        if (j->wtype != QR_TYPE_F32) {
            /* Cannot fail: the type and length were checked before the job started. */
            qr_dequantize_row(j->wtype, src, wbuf, j->n_in, NULL);
            wrow = wbuf;
        }
        for (int64_t r = 0; r < j->n_rows; r++) {
            const float *xr = j->xf + r * j->n_in;
            j->y[r * j->n_out + o] = j->gemm_order ? qr_cpu_dot_f32_gemm(wrow, xr, j->n_in)
                                                   : qr_cpu_dot_f32_vec(wrow, xr, j->n_in);
        }
    }
}

static void mm_worker(void *ctx, int64_t begin, int64_t end, int tid) {
    const mm_job *j = ctx;
    for (int k = 0; k < 2 && j->cb->mm_fast[k]; k++) {
        if (j->cb->mm_fast[k](j, begin, end, tid)) return;
    }
    if (j->vtype == QR_TYPE_Q8_0 || j->vtype == QR_TYPE_Q8_1) {
        mm_rows_q8(j, begin, end, tid);
    } else if (j->wtype == QR_TYPE_Q6_K || j->wtype == QR_TYPE_Q5_K || j->wtype == QR_TYPE_Q3_K ||
               j->wtype == QR_TYPE_IQ4_XS || j->wtype == QR_TYPE_Q4_K || j->wtype == QR_TYPE_Q2_K) {
        mm_rows_kq(j, begin, end);
    } else {
        mm_rows_float(j, begin, end, tid);
    }
}

static int check_weight(qr_type wtype, int64_t n_in, qr_type *vt, qr_error *err) {
    *vt = qr_backend_vec_dot_type(wtype);
    const qr_type_traits *tr = qr_type_get_traits(wtype);
    if (*vt == QR_TYPE_COUNT || !tr) {
        return qr_fail(err, "matmul: weight type %s is not supported", tr ? tr->name : "?");
    }
    const int64_t blk = *vt == QR_TYPE_Q8_K ? QR_QK_K : (*vt == QR_TYPE_Q8_0 || *vt == QR_TYPE_Q8_1) ? QR_QK : 1;
    if (n_in % tr->block_size != 0 || n_in % blk != 0) {
        return qr_fail(err, "matmul: row length %lld is not a multiple of the %s block", (long long)n_in, tr->name);
    }
    return QR_OK;
}

int qr_cpu_matmul(qr_backend *be, qr_type wtype, const void *w, int64_t n_in, int64_t n_out,
                  const float *x, int64_t n_rows, float *y, qr_error *err) {
    qr_cpu_backend *cb = be->impl;
    mm_job j = {.cb = cb, .wtype = wtype, .w = w, .n_in = n_in, .n_out = n_out, .n_rows = n_rows, .y = y};
    if (check_weight(wtype, n_in, &j.vtype, err) != QR_OK) return QR_ERR;
    j.row_bytes = qr_type_row_size(qr_type_get_traits(wtype), n_in);
    /* llama.cpp hands F32/F16 matmuls of 2+ rows to tinyBLAS when the shapes allow
     * (row length % 16, outputs % 4), single rows to ggml_vec_dot. */
    j.gemm_order = !be->batch_invariant && n_rows >= 2 && n_in % 16 == 0 && n_out % 4 == 0 &&
                   (wtype == QR_TYPE_F32 || wtype == QR_TYPE_F16);
    /* llama.cpp's repacked Q4_K / Q2_K run rows in groups of 4 through its gemm kernel and the
     * remainder through its gemv kernel. */
    j.n_gemm_rows = be->batch_invariant ? 0 : n_rows / 4 * 4;
    if (j.vtype == QR_TYPE_Q8_0 || j.vtype == QR_TYPE_Q8_1) {
        const int64_t nb = n_rows * (n_in / QR_QK);
        size_t need = (size_t)nb * 3 * sizeof(float) + (size_t)(n_rows * n_in);
        if (qr_cpu_scratch_reserve(&cb->act, need, err) != QR_OK) return QR_ERR;
        j.xq.d = cb->act.ptr;
        j.xq.s = j.xq.d + nb;
        j.xq.sum = (int32_t *)(j.xq.s + nb);
        j.xq.q = (int8_t *)(j.xq.sum + nb);
        convert_q8(cb, x, n_rows, n_in, &j.xq);
        const size_t per = (size_t)((n_in + 15) & ~(int64_t)15) + (size_t)(n_in / QR_QK) * 2 * sizeof(float);
        if (qr_cpu_reserve_per_thread(cb, per, err) != QR_OK) return QR_ERR;
    } else if (j.vtype == QR_TYPE_Q8_K) {
        if (qr_cpu_scratch_reserve(&cb->act, (size_t)(n_rows * n_in / QR_QK_K) * sizeof(qr_block_q8_k), err) != QR_OK) {
            return QR_ERR;
        }
        j.xk = cb->act.ptr;
        if (convert_q8_k(cb, x, n_rows * n_in, cb->act.ptr, err) != QR_OK) return QR_ERR;
    } else {
        /* F32 as it is; F16 / BF16 rounded (floats first, then the F16 bits) */
        if (j.vtype == QR_TYPE_F32) {
            j.xf = x;
        } else if (j.gemm_order && cb->features.avx512) {
            /* F16: the AVX-512 float GEMM rounds while it packs (no serial pass) */
            j.xf = x;
            j.x_round_f16 = true;
        } else {
            const size_t nx = (size_t)(n_rows * n_in);
            if (qr_cpu_scratch_reserve(&cb->act, nx * (sizeof(float) + sizeof(uint16_t)), err) != QR_OK) return QR_ERR;
            float *xf = cb->act.ptr;
            uint16_t *xh = (uint16_t *)(xf + nx);
            convert_half(j.vtype, x, nx, xf, xh);
            j.xf = xf;
            j.xh = j.vtype == QR_TYPE_F16 ? xh : NULL;
        }
        /* a dequantized row (scalar kernels), or the AVX-512 float GEMM's packed operands */
        const size_t per =
            j.gemm_order && cb->features.avx512 ? qr_cpu_mm_float_scratch_bytes(n_in) : (size_t)n_in * sizeof(float);
        if (qr_cpu_reserve_per_thread(cb, per, err) != QR_OK) return QR_ERR;
    }
    /* 8 chunks per thread; 4 for the AVX-512 float GEMM, which packs the whole batch per chunk */
    const int64_t chunks = cb->n_threads * (j.gemm_order && cb->features.avx512 ? 4 : 8);
    int64_t grain = n_out / chunks > 4 ? n_out / chunks : 4;
    if (cb->features.avx512 && n_rows >= QR_CPU_GEMM_MIN_ROWS && qr_cpu_gemm_panel_supported(wtype)) {
        /* whole 16-row panels per chunk */
        grain = (grain + 15) / 16 * 16;
        if (qr_cpu_reserve_per_thread(cb, qr_cpu_gemm_panel_bytes(n_in), err) != QR_OK) return QR_ERR;
    }
    qr_threadpool_parallel_for(cb->pool, n_out, grain, mm_worker, &j);
    return QR_OK;
}

int qr_cpu_get_rows(qr_backend *be, qr_type wtype, const void *w, int64_t n_in, const int32_t *ids,
                    int64_t n_rows, float scale, float *out, qr_error *err) {
    (void)be;
    const qr_type_traits *tr = qr_type_get_traits(wtype);
    if (!tr) return qr_fail(err, "get_rows: unsupported type %d", (int)wtype);
    const size_t row_bytes = qr_type_row_size(tr, n_in);
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *src = (const uint8_t *)w + (size_t)ids[r] * row_bytes;
        if (qr_dequantize_row(wtype, src, out + r * n_in, n_in, err) != QR_OK) return QR_ERR;
        if (scale != 1.0f) {
            for (int64_t i = 0; i < n_in; i++) out[r * n_in + i] *= scale;
        }
    }
    return QR_OK;
}
