/* Sampler chain: properties checked against references computed here, independently of
 * src/engine/sampler.c (double-precision softmax, a plain sort, explicit counting), never
 * against recorded outputs of the sampler itself. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "engine/sampler.h"
#include "testing.h"

/* ---- helpers ------------------------------------------------------------------------- */

static qr_sampler_params plain_params(float temperature, uint64_t seed) {
    qr_sampler_params p = qr_sampler_params_default();
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = seed;
    return p;
}

static qr_sampler *make(const qr_sampler_params *p, int32_t n_vocab) {
    qr_error err = {{0}};
    qr_sampler *s = qr_sampler_create(p, n_vocab, &err);
    if (!s) fprintf(stderr, "qr_sampler_create: %s\n", err.msg);
    REQUIRE(s != NULL);
    return s;
}

static int32_t sample_ok(qr_sampler *s, const float *logits) {
    qr_error err = {{0}};
    int32_t t = qr_sampler_sample(s, logits, &err);
    if (t < 0) fprintf(stderr, "qr_sampler_sample: %s\n", err.msg);
    REQUIRE(t >= 0 && t < qr_sampler_n_vocab(s));
    return t;
}

static void random_logits(qr_rng *r, float *l, int n, float scale) {
    for (int i = 0; i < n; i++) l[i] = (float)(qr_rng_normal(r) * scale);
}

/* Argmax with the lowest id on ties, ignoring -inf. */
static int ref_argmax(const float *l, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (l[i] != -INFINITY && (best < 0 || l[i] > l[best])) best = i;
    return best;
}

/* Reference softmax of l/t over the tokens with keep[i] (all when keep is NULL). */
static void ref_softmax(const float *l, const bool *keep, int n, double t, double *p) {
    double m = -INFINITY, z = 0.0;
    for (int i = 0; i < n; i++)
        if (!keep || keep[i]) m = fmax(m, (double)l[i] / t);
    for (int i = 0; i < n; i++) {
        p[i] = (!keep || keep[i]) ? exp((double)l[i] / t - m) : 0.0;
        z += p[i];
    }
    for (int i = 0; i < n; i++) p[i] /= z;
}

/* Order of ids by logit descending, id ascending (a plain qsort of (logit, id) pairs). */
typedef struct {
    float logit;
    int id;
} ref_pair;

static int ref_pair_cmp(const void *pa, const void *pb) {
    const ref_pair *a = pa, *b = pb;
    if (a->logit != b->logit) return a->logit > b->logit ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static void ref_order(const float *l, int n, int *ord) {
    ref_pair *pairs = malloc((size_t)n * sizeof *pairs);
    REQUIRE(pairs != NULL);
    for (int i = 0; i < n; i++) pairs[i] = (ref_pair){l[i], i};
    qsort(pairs, (size_t)n, sizeof *pairs, ref_pair_cmp);
    for (int i = 0; i < n; i++) ord[i] = pairs[i].id;
    free(pairs);
}

/* Pearson's chi-square of observed counts against expected probabilities. */
static double chi_square(const long *obs, const double *p, int n, long draws) {
    double chi = 0.0;
    for (int i = 0; i < n; i++) {
        double e = p[i] * (double)draws;
        if (e > 0) chi += ((double)obs[i] - e) * ((double)obs[i] - e) / e;
    }
    return chi;
}

/* ---- greedy -------------------------------------------------------------------------- */

static void test_greedy_equivalences(void) {
    enum { N = 300 };
    qr_rng r;
    qr_rng_init(&r, 11);
    float l[N];
    qr_sampler_params pg = plain_params(0.0f, 1);
    qr_sampler_params pk = plain_params(1.0f, 2);
    pk.top_k = 1;
    qr_sampler_params pk_hot = pk;
    pk_hot.temperature = 5.0f;
    pk_hot.top_p = 0.5f;
    qr_sampler *g = make(&pg, N), *k1 = make(&pk, N), *k1h = make(&pk_hot, N);
    for (int trial = 0; trial < 500; trial++) {
        random_logits(&r, l, N, 3.0f);
        if (trial % 3 == 0) {
            /* a tie at the top, placed so that the higher id comes first in memory order
             * would not matter: the lower id must win */
            int a = (int)(qr_rng_next(&r) % N), b = (int)(qr_rng_next(&r) % N);
            l[a] = l[b] = 100.0f;
        }
        if (trial % 7 == 0) {
            for (int i = 0; i < N; i += 2) l[i] = -INFINITY;
        }
        int want = ref_argmax(l, N);
        CHECK(sample_ok(g, l) == want);
        CHECK(sample_ok(k1, l) == want);
        CHECK(sample_ok(k1h, l) == want);
    }
    /* all-equal logits: greedy takes token 0 */
    for (int i = 0; i < N; i++) l[i] = 0.25f;
    CHECK(sample_ok(g, l) == 0);
    CHECK(sample_ok(k1, l) == 0);
    qr_sampler_free(g);
    qr_sampler_free(k1);
    qr_sampler_free(k1h);
}

/* A vanishing temperature concentrates all mass on the argmax, even where l/T itself
 * would overflow a float (the sampler must not turn that into NaN). */
static void test_tiny_temperature(void) {
    enum { N = 100 };
    qr_rng r;
    qr_rng_init(&r, 12);
    float l[N];
    qr_sampler_params p = plain_params(1e-30f, 3);
    qr_sampler *s = make(&p, N);
    for (int trial = 0; trial < 200; trial++) {
        random_logits(&r, l, N, trial % 2 ? 1e9f : 1.0f); /* 1e9 / 1e-30 overflows */
        if (trial % 3 == 0) l[trial % N] = 3e38f;
        CHECK(sample_ok(s, l) == ref_argmax(l, N));
    }
    qr_sampler_free(s);
}

/* ---- distribution -------------------------------------------------------------------- */

/* 200k draws from a 10-token distribution; chi-square against the reference softmax of
 * the survivors (keep == NULL: all tokens), compared with the 99.9% critical value. */
static void check_distribution(const qr_sampler_params *p, const float *l, const bool *keep,
                               double crit, const char *what) {
    enum { N = 10 };
    const long draws = 200000;
    qr_sampler *s = make(p, N);
    long obs[N] = {0};
    for (long d = 0; d < draws; d++) obs[sample_ok(s, l)]++;
    double prob[N];
    ref_softmax(l, keep, N, p->temperature, prob);
    int dof = -1;
    for (int i = 0; i < N; i++) {
        if (prob[i] > 0) dof++;
        if (prob[i] == 0) CHECK_MSG(obs[i] == 0, "%s: token %d drawn %ld times", what, i, obs[i]);
    }
    double chi = chi_square(obs, prob, N, draws);
    printf("  %-28s chi2 = %7.3f (dof %d, 99.9%% critical %.3f)\n", what, chi, dof, crit);
    CHECK_MSG(chi < crit, "%s: chi-square %.3f >= %.3f", what, chi, crit);
    qr_sampler_free(s);
}

static void test_distributions(void) {
    /* 99.9% quantiles of the chi-square distribution */
    const double crit9 = 27.877, crit4 = 18.467;
    const float l[10] = {1.0f, 2.0f, 0.5f, -1.0f, 3.0f, 2.5f, 0.0f, -0.5f, 1.5f, 2.2f};
    qr_sampler_params p = plain_params(1.0f, 1234);
    check_distribution(&p, l, NULL, crit9, "T=1, no truncation");
    p = plain_params(0.6f, 99);
    check_distribution(&p, l, NULL, crit9, "T=0.6, no truncation");
    p = plain_params(2.5f, 7);
    check_distribution(&p, l, NULL, crit9, "T=2.5, no truncation");

    /* top-k 5 renormalises over the five best (ids 4, 5, 9, 1, 8) */
    p = plain_params(1.0f, 5);
    p.top_k = 5;
    bool keep[10] = {0};
    keep[4] = keep[5] = keep[9] = keep[1] = keep[8] = true;
    check_distribution(&p, l, keep, crit4, "T=1, top-k 5");

    /* all-equal logits: uniform */
    float flat[10];
    for (int i = 0; i < 10; i++) flat[i] = -3.0f;
    p = plain_params(1.0f, 77);
    check_distribution(&p, flat, NULL, crit9, "all-equal logits");
}

/* ---- truncation sets ----------------------------------------------------------------- */

/* The allowed set of top-k -> top-p -> min-p on temperature-1 probabilities, computed
 * from scratch. Returns false when a boundary is too close to call in float. */
static bool ref_allowed_ordered(const float *l, int n, const int *ord, int top_k, double top_p,
                                double min_p, bool *allowed);

static bool ref_allowed(const float *l, int n, int top_k, double top_p, double min_p,
                        bool *allowed) {
    int *ord = malloc((size_t)n * sizeof *ord);
    REQUIRE(ord != NULL);
    ref_order(l, n, ord);
    bool ok = ref_allowed_ordered(l, n, ord, top_k, top_p, min_p, allowed);
    free(ord);
    return ok;
}

static bool ref_allowed_ordered(const float *l, int n, const int *ord, int top_k, double top_p,
                                double min_p, bool *allowed) {
    int m = n;
    if (top_k > 0 && top_k < m) m = top_k;
    if (m < n && l[ord[m - 1]] - l[ord[m]] < 1e-4f) return false;
    double z = 0.0, mx = l[ord[0]];
    for (int i = 0; i < m; i++) z += exp(l[ord[i]] - mx);
    int keep_p = m;
    if (top_p < 1.0) {
        double cum = 0.0;
        for (int i = 0; i < m; i++) {
            cum += exp(l[ord[i]] - mx) / z;
            if (fabs(cum - top_p) < 1e-5) return false;
            if (cum >= top_p) {
                keep_p = i + 1;
                break;
            }
        }
    }
    memset(allowed, 0, (size_t)n * sizeof *allowed);
    for (int i = 0; i < keep_p; i++) {
        double rel = exp(l[ord[i]] - mx); /* p_i / p_max */
        if (min_p > 0 && fabs(rel - min_p) < 1e-5) return false;
        if (min_p > 0 && rel < min_p) break;
        allowed[ord[i]] = true;
    }
    return true;
}

/* n random logits (scale) plus n_spikes tokens set near 5, the peaked shape of real
 * LLM logits; draws from the sampler must stay inside the reference allowed set. */
static void check_truncation(int top_k, float top_p, float min_p, float temperature,
                             float scale, int n, int n_spikes, uint64_t seed) {
    const int draws = n > 1000 ? 3000 : 20000;
    qr_rng r;
    qr_rng_init(&r, seed);
    float *l = malloc((size_t)n * sizeof *l);
    bool *allowed = malloc((size_t)n * sizeof *allowed);
    long *seen = calloc((size_t)n, sizeof *seen);
    double *prob = malloc((size_t)n * sizeof *prob);
    REQUIRE(l && allowed && seen && prob);
    do {
        random_logits(&r, l, n, scale);
        for (int i = 0; i < n_spikes; i++)
            l[qr_rng_next(&r) % (uint64_t)n] = 5.0f + (float)(0.3 * qr_rng_normal(&r));
    } while (!ref_allowed(l, n, top_k, top_p, min_p, allowed));

    qr_sampler_params p = plain_params(temperature, seed);
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    qr_sampler *s = make(&p, n);
    int outside = 0;
    for (int d = 0; d < draws; d++) {
        int t = sample_ok(s, l);
        seen[t]++;
        if (!allowed[t]) outside++;
    }
    /* survivors likely enough to be drawn must all appear: the set is not too small */
    ref_softmax(l, allowed, n, temperature, prob);
    int missing = 0, n_allowed = 0;
    for (int i = 0; i < n; i++) {
        n_allowed += allowed[i];
        if (prob[i] * draws > 20.0 && seen[i] == 0) missing++; /* P(miss) < e^-20 */
    }
    printf("  n=%-5d top_k=%-3d top_p=%.2f min_p=%.2f T=%.1f: %d allowed, %d outside, %d missing\n",
           n, top_k, (double)top_p, (double)min_p, (double)temperature, n_allowed, outside,
           missing);
    CHECK(outside == 0);
    CHECK(missing == 0);
    CHECK_MSG(n_allowed >= 3 && n_allowed < n, "test design: %d survivors is too trivial", n_allowed);
    qr_sampler_free(s);
    free(l);
    free(allowed);
    free(seen);
    free(prob);
}

static void test_truncation_sets(void) {
    check_truncation(10, 1.0f, 0.0f, 1.0f, 2.0f, 200, 0, 101);
    check_truncation(0, 0.9f, 0.0f, 1.0f, 2.0f, 200, 0, 102);
    check_truncation(0, 0.5f, 0.0f, 1.5f, 1.0f, 200, 0, 103); /* temperature comes after top-p */
    check_truncation(0, 1.0f, 0.1f, 1.0f, 1.0f, 200, 0, 104);
    check_truncation(0, 1.0f, 0.3f, 2.0f, 0.7f, 200, 0, 105); /* ... and after min-p */
    check_truncation(40, 0.95f, 0.05f, 0.8f, 2.0f, 200, 0, 106); /* llama.cpp's defaults */
    check_truncation(25, 0.7f, 0.2f, 3.0f, 1.0f, 200, 0, 107);
    check_truncation(5, 0.99f, 0.0f, 1.0f, 2.0f, 200, 0, 108);
    check_truncation(0, 0.95f, 0.02f, 1.0f, 1.5f, 200, 0, 109);
    check_truncation(60, 0.8f, 0.0f, 0.5f, 0.5f, 200, 0, 110); /* top-p binds inside top-k */
    /* large vocabularies: top-p's prefix inside the first 256 ordered candidates, and past them */
    check_truncation(0, 0.3f, 0.0f, 1.0f, 1.0f, 5000, 40, 111);
    check_truncation(0, 0.5f, 0.0f, 1.0f, 1.0f, 5000, 0, 112);
    check_truncation(0, 0.9f, 0.01f, 1.0f, 1.0f, 5000, 30, 113);
    check_truncation(1000, 0.6f, 0.0f, 1.0f, 1.0f, 5000, 0, 114);
}

/* top-k with ties at the cut: the lower ids stay. */
static void test_top_k_ties(void) {
    enum { N = 50 };
    float l[N];
    for (int i = 0; i < N; i++) l[i] = (i % 5 == 0) ? 1.0f : 0.0f; /* ten tied best */
    qr_sampler_params p = plain_params(1.0f, 3);
    p.top_k = 3;
    qr_sampler *s = make(&p, N);
    int outside = 0;
    long seen[N] = {0};
    for (int d = 0; d < 3000; d++) {
        int t = sample_ok(s, l);
        seen[t]++;
        if (t != 0 && t != 5 && t != 10) outside++;
    }
    CHECK(outside == 0);
    CHECK(seen[0] > 0 && seen[5] > 0 && seen[10] > 0);
    qr_sampler_free(s);
}

/* ---- penalties and bias -------------------------------------------------------------- */

static float ref_penalise(float v, int count, float rep, float freq, float pres) {
    if (count == 0) return v;
    v = v <= 0.0f ? v * rep : v / rep;
    return v - ((float)count * freq + pres);
}

static void test_penalties(void) {
    enum { N = 64, W = 8 };
    qr_sampler_params p = plain_params(1.0f, 1);
    p.repeat_penalty = 1.3f;
    p.freq_penalty = 0.25f;
    p.presence_penalty = 0.5f;
    p.penalty_last_n = W;
    qr_sampler *s = make(&p, N);
    qr_error err = {{0}};
    REQUIRE(qr_sampler_set_logit_bias(s, 3, 2.0f, &err) == QR_OK);
    REQUIRE(qr_sampler_set_logit_bias(s, 40, -1.5f, &err) == QR_OK);
    REQUIRE(qr_sampler_set_logit_bias(s, 41, -1.5f, &err) == QR_OK);
    REQUIRE(qr_sampler_set_logit_bias(s, 41, 0.0f, &err) == QR_OK); /* removed again */

    qr_rng r;
    qr_rng_init(&r, 5);
    float l[N], out[N];
    int hist[200];
    int n_hist = 0;
    for (int step = 0; step < 60; step++) {
        random_logits(&r, l, N, 2.0f);
        l[7] = 0.0f;           /* zero: multiplied */
        l[8] = -0.0f;          /* negative zero, unpenalised: must keep its sign bit */
        l[9] = NAN;            /* never penalised here: copied bit for bit */
        /* window tokens mostly from a small range so that counts exceed 1 */
        int tok = (int)(qr_rng_next(&r) % 12);
        if (tok == 8 || tok == 9) tok = 3;
        REQUIRE(qr_sampler_accept(s, tok, &err) == QR_OK);
        hist[n_hist++] = tok;

        int count[N] = {0};
        for (int i = (n_hist > W ? n_hist - W : 0); i < n_hist; i++) count[hist[i]]++;
        qr_sampler_transform_logits(s, l, out);
        for (int i = 0; i < N; i++) {
            const float bias = i == 3 ? 2.0f : i == 40 ? -1.5f : 0.0f;
            if (count[i] == 0 && bias == 0.0f) {
                CHECK_MSG(memcmp(&out[i], &l[i], sizeof(float)) == 0,
                          "step %d token %d changed although neither biased nor in window", step, i);
                continue;
            }
            float want = ref_penalise(l[i] + bias, count[i], p.repeat_penalty, p.freq_penalty,
                                      p.presence_penalty);
            CHECK_MSG(fabsf(out[i] - want) <= 1e-6f * fmaxf(1.0f, fabsf(want)),
                      "step %d token %d (count %d): got %.9g want %.9g", step, i, count[i],
                      (double)out[i], (double)want);
        }
    }
    /* in-place transform gives the same */
    float inplace[N];
    memcpy(inplace, l, sizeof l);
    qr_sampler_transform_logits(s, inplace, inplace);
    CHECK(memcmp(inplace, out, sizeof out) == 0);

    /* reset empties the window: only the bias remains */
    qr_sampler_reset(s);
    qr_sampler_transform_logits(s, l, out);
    for (int i = 0; i < N; i++) {
        if (i == 3 || i == 40) continue;
        CHECK(memcmp(&out[i], &l[i], sizeof(float)) == 0);
    }
    CHECK(out[3] == l[3] + 2.0f && out[40] == l[40] + -1.5f);
    qr_sampler_free(s);
}

/* Neutral penalties (repeat 1, freq 0, presence 0) leave every logit untouched. */
static void test_neutral_penalties(void) {
    enum { N = 32 };
    qr_sampler_params p = plain_params(1.0f, 1);
    qr_sampler *s = make(&p, N);
    qr_error err = {{0}};
    for (int i = 0; i < 20; i++) REQUIRE(qr_sampler_accept(s, i % 5, &err) == QR_OK);
    float l[N], out[N];
    for (int i = 0; i < N; i++) l[i] = (float)i * -0.37f + 1.0f;
    qr_sampler_transform_logits(s, l, out);
    CHECK(memcmp(l, out, sizeof l) == 0);
    qr_sampler_free(s);
}

/* Penalties steer greedy decoding: a repeated argmax loses to the runner-up. */
static void test_penalty_changes_greedy(void) {
    enum { N = 16 };
    qr_sampler_params p = plain_params(0.0f, 1);
    p.presence_penalty = 1.0f;
    p.penalty_last_n = 4;
    qr_sampler *s = make(&p, N);
    qr_error err = {{0}};
    float l[N] = {0};
    l[2] = 5.0f;
    l[6] = 4.5f;
    CHECK(sample_ok(s, l) == 2);
    REQUIRE(qr_sampler_accept(s, 2, &err) == QR_OK);
    CHECK(sample_ok(s, l) == 6);
    /* four other tokens push 2 out of the window */
    for (int i = 0; i < 4; i++) REQUIRE(qr_sampler_accept(s, 10, &err) == QR_OK);
    CHECK(sample_ok(s, l) == 2);
    /* a -inf bias bans a token */
    REQUIRE(qr_sampler_set_logit_bias(s, 2, -INFINITY, &err) == QR_OK);
    CHECK(sample_ok(s, l) == 6);
    qr_sampler_free(s);
}

/* ---- reproducibility ----------------------------------------------------------------- */

static void draw_sequence(qr_sampler *s, const float *l, int n, int32_t *seq) {
    for (int i = 0; i < n; i++) seq[i] = sample_ok(s, l);
}

static void test_seeds(void) {
    enum { N = 1000, STEPS = 500 };
    qr_rng r;
    qr_rng_init(&r, 8);
    float l[N];
    random_logits(&r, l, N, 1.0f);
    qr_sampler_params pa = qr_sampler_params_default();
    pa.temperature = 1.0f;
    pa.seed = 424242;
    qr_sampler_params pb = pa;
    pb.seed = 424243;
    qr_sampler *a1 = make(&pa, N), *a2 = make(&pa, N), *b = make(&pb, N);
    int32_t s1[STEPS], s2[STEPS], sb[STEPS];
    /* interleave the samplers: no shared or global state may leak between them */
    for (int i = 0; i < STEPS; i++) {
        s1[i] = sample_ok(a1, l);
        sb[i] = sample_ok(b, l);
        srand((unsigned)i); /* the C library's global generator must not matter */
        (void)rand();
        s2[i] = sample_ok(a2, l);
    }
    CHECK(memcmp(s1, s2, sizeof s1) == 0);
    int differ = 0;
    for (int i = 0; i < STEPS; i++) differ += s1[i] != sb[i];
    printf("  seeds: same seed identical over %d draws; different seed differs at %d/%d\n", STEPS,
           differ, STEPS);
    CHECK(differ > STEPS / 2);
    /* reset restarts the stream */
    qr_sampler_reset(a1);
    int32_t again[STEPS];
    draw_sequence(a1, l, STEPS, again);
    CHECK(memcmp(s1, again, sizeof s1) == 0);
    qr_sampler_free(a1);
    qr_sampler_free(a2);
    qr_sampler_free(b);
}

/* ---- errors -------------------------------------------------------------------------- */

static void expect_invalid(qr_sampler_params p, int32_t n_vocab, const char *name) {
    qr_error err = {{0}};
    qr_sampler *s = qr_sampler_create(&p, n_vocab, &err);
    CHECK_MSG(s == NULL, "%s accepted", name);
    CHECK_MSG(strstr(err.msg, name) != NULL, "error '%s' does not name %s", err.msg, name);
    qr_sampler_free(s);
}

static void test_invalid_params(void) {
    const qr_sampler_params d = qr_sampler_params_default();
    qr_sampler_params p;
    const float bad_temp[] = {-0.1f, NAN, INFINITY};
    for (int i = 0; i < 3; i++) { p = d; p.temperature = bad_temp[i]; expect_invalid(p, 10, "temperature"); }
    const float bad_top_p[] = {0.0f, -0.5f, 1.01f, NAN};
    for (int i = 0; i < 4; i++) { p = d; p.top_p = bad_top_p[i]; expect_invalid(p, 10, "top_p"); }
    const float bad_min_p[] = {-0.01f, 1.5f, NAN};
    for (int i = 0; i < 3; i++) { p = d; p.min_p = bad_min_p[i]; expect_invalid(p, 10, "min_p"); }
    const float bad_rep[] = {0.0f, -1.0f, INFINITY, NAN, 1e-40f};
    for (int i = 0; i < 5; i++) { p = d; p.repeat_penalty = bad_rep[i]; expect_invalid(p, 10, "repeat_penalty"); }
    p = d; p.freq_penalty = NAN; expect_invalid(p, 10, "freq_penalty");
    p = d; p.presence_penalty = -INFINITY; expect_invalid(p, 10, "presence_penalty");
    p = d; p.penalty_last_n = -1; expect_invalid(p, 10, "penalty_last_n");
    expect_invalid(d, 0, "n_vocab");

    /* the boundaries themselves are valid */
    p = d;
    p.temperature = 0.0f;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    p.top_k = -5;
    p.penalty_last_n = 0;
    qr_error err = {{0}};
    CHECK(qr_sampler_params_validate(&p, &err) == QR_OK);
}

static void test_bad_inputs(void) {
    enum { N = 8 };
    qr_sampler_params p = qr_sampler_params_default();
    qr_sampler *s = make(&p, N);
    qr_error err = {{0}};
    float l[N] = {0, 1, 2, 3, 4, 5, 6, 7};

    l[3] = NAN;
    CHECK(qr_sampler_sample(s, l, &err) == -1 && strstr(err.msg, "NaN") && strstr(err.msg, "3"));
    l[3] = INFINITY;
    CHECK(qr_sampler_sample(s, l, &err) == -1 && strstr(err.msg, "+inf"));
    for (int i = 0; i < N; i++) l[i] = -INFINITY;
    CHECK(qr_sampler_sample(s, l, &err) == -1 && strstr(err.msg, "-inf"));
    /* one finite token among -inf ones is the only possible draw */
    l[5] = -1000.0f;
    for (int d = 0; d < 100; d++) CHECK(sample_ok(s, l) == 5);
    /* a -inf bias on the last finite token leaves nothing */
    REQUIRE(qr_sampler_set_logit_bias(s, 5, -INFINITY, &err) == QR_OK);
    CHECK(qr_sampler_sample(s, l, &err) == -1);
    qr_sampler_clear_logit_bias(s);
    CHECK(sample_ok(s, l) == 5);

    CHECK(qr_sampler_set_logit_bias(s, N, 1.0f, &err) == QR_ERR && strstr(err.msg, "token"));
    CHECK(qr_sampler_set_logit_bias(s, -1, 1.0f, &err) == QR_ERR);
    CHECK(qr_sampler_set_logit_bias(s, 1, NAN, &err) == QR_ERR);
    CHECK(qr_sampler_set_logit_bias(s, 1, INFINITY, &err) == QR_ERR);
    CHECK(qr_sampler_accept(s, N, &err) == QR_ERR && strstr(err.msg, "token"));
    CHECK(qr_sampler_accept(s, -2, &err) == QR_ERR);
    qr_sampler_free(s);
    qr_sampler_free(NULL);
}

int main(void) {
    test_greedy_equivalences();
    test_tiny_temperature();
    test_distributions();
    test_truncation_sets();
    test_top_k_ties();
    test_penalties();
    test_neutral_penalties();
    test_penalty_changes_greedy();
    test_seeds();
    test_invalid_params();
    test_bad_inputs();
    return qr_test_finish("test_sampler");
}
