#include "tokenizer/merge_queue.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/error.h"

static bool before(const qr_merge *a, const qr_merge *b) {
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

int qr_merge_queue_push(qr_merge_queue *q, qr_merge m) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        qr_merge *v = realloc(q->v, cap * sizeof *v);
        if (!v) return QR_ERR;
        q->v = v;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&m, &q->v[parent])) break;
        q->v[i] = q->v[parent];
        i = parent;
    }
    q->v[i] = m;
    return QR_OK;
}

qr_merge qr_merge_queue_pop(qr_merge_queue *q) {
    qr_merge top = q->v[0];
    qr_merge last = q->v[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && before(&q->v[c + 1], &q->v[c])) c++;
        if (!before(&q->v[c], &last)) break;
        q->v[i] = q->v[c];
        i = c;
    }
    if (q->n > 0) q->v[i] = last;
    return top;
}

void qr_merge_queue_free(qr_merge_queue *q) {
    free(q->v);
    q->v = NULL;
    q->n = q->cap = 0;
}
