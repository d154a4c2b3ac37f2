/* The bounded request queue: jobs waiting for a free sequence slot, ordered by priority
 * (higher first), then arrival. Not locked: the scheduler's mutex guards it. */
#ifndef QS_QUEUE_H
#define QS_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "server/job.h"

typedef struct qs_queue_item {
    qs_job *job;
    int32_t priority;
    uint64_t arrival; /* submission counter: earlier first within a priority */
} qs_queue_item;

typedef struct qs_queue {
    qs_queue_item *items; /* sorted: items[0] runs next */
    int32_t n, cap;
    uint64_t next_arrival;
} qs_queue;

int qs_queue_init(qs_queue *q, int32_t cap);
void qs_queue_free(qs_queue *q);
/* false when full (the caller answers 503). */
bool qs_queue_push(qs_queue *q, qs_job *job);
/* The next job, or NULL when empty. */
qs_job *qs_queue_pop(qs_queue *q);
/* Removes and returns a cancelled job (NULL when none), so a client that left while
 * waiting never reaches a slot. */
qs_job *qs_queue_take_cancelled(qs_queue *q);

#endif
