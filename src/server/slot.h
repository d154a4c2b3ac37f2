/* A sequence slot of the scheduler: the job it runs (or none) and the tokens whose keys
 * and values its KV sequence holds, which later requests may reuse as a prompt prefix. */
#ifndef QS_SLOT_H
#define QS_SLOT_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "server/job.h"
#include "server/text_out.h"

typedef struct qs_slot {
    int32_t seq;            /* the engine's sequence id */
    qs_job *job;            /* NULL: idle; its cached tokens still serve as prefixes */
    qr_token *cache;        /* tokens held in the KV sequence, in position order */
    int32_t n_cache, cap_cache;
    int32_t n_prompt_done;  /* prompt tokens in the KV (prefill progress) */
    bool decoding;          /* prompt done: feeds `next` each step */
    qr_token next;
    qr_sampler *smp;
    qs_text_out text;
    int32_t n_gen;
    double t_last;          /* when its last token came (inter-token latency) */
    uint64_t last_used;     /* for evicting the least recently used cache */
    int32_t n_rows;         /* rows in the batch being built */
    int32_t logit_row;      /* its row with logits in that batch, or -1 */
    qr_token sampled;       /* the token drawn from those logits (-1: sample_err says why) */
    qr_error sample_err;
} qs_slot;

/* Common prefix of the slot's cached tokens and toks[0..n). */
int32_t qs_slot_common_prefix(const qs_slot *s, const qr_token *toks, int32_t n);
/* Appends tokens to the cache record; -1 on out of memory. */
int qs_slot_cache_push(qs_slot *s, const qr_token *toks, int32_t n);

#endif
