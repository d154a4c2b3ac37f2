#include "run_audit.h"

#include <math.h>

typedef struct stats {
    double min, max, sum, sumsq;
    int64_t n, n_nan, n_inf;
} stats;

static stats compute(const float *d, int64_t n) {
    stats s = {INFINITY, -INFINITY, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        const float v = d[i];
        if (isnan(v)) { s.n_nan++; continue; }
        if (isinf(v)) { s.n_inf++; continue; }
        s.min = v < s.min ? v : s.min;
        s.max = v > s.max ? v : s.max;
        s.sum += v;
        s.sumsq += (double)v * v;
        s.n++;
    }
    return s;
}

/* JSON has no NaN/Inf: non-finite statistics (all values non-finite) print as null. */
static void num(FILE *f, const char *key, double v) {
    if (isfinite(v)) fprintf(f, ",\"%s\":%.9g", key, v);
    else fprintf(f, ",\"%s\":null", key);
}

int run_audit_observe(void *user, int32_t layer, const char *op, const float *data, int64_t n_rows,
                      int64_t n_cols) {
    run_audit *a = user;
    const stats s = compute(data, n_rows * n_cols);
    if (a->dump) {
        fprintf(a->dump, "{\"step\":%lld,\"layer\":%d,\"op\":\"%s\",\"rows\":%lld,\"cols\":%lld", (long long)a->step,
                layer, op, (long long)n_rows, (long long)n_cols);
        num(a->dump, "min", s.n ? s.min : NAN);
        num(a->dump, "max", s.n ? s.max : NAN);
        num(a->dump, "mean", s.n ? s.sum / (double)s.n : NAN);
        num(a->dump, "rms", s.n ? sqrt(s.sumsq / (double)s.n) : NAN);
        fprintf(a->dump, ",\"nan\":%lld,\"inf\":%lld}\n", (long long)s.n_nan, (long long)s.n_inf);
    }
    if (a->check_numerics && (s.n_nan || s.n_inf)) {
        snprintf(a->failure, sizeof a->failure, "non-finite values at step %lld, layer %d, op %s: %lld NaN, %lld Inf",
                 (long long)a->step, layer, op, (long long)s.n_nan, (long long)s.n_inf);
        return 1;
    }
    return 0;
}

void run_audit_logits(run_audit *a, const float *logits, int32_t n_vocab, int32_t token) {
    if (!a->dump) return;
    float m1 = -INFINITY, m2 = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (logits[i] > m1) { m2 = m1; m1 = logits[i]; }
        else if (logits[i] > m2) m2 = logits[i];
    }
    double z = 0.0, ez = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) {
        const double e = exp((double)logits[i] - m1);
        z += e;
        ez += e * ((double)logits[i] - m1);
    }
    const double entropy = log(z) - ez / z;
    fprintf(a->dump, "{\"step\":%lld,\"logits\":{\"token\":%d", (long long)a->step, token);
    num(a->dump, "entropy", entropy);
    num(a->dump, "max_logit", m1);
    num(a->dump, "top2_margin", (double)m1 - m2);
    fprintf(a->dump, "}}\n");
}
