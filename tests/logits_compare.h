/* Comparing two backends' logits (the cuda tests): relative L2 error, argmax, the
 * largest elementwise difference, the fixed pseudo-random prompt they share, and a decode
 * that records its failure. */
#ifndef QR_TESTS_LOGITS_COMPARE_H
#define QR_TESTS_LOGITS_COMPARE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "quarrel.h"
#include "testing.h"

/* ||a - ref||_2 / ||ref||_2 (the plain norm of a - ref when ref is zero; inf on NaN/inf). */
static inline double qr_rel_l2(const float *a, const float *ref, int64_t n) {
    double d = 0.0, r = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double e = (double)a[i] - (double)ref[i];
        d += e * e;
        r += (double)ref[i] * (double)ref[i];
    }
    if (!isfinite(d)) return INFINITY;
    return r > 0.0 ? sqrt(d / r) : sqrt(d);
}

/* The highest logit's index (the lowest on ties: greedy decoding's choice). */
static inline int32_t qr_argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static inline double qr_max_abs_diff(const float *a, const float *b, int32_t n) {
    double m = 0.0;
    for (int32_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

/* Two backends picked different greedy tokens (t_ref from ref, t_got from got): a near tie
 * when ref's margin between them is within twice the largest logit difference, which any
 * rounding difference may flip; otherwise the backends disagree. */
static inline bool qr_near_tie(const float *ref, const float *got, int32_t n, qr_token t_ref, qr_token t_got,
                               double *margin, double *dmax) {
    *dmax = qr_max_abs_diff(got, ref, n);
    *margin = (double)ref[t_ref] - (double)ref[t_got];
    return *margin <= 2.0 * *dmax;
}

/* n token ids below n_vocab from a fixed LCG: every test and run sees the same prompt. */
static inline void qr_test_prompt(int32_t n_vocab, int32_t n, qr_token *out) {
    uint32_t s = 12345u;
    for (int32_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        out[i] = (qr_token)((s >> 8) % (uint32_t)n_vocab);
    }
}

/* Decodes n tokens continuing sequence 0, with logits for every row (all_logits) or the
 * last; a failure is a CHECK failure with the message. */
static inline bool qr_test_decode(qr_ctx *c, const qr_token *t, int32_t n, bool all_logits) {
    char err[512];
    int8_t *want = malloc((size_t)n);
    REQUIRE(want);
    for (int32_t i = 0; i < n; i++) want[i] = 1;
    qr_batch b = {.n_tokens = n, .tokens = t, .logits = all_logits ? want : NULL};
    const int rc = qr_decode(c, &b, err, sizeof err);
    CHECK_MSG(rc == 0, "decode: %s", err);
    free(want);
    return rc == 0;
}

#endif
