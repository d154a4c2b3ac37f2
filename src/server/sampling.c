#include "server/sampling.h"

#include <math.h>

qr_sampler *qs_sampler_create(const qr_model *m, const qs_params *p, uint64_t seed, qr_error *err) {
    const int32_t n_vocab = qr_model_n_vocab(m);
    qr_sampler_params sp = qr_sampler_params_default();
    sp.temperature = p->temperature;
    sp.top_k = p->top_k;
    sp.top_p = p->top_p;
    sp.min_p = p->min_p;
    sp.presence_penalty = p->presence_penalty;
    sp.freq_penalty = p->frequency_penalty;
    sp.seed = p->has_seed ? p->seed : seed;
    qr_sampler *s = qr_sampler_create(&sp, n_vocab, err);
    for (int32_t t = 0; s && p->ignore_eos && t < n_vocab; t++) {
        if (qr_model_is_eog(m, t)) qr_sampler_set_logit_bias(s, t, -INFINITY, NULL);
    }
    for (int32_t i = 0; s && i < p->n_bias; i++) {
        if (qr_sampler_set_logit_bias(s, p->bias[i].token, p->bias[i].bias, err) != QR_OK) {
            qr_sampler_free(s);
            return NULL;
        }
    }
    return s;
}

void qs_logprobs(const qr_sampler *s, const float *logits, int32_t n_vocab, qr_token t, int32_t n_top,
                 float *scratch, qs_event *ev) {
    qr_sampler_transform_logits(s, logits, scratch);
    float mx = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) mx = scratch[i] > mx ? scratch[i] : mx;
    double z = 0;
    for (int32_t i = 0; i < n_vocab; i++) z += exp((double)scratch[i] - mx);
    const float lse = mx + (float)log(z);
    ev->logprob = scratch[t] - lse;
    /* Top n by insertion into a short sorted list (n <= 20). */
    ev->n_top = 0;
    for (int32_t i = 0; i < n_vocab && n_top > 0; i++) {
        const float lp = scratch[i] - lse;
        if (ev->n_top == n_top && lp <= ev->top[n_top - 1].logprob) continue;
        int32_t k = ev->n_top < n_top ? ev->n_top++ : n_top - 1;
        while (k > 0 && ev->top[k - 1].logprob < lp) {
            ev->top[k] = ev->top[k - 1];
            k--;
        }
        ev->top[k] = (qs_top){i, lp};
    }
}
