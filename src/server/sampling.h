/* Per-request sampling on top of the engine's sampler chain (src/engine/sampler.h):
 * OpenAI's parameters mapped onto it, logit_bias, and log-probabilities of the chosen
 * token and its top alternatives (log-softmax of the logits after bias and penalties,
 * before temperature, as OpenAI reports them). */
#ifndef QS_SAMPLING_H
#define QS_SAMPLING_H

#include "engine/sampler.h"
#include "server/job.h"

/* NULL with err set on invalid parameters. seed is used when the request gave none;
 * ignore_eos bans the model's end-of-generation tokens (as llama-server does). */
qr_sampler *qs_sampler_create(const qr_model *m, const qs_params *p, uint64_t seed, qr_error *err);

/* Fills ev->logprob and ev->top[0..n_top) for token t. scratch holds n_vocab floats. */
void qs_logprobs(const qr_sampler *s, const float *logits, int32_t n_vocab, qr_token t, int32_t n_top,
                 float *scratch, qs_event *ev);

#endif
