/* src/quant: round trips of every quantizable type, dispatch errors, all-zero rows.
 *
 * Bounds come from outside our code: llama.cpp's tests/test-quantize-fns.cpp thresholds
 * (its "total quantization error" sqrt(sum d^2)/n on 0.1 + 2cos(i) data), and for the
 * formats with a closed-form rule, the per-element bound that rule implies (half a step,
 * plus what storing the scale in fp16 can add). The N(0,1) round-trip RMSE of every type
 * is printed for docs/quantization.md. Bit-exactness against the gguf package and
 * llama.cpp is tests/quant_test.py's job. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/quant.h"
#include "testing.h"

#define N_DATA (256 * 64)

static const qr_type QUANTIZABLE[] = {
    QR_TYPE_F32,  QR_TYPE_F16,  QR_TYPE_BF16, QR_TYPE_Q4_0, QR_TYPE_Q4_1, QR_TYPE_Q5_0,
    QR_TYPE_Q5_1, QR_TYPE_Q8_0, QR_TYPE_Q8_1, QR_TYPE_Q2_K, QR_TYPE_Q3_K, QR_TYPE_Q4_K,
    QR_TYPE_Q5_K, QR_TYPE_Q6_K, QR_TYPE_Q8_K,
};
#define N_QUANTIZABLE (sizeof QUANTIZABLE / sizeof QUANTIZABLE[0])

/* xorshift64* and Box-Muller: reproducible N(0,1) without libc's rand state. */
static uint64_t next_u64(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static double uniform01(uint64_t *s) { return ((double)(next_u64(s) >> 11) + 0.5) / 9007199254740992.0; }

static void fill_normal(float *x, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        const double u = uniform01(&s), v = uniform01(&s);
        x[i] = (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
    }
}

/* Round trip through `type`; returns QR_OK when both directions succeed. */
static int round_trip(qr_type type, const float *x, float *y, int64_t n) {
    static uint8_t buf[N_DATA * 4];
    qr_error err;
    if (qr_quantize_row(type, x, buf, n, &err) != QR_OK) {
        fprintf(stderr, "quantize %s: %s\n", qr_type_name(type), err.msg);
        return QR_ERR;
    }
    if (qr_dequantize_row(type, buf, y, n, &err) != QR_OK) {
        fprintf(stderr, "dequantize %s: %s\n", qr_type_name(type), err.msg);
        return QR_ERR;
    }
    return QR_OK;
}

static double rmse(const float *a, const float *b, int64_t n) {
    double sum = 0;
    for (int64_t i = 0; i < n; i++) sum += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(sum / (double)n);
}

/* llama.cpp test-quantize-fns: data 0.1 + 2cos(i), error sqrt(sum d^2)/n, and the
 * thresholds it applies to each type. */
static double llama_threshold(qr_type t) {
    if (t == QR_TYPE_Q2_K) return 0.0075;
    if (t == QR_TYPE_Q3_K) return 0.0040;
    return 0.002;
}

static void test_llama_total_error(void) {
    enum { N = 32 * 128 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = 0.1f + 2 * cosf((float)i);
    for (size_t k = 0; k < N_QUANTIZABLE; k++) {
        const qr_type t = QUANTIZABLE[k];
        REQUIRE(round_trip(t, x, y, N) == QR_OK);
        const double err = rmse(x, y, N) * sqrt((double)N) / N;
        printf("%-6s llama.cpp total error %.3e (threshold %.4f)\n", qr_type_name(t), err,
               llama_threshold(t));
        CHECK_MSG(err < llama_threshold(t), "%s total error %g >= %g", qr_type_name(t), err,
                  llama_threshold(t));
    }
}

/* Per-element bound of the closed-form formats, from the block's own data: half a step
 * of the level spacing (a full step for the one clamped level of the symmetric 4/5-bit
 * formats), plus the fp16 rounding of the stored scale times the largest level. Returns
 * a negative number for the K-quants, whose search has no simple bound. */
static double element_bound(qr_type t, const float *blk, int n, float x) {
    float amax = 0, mn = blk[0], mx = blk[0];
    for (int i = 0; i < n; i++) {
        amax = fmaxf(amax, fabsf(blk[i]));
        mn = fminf(mn, blk[i]);
        mx = fmaxf(mx, blk[i]);
    }
    const double h = 1.0 / 1024; /* 2^-10 covers fp16 rounding of d and of m */
    switch (t) {
    case QR_TYPE_F32: return 0;
    case QR_TYPE_F16: return fabs(x) * h / 2 + 3e-8; /* + half the smallest subnormal */
    case QR_TYPE_BF16: return fabs(x) / 256;
    case QR_TYPE_Q4_0: return amax / 8.0 * (1 + 8 * h);
    case QR_TYPE_Q5_0: return amax / 16.0 * (1 + 16 * h);
    case QR_TYPE_Q4_1: return (mx - mn) / 15.0 * (0.5 + 15 * h) + fabs(mn) * h;
    case QR_TYPE_Q5_1: return (mx - mn) / 31.0 * (0.5 + 31 * h) + fabs(mn) * h;
    case QR_TYPE_Q8_0:
    case QR_TYPE_Q8_1: return amax / 127.0 * (0.5 + 127 * h);
    case QR_TYPE_Q8_K: return amax / 127.0 * 0.5 * (1 + 1e-6);
    default: return -1;
    }
}

static void test_element_bounds(const float *x, const float *y, qr_type t) {
    const qr_type_traits *tr = qr_type_get_traits(t);
    const int bs = tr->block_size == 1 ? 32 : tr->block_size;
    int bad = 0;
    for (int64_t b = 0; b < N_DATA / bs; b++) {
        for (int i = 0; i < bs; i++) {
            const double bound = element_bound(t, x + b * bs, bs, x[b * bs + i]);
            if (bound >= 0 && fabs((double)x[b * bs + i] - y[b * bs + i]) > bound) bad++;
        }
    }
    CHECK_MSG(bad == 0, "%s: %d elements beyond the per-element bound", qr_type_name(t), bad);
}

/* Bits per stored value (mantissa bits + 1 for the float types). */
static int value_bits(qr_type t) {
    switch (t) {
    case QR_TYPE_F32: return 24;
    case QR_TYPE_F16: return 11;
    case QR_TYPE_BF16: return 8;
    case QR_TYPE_Q2_K: return 2;
    case QR_TYPE_Q3_K: return 3;
    case QR_TYPE_Q4_0: case QR_TYPE_Q4_1: case QR_TYPE_Q4_K: return 4;
    case QR_TYPE_Q5_0: case QR_TYPE_Q5_1: case QR_TYPE_Q5_K: return 5;
    case QR_TYPE_Q6_K: return 6;
    default: return 8;
    }
}

/* A sanity ceiling on the N(0,1) RMSE: floats err by at most half an ulp (relative
 * 2^-bits); block formats do no worse than a uniform b-bit quantizer over +-4 sigma. */
static double loose_rmse_bound(qr_type t) {
    const qr_type_traits *tr = qr_type_get_traits(t);
    const int b = value_bits(t);
    if (!tr->is_quantized) return ldexp(1.0, -b) * 2.0; /* rms(x) ~ 1, tails up to 2x */
    return 8.0 / (ldexp(1.0, b) - 1) / sqrt(12.0);
}

/* N(0,1) round trip of every type: per-element bounds where they exist, the loose RMSE
 * ceiling for all, and the RMSE table for docs/quantization.md. */
static void test_normal_round_trips(void) {
    static float x[N_DATA], y[N_DATA];
    fill_normal(x, N_DATA, 0x9E3779B97F4A7C15ull);
    printf("%-6s %12s %8s\n", "type", "rmse N(0,1)", "bits/wt");
    for (size_t k = 0; k < N_QUANTIZABLE; k++) {
        const qr_type t = QUANTIZABLE[k];
        const qr_type_traits *tr = qr_type_get_traits(t);
        REQUIRE(round_trip(t, x, y, N_DATA) == QR_OK);
        const double bpw = 8.0 * tr->type_size / tr->block_size, e = rmse(x, y, N_DATA);
        printf("%-6s %12.3e %8.4f\n", tr->name, e, bpw);
        test_element_bounds(x, y, t);
        CHECK_MSG(e <= loose_rmse_bound(t), "%s rmse %g above %g", tr->name, e, loose_rmse_bound(t));
    }
}

static void test_zero_rows(void) {
    static float x[N_DATA], y[N_DATA];
    memset(x, 0, sizeof x);
    for (size_t k = 0; k < N_QUANTIZABLE; k++) {
        const qr_type t = QUANTIZABLE[k];
        for (int64_t i = 0; i < N_DATA; i++) y[i] = 1.0f;
        REQUIRE(round_trip(t, x, y, N_DATA) == QR_OK);
        int nonzero = 0;
        for (int64_t i = 0; i < N_DATA; i++) nonzero += y[i] != 0.0f;
        CHECK_MSG(nonzero == 0, "%s: zero row comes back with %d nonzeros", qr_type_name(t), nonzero);
    }
}

/* Q8_K: bsums are the sums of each 16 qs, and the extreme element maps to -127. */
static void test_q8_k_invariants(void) {
    static float x[N_DATA];
    static qr_block_q8_k b[N_DATA / 256];
    fill_normal(x, N_DATA, 7);
    qr_error err;
    REQUIRE(qr_quantize_row(QR_TYPE_Q8_K, x, b, N_DATA, &err) == QR_OK);
    int bad = 0;
    for (int i = 0; i < N_DATA / 256; i++) {
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += b[i].qs[16 * g + l];
            bad += s != b[i].bsums[g];
        }
        int has_extreme = 0;
        for (int j = 0; j < 256; j++) has_extreme |= b[i].qs[j] == -127;
        bad += !has_extreme;
    }
    CHECK_MSG(bad == 0, "%d Q8_K invariant violations", bad);
}

/* Q8_1: s is fp16(d * sum q) up to the rounding of d itself to fp16. */
static void test_q8_1_sum(void) {
    static float x[N_DATA];
    static qr_block_q8_1 b[N_DATA / 32];
    fill_normal(x, N_DATA, 11);
    qr_error err;
    REQUIRE(qr_quantize_row(QR_TYPE_Q8_1, x, b, N_DATA, &err) == QR_OK);
    int bad = 0;
    for (int i = 0; i < N_DATA / 32; i++) {
        int sum = 0;
        for (int j = 0; j < 32; j++) sum += b[i].qs[j];
        const double want = qr_f16_to_f32(b[i].d) * (double)sum;
        const double got = qr_f16_to_f32(b[i].s);
        bad += fabs(got - want) > fabs(want) / 512 + 1e-7;
    }
    CHECK_MSG(bad == 0, "%d Q8_1 blocks with s != d*sum(q)", bad);
}

/* Non-finite and extreme inputs must not crash or trip the sanitizers (float-to-int
 * conversion of NaN/inf is undefined behaviour in C); the CI runs this under UBSan. */
static void test_hostile_inputs(void) {
    static float x[N_DATA], y[N_DATA];
    const float specials[] = {NAN, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, FLT_MIN, 1e-45f, -0.0f};
    const int n_specials = (int)(sizeof specials / sizeof specials[0]);
    fill_normal(x, N_DATA, 3);
    for (int64_t i = 0; i < N_DATA; i += 97) x[i] = specials[(i / 97) % n_specials];
    for (int64_t i = N_DATA / 2; i < N_DATA / 2 + 256; i++) x[i] = FLT_MAX; /* whole blocks */
    for (size_t k = 0; k < N_QUANTIZABLE; k++) {
        CHECK_MSG(round_trip(QUANTIZABLE[k], x, y, N_DATA) == QR_OK, "%s", qr_type_name(QUANTIZABLE[k]));
    }
}

static void test_dispatch_errors(void) {
    float x[64] = {0};
    uint8_t buf[512];
    qr_error err;
    err.msg[0] = 0;
    CHECK(qr_quantize_row(QR_TYPE_Q4_0, x, buf, 33, &err) == QR_ERR);
    CHECK(strstr(err.msg, "n=33") != NULL && strstr(err.msg, "Q4_0") != NULL);
    CHECK(qr_dequantize_row(QR_TYPE_Q4_K, buf, x, 32, &err) == QR_ERR);
    CHECK(qr_dequantize_row(QR_TYPE_Q8_0, buf, x, 0, &err) == QR_ERR);
    CHECK(qr_dequantize_row(QR_TYPE_Q8_0, buf, x, -32, &err) == QR_ERR);
    CHECK(qr_dequantize_row((qr_type)4, buf, x, 32, &err) == QR_ERR); /* unused id */
    CHECK(strstr(err.msg, "4") != NULL);
    CHECK(qr_dequantize_row((qr_type)99, buf, x, 32, &err) == QR_ERR);
    CHECK(qr_quantize_row((qr_type)-1, x, buf, 32, &err) == QR_ERR);
    CHECK(qr_quantize_row(QR_TYPE_IQ4_NL, x, buf, 32, &err) == QR_ERR);
    CHECK(qr_quantize_row(QR_TYPE_Q4_0, x, buf, 32, NULL) == QR_OK); /* err may be NULL */
    CHECK(qr_quantize_row(QR_TYPE_Q4_0, x, buf, 31, NULL) == QR_ERR);
    CHECK(!qr_can_quantize(QR_TYPE_IQ4_NL) && !qr_can_quantize(QR_TYPE_IQ4_XS));
    CHECK(!qr_can_quantize((qr_type)4) && !qr_can_quantize((qr_type)1000));
    for (size_t k = 0; k < N_QUANTIZABLE; k++) CHECK(qr_can_quantize(QUANTIZABLE[k]));
}

int main(void) {
    test_dispatch_errors();
    test_zero_rows();
    test_hostile_inputs();
    test_q8_k_invariants();
    test_q8_1_sum();
    test_llama_total_error();
    test_normal_round_trips();
    return qr_test_finish("test_quant");
}
