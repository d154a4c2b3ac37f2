/* Activation audit for `quarrel run`: per-op statistics written as JSON lines
 * (--dump-activations) and a stop at the first NaN/Inf (--check-numerics). */
#ifndef QR_TOOLS_RUN_AUDIT_H
#define QR_TOOLS_RUN_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct run_audit {
    FILE *dump;          /* NULL: no dump */
    bool check_numerics;
    int64_t step;        /* decode call index, set by the caller */
    char failure[256];   /* set when a non-finite value stopped the pass */
} run_audit;

/* The qr_activation_cb: user is a run_audit. */
int run_audit_observe(void *user, int32_t layer, const char *op, const float *data, int64_t n_rows,
                      int64_t n_cols);

/* One JSON line with the step's logit statistics: entropy (nats) of softmax(logits),
 * max logit, top-2 margin. */
void run_audit_logits(run_audit *a, const float *logits, int32_t n_vocab, int32_t token);

#endif
