#include "server/queue.h"

#include <stdlib.h>
#include <string.h>

int qs_queue_init(qs_queue *q, int32_t cap) {
    memset(q, 0, sizeof *q);
    q->items = calloc((size_t)(cap > 0 ? cap : 1), sizeof *q->items);
    q->cap = cap;
    return q->items ? 0 : -1;
}

void qs_queue_free(qs_queue *q) {
    free(q->items);
    q->items = NULL;
    q->n = 0;
}

static bool runs_before(const qs_queue_item *a, const qs_queue_item *b) {
    return a->priority != b->priority ? a->priority > b->priority : a->arrival < b->arrival;
}

bool qs_queue_push(qs_queue *q, qs_job *job) {
    if (q->n >= q->cap) return false;
    qs_queue_item it = {job, job->params.priority, q->next_arrival++};
    int32_t i = q->n;
    while (i > 0 && runs_before(&it, &q->items[i - 1])) {
        q->items[i] = q->items[i - 1];
        i--;
    }
    q->items[i] = it;
    q->n++;
    return true;
}

static qs_job *remove_at(qs_queue *q, int32_t i) {
    qs_job *j = q->items[i].job;
    memmove(&q->items[i], &q->items[i + 1], (size_t)(q->n - i - 1) * sizeof *q->items);
    q->n--;
    return j;
}

qs_job *qs_queue_pop(qs_queue *q) { return q->n > 0 ? remove_at(q, 0) : NULL; }

qs_job *qs_queue_take_cancelled(qs_queue *q) {
    for (int32_t i = 0; i < q->n; i++) {
        if (atomic_load(&q->items[i].job->cancel)) return remove_at(q, i);
    }
    return NULL;
}
