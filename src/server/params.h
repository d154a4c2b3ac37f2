/* A generation request's parameters, as parsed from the JSON body (request.c) and read by
 * the scheduler (sampling, stop strings, limits). */
#ifndef QS_PARAMS_H
#define QS_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "quarrel.h"

#define QS_MAX_STOP 4       /* OpenAI allows up to 4 stop sequences */
#define QS_MAX_TOP_LOGPROBS 20

typedef struct qs_bias {
    qr_token token;
    float bias;
} qs_bias;

typedef struct qs_params {
    int32_t max_tokens;  /* > 0 */
    float temperature, top_p, min_p, presence_penalty, frequency_penalty;
    int32_t top_k;
    uint64_t seed;
    bool has_seed;
    char *stop[QS_MAX_STOP];
    int32_t n_stop;
    qs_bias *bias;
    int32_t n_bias;
    bool logprobs;       /* report the chosen token's log-probability */
    int32_t top_logprobs; /* 0 .. QS_MAX_TOP_LOGPROBS alternatives per token */
    bool stream, include_usage;
    bool ignore_eos;     /* llama-server's extension: end-of-generation tokens banned */
    int32_t priority;    /* higher runs first; default 0 */
} qs_params;

void qs_params_free(qs_params *p);

#endif
