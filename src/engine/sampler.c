/* The sampler chain (see sampler.h and docs/sampler.md for the semantics).
 *
 * Work per call is O(n_vocab) plus O(n log k) for top-k and, when top-p is on, a sort of
 * the candidates it can reach. Candidates whose transformed logit is -inf are dropped before
 * truncation: their probability is exactly 0, so no stage could ever emit them. */
#include "engine/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

typedef struct {
    int32_t id;
    float logit;
} qr_candidate;

struct qr_sampler {
    qr_sampler_params params;
    int32_t n_vocab;
    qr_rng rng;

    /* Logit bias: a dense value per token plus the list of biased tokens, so that the
     * transform touches only those (adding +0.0 would turn a -0.0 logit into +0.0). */
    float *bias;
    int32_t *bias_tokens;
    int32_t *bias_slot; /* index into bias_tokens, -1 when unbiased */
    int32_t n_bias;

    /* Penalty window: a ring of the last penalty_last_n tokens, a count per token and the
     * list of distinct tokens in the window (with each one's slot in that list). */
    int32_t *ring;
    int32_t ring_len, ring_head;
    int32_t *count;
    int32_t *distinct;
    int32_t *distinct_slot;
    int32_t n_distinct;

    float *work;          /* transformed logits */
    qr_candidate *cand;   /* surviving candidates */
    float *prob;          /* unnormalised probabilities of the survivors */
};

qr_sampler_params qr_sampler_params_default(void) {
    qr_sampler_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .freq_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .penalty_last_n = 64,
        .seed = QR_SAMPLER_DEFAULT_SEED,
    };
    return p;
}

int qr_sampler_params_validate(const qr_sampler_params *p, qr_error *err) {
    if (!p) return qr_fail(err, "sampler: params is NULL");
    if (!isfinite(p->temperature) || p->temperature < 0.0f)
        return qr_fail(err, "sampler: temperature must be finite and >= 0 (0 = greedy), got %g",
                       (double)p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return qr_fail(err, "sampler: top_p must be in (0, 1] (1 = disabled), got %g",
                       (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return qr_fail(err, "sampler: min_p must be in [0, 1] (0 = disabled), got %g",
                       (double)p->min_p);
    /* 1/penalty must be finite too, or dividing a logit by it overflows (as llama.cpp checks). */
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0.0f ||
        !isfinite(1.0f / p->repeat_penalty))
        return qr_fail(err, "sampler: repeat_penalty must be finite and > 0 (1 = disabled), got %g",
                       (double)p->repeat_penalty);
    if (!isfinite(p->freq_penalty))
        return qr_fail(err, "sampler: freq_penalty must be finite, got %g", (double)p->freq_penalty);
    if (!isfinite(p->presence_penalty))
        return qr_fail(err, "sampler: presence_penalty must be finite, got %g",
                       (double)p->presence_penalty);
    if (p->penalty_last_n < 0)
        return qr_fail(err, "sampler: penalty_last_n must be >= 0 (0 = penalties off), got %d",
                       (int)p->penalty_last_n);
    return QR_OK;
}

void qr_sampler_free(qr_sampler *s) {
    if (!s) return;
    free(s->bias);
    free(s->bias_tokens);
    free(s->bias_slot);
    free(s->ring);
    free(s->count);
    free(s->distinct);
    free(s->distinct_slot);
    free(s->work);
    free(s->cand);
    free(s->prob);
    free(s);
}

static bool sampler_alloc(qr_sampler *s) {
    size_t n = (size_t)s->n_vocab;
    s->bias = calloc(n, sizeof *s->bias);
    s->bias_tokens = malloc(n * sizeof *s->bias_tokens);
    s->bias_slot = malloc(n * sizeof *s->bias_slot);
    s->work = malloc(n * sizeof *s->work);
    s->cand = malloc(n * sizeof *s->cand);
    s->prob = malloc(n * sizeof *s->prob);
    bool ok = s->bias && s->bias_tokens && s->bias_slot && s->work && s->cand && s->prob;
    if (s->params.penalty_last_n > 0) {
        size_t w = (size_t)s->params.penalty_last_n;
        s->ring = malloc(w * sizeof *s->ring);
        s->count = calloc(n, sizeof *s->count);
        /* At most min(window, vocab) tokens are distinct at once. */
        s->distinct = malloc((w < n ? w : n) * sizeof *s->distinct);
        s->distinct_slot = malloc(n * sizeof *s->distinct_slot);
        ok = ok && s->ring && s->count && s->distinct && s->distinct_slot;
    }
    if (!ok) return false;
    for (size_t i = 0; i < n; i++) s->bias_slot[i] = -1;
    return true;
}

qr_sampler *qr_sampler_create(const qr_sampler_params *p, int32_t n_vocab, qr_error *err) {
    if (qr_sampler_params_validate(p, err) != QR_OK) return NULL;
    if (n_vocab <= 0) {
        qr_fail(err, "sampler: n_vocab must be > 0, got %d", (int)n_vocab);
        return NULL;
    }
    qr_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        qr_fail(err, "sampler: out of memory");
        return NULL;
    }
    s->params = *p;
    s->n_vocab = n_vocab;
    if (!sampler_alloc(s)) {
        qr_sampler_free(s);
        qr_fail(err, "sampler: out of memory allocating buffers for %d tokens", (int)n_vocab);
        return NULL;
    }
    qr_rng_init(&s->rng, p->seed);
    return s;
}

const qr_sampler_params *qr_sampler_get_params(const qr_sampler *s) { return &s->params; }
int32_t qr_sampler_n_vocab(const qr_sampler *s) { return s->n_vocab; }

/* ---- logit bias ---------------------------------------------------------------------- */

static void bias_remove(qr_sampler *s, int32_t token) {
    int32_t slot = s->bias_slot[token];
    if (slot < 0) return;
    int32_t last = s->bias_tokens[--s->n_bias];
    s->bias_tokens[slot] = last;
    s->bias_slot[last] = slot;
    s->bias_slot[token] = -1;
    s->bias[token] = 0.0f;
}

int qr_sampler_set_logit_bias(qr_sampler *s, int32_t token, float bias, qr_error *err) {
    if (token < 0 || token >= s->n_vocab)
        return qr_fail(err, "sampler: logit bias token %d is outside the vocabulary [0, %d)",
                       (int)token, (int)s->n_vocab);
    if (isnan(bias) || bias == INFINITY)
        return qr_fail(err, "sampler: logit bias of token %d must be finite or -inf, got %g",
                       (int)token, (double)bias);
    if (bias == 0.0f) {
        bias_remove(s, token);
        return QR_OK;
    }
    if (s->bias_slot[token] < 0) {
        s->bias_slot[token] = s->n_bias;
        s->bias_tokens[s->n_bias++] = token;
    }
    s->bias[token] = bias;
    return QR_OK;
}

void qr_sampler_clear_logit_bias(qr_sampler *s) {
    while (s->n_bias > 0) bias_remove(s, s->bias_tokens[s->n_bias - 1]);
}

/* ---- penalty window ------------------------------------------------------------------ */

static void window_add(qr_sampler *s, int32_t token) {
    if (s->count[token]++ == 0) {
        s->distinct_slot[token] = s->n_distinct;
        s->distinct[s->n_distinct++] = token;
    }
}

static void window_drop(qr_sampler *s, int32_t token) {
    if (--s->count[token] > 0) return;
    int32_t slot = s->distinct_slot[token];
    int32_t last = s->distinct[--s->n_distinct];
    s->distinct[slot] = last;
    s->distinct_slot[last] = slot;
}

int qr_sampler_accept(qr_sampler *s, int32_t token, qr_error *err) {
    if (token < 0 || token >= s->n_vocab)
        return qr_fail(err, "sampler: accepted token %d is outside the vocabulary [0, %d)",
                       (int)token, (int)s->n_vocab);
    int32_t cap = s->params.penalty_last_n;
    if (cap == 0) return QR_OK;
    if (s->ring_len == cap) {
        window_drop(s, s->ring[s->ring_head]);
        s->ring[s->ring_head] = token;
        s->ring_head = (s->ring_head + 1) % cap;
    } else {
        s->ring[(s->ring_head + s->ring_len) % cap] = token;
        s->ring_len++;
    }
    window_add(s, token);
    return QR_OK;
}

void qr_sampler_reset(qr_sampler *s) {
    while (s->ring_len > 0) {
        window_drop(s, s->ring[s->ring_head]);
        s->ring_head = (s->ring_head + 1) % s->params.penalty_last_n;
        s->ring_len--;
    }
    s->ring_head = 0;
    qr_rng_init(&s->rng, s->params.seed);
}

/* ---- logit transforms: bias, then penalties ------------------------------------------- */

static bool penalties_active(const qr_sampler_params *p) {
    return p->penalty_last_n > 0 &&
           (p->repeat_penalty != 1.0f || p->freq_penalty != 0.0f || p->presence_penalty != 0.0f);
}

void qr_sampler_transform_logits(const qr_sampler *s, const float *logits, float *out) {
    if (out != logits) memcpy(out, logits, (size_t)s->n_vocab * sizeof *out);
    for (int32_t i = 0; i < s->n_bias; i++) {
        int32_t t = s->bias_tokens[i];
        out[t] += s->bias[t];
    }
    const qr_sampler_params *p = &s->params;
    if (!penalties_active(p)) return;
    for (int32_t i = 0; i < s->n_distinct; i++) {
        int32_t t = s->distinct[i];
        int32_t c = s->count[t];
        /* Dividing a negative logit would make the token more likely, so those multiply. */
        if (out[t] <= 0.0f)
            out[t] *= p->repeat_penalty;
        else
            out[t] /= p->repeat_penalty;
        out[t] -= (float)c * p->freq_penalty + p->presence_penalty; /* c > 0 here */
    }
}

/* ---- truncation ---------------------------------------------------------------------- */

/* The candidate order every stage agrees on: higher logit first, lower id on a tie. */
static bool cand_better(const qr_candidate *a, const qr_candidate *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cand_cmp(const void *pa, const void *pb) {
    const qr_candidate *a = pa, *b = pb;
    return cand_better(a, b) ? -1 : cand_better(b, a) ? 1 : 0;
}

/* Sift down in a heap whose root is the WORST candidate (so it is the one evicted). */
static void heap_sift_down(qr_candidate *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && cand_better(&h[worst], &h[l])) worst = l;
        if (r < n && cand_better(&h[worst], &h[r])) worst = r;
        if (worst == i) return;
        qr_candidate t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

/* Moves the k best of c[0..n) to c[0..k), sorted best first. */
static int32_t top_k_select(qr_candidate *c, int32_t n, int32_t k) {
    for (int32_t i = k / 2 - 1; i >= 0; i--) heap_sift_down(c, k, i);
    for (int32_t i = k; i < n; i++) {
        if (cand_better(&c[i], &c[0])) {
            c[0] = c[i];
            heap_sift_down(c, k, 0);
        }
    }
    /* Heap sort: repeatedly move the worst to the end, leaving best first. */
    for (int32_t end = k - 1; end > 0; end--) {
        qr_candidate t = c[0];
        c[0] = c[end];
        c[end] = t;
        heap_sift_down(c, end, 0);
    }
    return k;
}

static float cand_max(const qr_candidate *c, int32_t n) {
    float m = c[0].logit;
    for (int32_t i = 1; i < n; i++)
        if (c[i].logit > m) m = c[i].logit;
    return m;
}

/* min-p keeps p_i >= min_p * p_max, i.e. logit_i >= max + log(min_p), as llama.cpp does. */
static int32_t min_p_filter(qr_candidate *c, int32_t n, float max_logit, float min_p) {
    const float floor_logit = max_logit + logf(min_p);
    int32_t kept = 0;
    for (int32_t i = 0; i < n; i++)
        if (c[i].logit >= floor_logit) c[kept++] = c[i];
    return kept;
}

/* Buckets of distance below the max logit, to order only what top-p can reach. */
#define TOP_P_BUCKETS 256
#define TOP_P_SPAN 32.0f /* logits further below the max share the last bucket */

static int32_t top_p_bucket(float logit, float max_logit) {
    const float b = (max_logit - logit) * ((float)TOP_P_BUCKETS / TOP_P_SPAN);
    return b < (float)(TOP_P_BUCKETS - 1) ? (int32_t)b : TOP_P_BUCKETS - 1;
}

/* Moves to the front, sorted, every candidate in the buckets that reach the top-p mass
 * (plus one bucket of slack for rounding) and returns how many. The bucket index never
 * decreases as the logit falls, so everything left behind is worse than the front. */
static int32_t top_p_front(qr_candidate *c, int32_t n, float max_logit, double target) {
    double mass[TOP_P_BUCKETS] = {0};
    for (int32_t i = 0; i < n; i++)
        mass[top_p_bucket(c[i].logit, max_logit)] += (double)expf(c[i].logit - max_logit);
    int32_t last = 0;
    double cum = 0.0;
    while (last < TOP_P_BUCKETS - 1 && (cum += mass[last]) < target) last++;
    if (last < TOP_P_BUCKETS - 1) last++;
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++) {
        if (top_p_bucket(c[i].logit, max_logit) > last) continue;
        qr_candidate t = c[m];
        c[m++] = c[i];
        c[i] = t;
    }
    qsort(c, (size_t)m, sizeof *c, cand_cmp);
    return m;
}

/* top-p keeps the shortest best-first prefix whose probability reaches top_p. z is the
 * softmax normaliser over the candidates top-p saw (before min-p). min-p and top-p both
 * keep a prefix of the same order, so filtering min-p first only saves sorting work.
 * Large unsorted inputs are ordered only as far as needed (llama.cpp buckets them too);
 * should rounding carry the walk past the ordered front, the rest is sorted then. */
static int32_t top_p_prefix(qr_candidate *c, int32_t n, bool sorted, float max_logit,
                            double z, float top_p) {
    const double target = (double)top_p * z;
    int32_t n_sorted = n;
    if (!sorted && n > 1024)
        n_sorted = top_p_front(c, n, max_logit, target);
    else if (!sorted)
        qsort(c, (size_t)n, sizeof *c, cand_cmp);
    double cum = 0.0;
    for (int32_t i = 0; i < n; i++) {
        if (i == n_sorted) {
            qsort(c + i, (size_t)(n - i), sizeof *c, cand_cmp);
            n_sorted = n;
        }
        cum += (double)expf(c[i].logit - max_logit);
        if (cum >= target) return i + 1;
    }
    return n;
}

static double softmax_normaliser(const qr_candidate *c, int32_t n, float max_logit) {
    double z = 0.0;
    for (int32_t i = 0; i < n; i++) z += (double)expf(c[i].logit - max_logit);
    return z;
}

/* top-k, then top-p and min-p; returns how many candidates survive (always >= 1). */
static int32_t truncate_candidates(const qr_sampler_params *p, qr_candidate *c, int32_t n) {
    bool sorted = false;
    if (p->top_k > 0 && p->top_k < n) {
        n = top_k_select(c, n, p->top_k);
        sorted = true;
    }
    const float max_logit = cand_max(c, n);
    double z = 0.0;
    if (p->top_p < 1.0f) z = softmax_normaliser(c, n, max_logit);
    if (p->min_p > 0.0f) n = min_p_filter(c, n, max_logit, p->min_p);
    if (p->top_p < 1.0f) n = top_p_prefix(c, n, sorted, max_logit, z, p->top_p);
    return n;
}

/* ---- sampling ------------------------------------------------------------------------ */

/* NaN or +inf anywhere means the softmax is undefined: report it rather than guess.
 * The scan is branch-free (NaN < inf is false) so that it vectorises; only a bad row
 * pays for finding the token to name. */
static int check_logits(const float *l, int32_t n, qr_error *err) {
    int bad = 0;
    for (int32_t i = 0; i < n; i++) bad |= !(l[i] < INFINITY);
    if (!bad) return QR_OK;
    for (int32_t i = 0; i < n; i++) {
        if (!(l[i] < INFINITY))
            return qr_fail(err, "sampler: logit of token %d is %s", (int)i,
                           isnan(l[i]) ? "NaN" : "+inf");
    }
    return QR_OK;
}

/* After the transforms only biased and windowed tokens can have turned bad (a -inf bias
 * on a +inf logit gives NaN; a tiny repeat penalty can overflow). */
static int check_transformed(const qr_sampler *s, qr_error *err) {
    for (int32_t i = 0; i < s->n_bias + s->n_distinct; i++) {
        int32_t t = i < s->n_bias ? s->bias_tokens[i] : s->distinct[i - s->n_bias];
        float v = s->work[t];
        if (!(v < INFINITY))
            return qr_fail(err, "sampler: logit of token %d is %s after logit bias and penalties",
                           (int)t, isnan(v) ? "NaN" : "+inf");
    }
    return QR_OK;
}

static int check_logits(const float *l, int32_t n, qr_error *err);

/* Greedy choice: the first index of the largest logit (-inf ones never win), with
 * check_logits' test in the same pass. Branch-free scans that vectorise: with a 262k
 * vocabulary a server draws dozens of rows per step. */
int32_t qr_sampler_greedy(const float *l, int32_t n, qr_error *err) {
    float m = -INFINITY;
    int bad = 0;
    for (int32_t i = 0; i < n; i++) {
        bad |= !(l[i] < INFINITY);
        m = l[i] > m ? l[i] : m;
    }
    if (bad) {
        check_logits(l, n, err); /* names the token */
        return -1;
    }
    if (m == -INFINITY) {
        qr_fail(err, "sampler: every logit is -inf, nothing can be sampled");
        return -1;
    }
    int32_t i = 0;
    while (l[i] != m) i++;
    return i;
}

/* Temperature, softmax and one draw over the survivors. */
static int32_t draw(qr_sampler *s, const qr_candidate *c, int32_t n) {
    const float t = s->params.temperature;
    const float max_logit = cand_max(c, n);
    double z = 0.0;
    /* (l - max) / t rather than l/t - max/t: a tiny t overflows l/t to inf, and inf - inf
     * is NaN, whereas a difference <= 0 over t only ever reaches -inf (probability 0). */
    for (int32_t i = 0; i < n; i++) {
        s->prob[i] = expf((c[i].logit - max_logit) / t);
        z += (double)s->prob[i];
    }
    const double target = qr_rng_uniform(&s->rng) * z;
    double cum = 0.0;
    int32_t last_nonzero = 0;
    for (int32_t i = 0; i < n; i++) {
        if (s->prob[i] == 0.0f) continue;
        cum += (double)s->prob[i];
        last_nonzero = i;
        if (cum > target) return c[i].id;
    }
    return c[last_nonzero].id; /* u * z rounded up to z: take the last possible token */
}

bool qr_sampler_is_greedy(const qr_sampler *s) {
    return s->params.temperature == 0.0f && s->n_bias == 0 && !penalties_active(&s->params);
}

int32_t qr_sampler_sample(qr_sampler *s, const float *logits, qr_error *err) {
    const int32_t n_vocab = s->n_vocab;
    if (qr_sampler_is_greedy(s)) return qr_sampler_greedy(logits, n_vocab, err); /* nothing to transform */
    if (check_logits(logits, n_vocab, err) != QR_OK) return -1;
    qr_sampler_transform_logits(s, logits, s->work);
    if (check_transformed(s, err) != QR_OK) return -1;

    if (s->params.temperature == 0.0f) return qr_sampler_greedy(s->work, n_vocab, err);

    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (s->work[i] == -INFINITY) continue;
        s->cand[n].id = i;
        s->cand[n].logit = s->work[i];
        n++;
    }
    if (n == 0) {
        qr_fail(err, "sampler: every logit is -inf, nothing can be sampled");
        return -1;
    }
    n = truncate_candidates(&s->params, s->cand, n);
    return draw(s, s->cand, n);
}
