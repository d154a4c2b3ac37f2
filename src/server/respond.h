/* Response bodies in OpenAI's shapes: a whole completion / chat completion, and the
 * chunks of a streamed one (each one server-sent event). */
#ifndef QS_RESPOND_H
#define QS_RESPOND_H

#include <stdbool.h>
#include <stddef.h>

#include "quarrel.h"
#include "server/job.h"
#include "server/request.h"

typedef struct qs_resp_meta {
    qs_kind kind;
    char id[48];        /* "cmpl-..." or "chatcmpl-..." */
    long long created;  /* Unix seconds */
    const char *model;
    const qr_model *m;  /* for token texts in logprobs */
    const qs_params *params;
} qs_resp_meta;

const char *qs_finish_name(qs_finish f);

/* The non-streamed body: every event's text, logprobs when asked, usage. malloc'd. */
char *qs_resp_full(const qs_resp_meta *meta, const qs_event *ev, size_t n_ev, qs_finish f, int32_t n_prompt,
                   int32_t n_cached);
/* One streamed chunk for events ev[0..n_ev) (text concatenated, their logprobs), the
 * assistant role when `role`, and finish_reason when finish is not QS_FINISH_NONE. */
char *qs_resp_chunk(const qs_resp_meta *meta, const qs_event *ev, size_t n_ev, bool role, qs_finish finish);
/* The final usage chunk (stream_options.include_usage): empty choices. */
char *qs_resp_usage_chunk(const qs_resp_meta *meta, int32_t n_prompt, int32_t n_completion, int32_t n_cached);

/* Tokens generated: events that carry a token. */
int32_t qs_count_tokens(const qs_event *ev, size_t n_ev);

#endif
