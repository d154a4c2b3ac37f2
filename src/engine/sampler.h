/* The sampler chain: turns one row of logits into one token id.
 *
 * The stages run in llama.cpp's default order (common/sampling.cpp, with DRY, XTC,
 * typical-p and top-n-sigma left out because they are off by default there):
 *
 *     logit bias -> penalties -> top-k -> top-p -> min-p -> temperature -> draw
 *
 * temperature 0 means greedy: the highest transformed logit wins, the lowest id on a tie.
 * docs/sampler.md states each stage's exact semantics.
 *
 * A sampler owns its random state (seeded from params.seed, nothing global), its
 * penalty window and its logit biases; every buffer is allocated by qr_sampler_create,
 * so sampling allocates nothing. One sampler serves one sequence and is not thread-safe. */
#ifndef QR_ENGINE_SAMPLER_H
#define QR_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

#define QR_SAMPLER_DEFAULT_SEED 0u

typedef struct qr_sampler_params {
    float temperature;      /* >= 0; 0 = greedy */
    int32_t top_k;          /* <= 0 = disabled */
    float top_p;            /* in (0, 1]; 1 = disabled */
    float min_p;            /* in [0, 1]; 0 = disabled */
    float repeat_penalty;   /* > 0; 1 = disabled */
    float freq_penalty;     /* finite; 0 = disabled */
    float presence_penalty; /* finite; 0 = disabled */
    int32_t penalty_last_n; /* >= 0 tokens in the penalty window; 0 = penalties off */
    uint64_t seed;
} qr_sampler_params;

typedef struct qr_sampler qr_sampler;

/* llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties
 * off (repeat 1, freq 0, presence 0) over a 64-token window; seed QR_SAMPLER_DEFAULT_SEED
 * (fixed, so that runs are reproducible unless the caller picks another seed). */
qr_sampler_params qr_sampler_params_default(void);

/* QR_OK, or QR_ERR with a message naming the first invalid parameter. */
int qr_sampler_params_validate(const qr_sampler_params *p, qr_error *err);

/* NULL on invalid parameters, n_vocab <= 0 or out of memory (err says which). */
qr_sampler *qr_sampler_create(const qr_sampler_params *p, int32_t n_vocab, qr_error *err);
void qr_sampler_free(qr_sampler *s);

const qr_sampler_params *qr_sampler_get_params(const qr_sampler *s);
int32_t qr_sampler_n_vocab(const qr_sampler *s);

/* Sets (replaces) the additive bias of one token. bias must be finite or -inf (-inf bans
 * the token); NaN and +inf are rejected. A bias of 0 removes the entry. */
int qr_sampler_set_logit_bias(qr_sampler *s, int32_t token, float bias, qr_error *err);
void qr_sampler_clear_logit_bias(qr_sampler *s);

/* Draws one token from logits[n_vocab] (not modified). Returns the token id, or -1 with
 * err filled when a logit is NaN or +inf (before or after bias and penalties) or when
 * every logit is -inf. With temperature > 0 exactly one random number is consumed per
 * call, so the random stream does not depend on how many candidates survive. The token is
 * not added to the penalty window: call qr_sampler_accept for that. */
int32_t qr_sampler_sample(qr_sampler *s, const float *logits, qr_error *err);

/* The greedy choice alone: the first index of the largest of l[0..n) (-inf never wins);
 * -1 with err filled when a value is NaN or +inf or every value is -inf. */
int32_t qr_sampler_greedy(const float *l, int32_t n, qr_error *err);
/* Whether qr_sampler_sample is qr_sampler_greedy here: temperature 0, no logit bias, no
 * penalties. Such a sampler needs only the row's argmax (QR_OUTPUT_ARGMAX). */
bool qr_sampler_is_greedy(const qr_sampler *s);

/* Pushes a token into the penalty window (the oldest falls out once penalty_last_n are
 * held). To match llama.cpp, accept the prompt tokens as well as the generated ones. */
int qr_sampler_accept(qr_sampler *s, int32_t token, qr_error *err);

/* Empties the penalty window and restarts the random stream from params.seed; logit
 * biases are configuration and stay. */
void qr_sampler_reset(qr_sampler *s);

/* The logit-transform stages alone (bias, then penalties) from logits into out, both
 * n_vocab long (they may be the same array). Tokens that are neither biased nor in the
 * window are copied bit for bit. Exposed for tests and for callers that report logprobs. */
void qr_sampler_transform_logits(const qr_sampler *s, const float *logits, float *out);

#endif
