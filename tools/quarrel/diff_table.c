/* Per-op error statistics of `quarrel diff` (see diff_table.h). */
#include "diff_table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

diff_sums diff_measure(const float *a, const float *b, int64_t n) {
    diff_sums s = {0, 0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            /* NaN != NaN, so compare the classes: both NaN, or the same infinity. */
            const bool same = (isnan(a[i]) && isnan(b[i])) || (isinf(a[i]) && a[i] == b[i]);
            s.n_bad += !same;
            continue;
        }
        const double d = (double)b[i] - (double)a[i];
        s.sq_diff += d * d;
        s.sq_ref += (double)a[i] * a[i];
        if (fabs(d) > s.max_abs) s.max_abs = fabs(d);
    }
    return s;
}

double diff_rel_l2(const diff_sums *s) {
    if (s->n_bad) return NAN;
    if (s->sq_diff == 0.0) return 0.0;
    if (s->sq_ref == 0.0) return INFINITY;
    return sqrt(s->sq_diff / s->sq_ref);
}

static void add_sums(diff_sums *to, const diff_sums *s) {
    to->sq_diff += s->sq_diff;
    to->sq_ref += s->sq_ref;
    to->n_bad += s->n_bad;
    if (s->max_abs > to->max_abs) to->max_abs = s->max_abs;
}

/* The entry of (layer, op), created on first sight: ops arrive in the same order every
 * step, so the search starts after the previous hit. */
static diff_op *entry(diff_table *t, int32_t layer, const char *op, int64_t cols) {
    for (int32_t k = 0; k < t->n_ops; k++) {
        diff_op *e = &t->ops[(t->hint + k) % t->n_ops];
        if (e->layer == layer && strcmp(e->op, op) == 0) {
            t->hint = (int32_t)(e - t->ops + 1) % t->n_ops;
            return e;
        }
    }
    if (t->n_ops == t->cap_ops) {
        const int32_t cap = t->cap_ops ? 2 * t->cap_ops : 64;
        diff_op *p = realloc(t->ops, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        t->ops = p;
        t->cap_ops = cap;
    }
    diff_op *e = &t->ops[t->n_ops++];
    memset(e, 0, sizeof *e);
    e->layer = layer;
    snprintf(e->op, sizeof e->op, "%s", op);
    e->cols = cols;
    t->hint = 0;
    return e;
}

/* The row with the largest relative error: where to look first. */
static int64_t worst_row(const float *a, const float *b, int64_t rows, int64_t cols) {
    int64_t best = 0;
    double best_rel = -1.0;
    for (int64_t r = 0; r < rows; r++) {
        const diff_sums s = diff_measure(a + r * cols, b + r * cols, cols);
        const double rel = diff_rel_l2(&s);
        if (!(rel <= best_rel)) { /* NaN ranks first */
            best = r;
            best_rel = isnan(rel) ? INFINITY : rel;
        }
        if (isnan(rel)) break;
    }
    return best;
}

static void note_first(diff_table *t, int32_t layer, const char *op, double rel, int64_t row) {
    if (t->first.set) return;
    t->first = (diff_first){.set = true, .step = t->step, .layer = layer, .pos = t->pos0 + (int32_t)row, .rel_l2 = rel};
    snprintf(t->first.op, sizeof t->first.op, "%s", op);
}

void diff_table_compare(diff_table *t, int32_t layer, const char *op, const float *a, const float *b,
                        int64_t rows, int64_t cols) {
    diff_op *e = entry(t, layer, op, cols);
    if (!e) {
        t->oom = true;
        return;
    }
    if (e->cols != cols) {
        diff_table_unmatched(t, 'b', layer, op, rows, cols, "width differs from earlier steps");
        return;
    }
    const diff_sums s = diff_measure(a, b, rows * cols);
    add_sums(&e->sum, &s);
    e->rows += rows;
    const double rel = diff_rel_l2(&s);
    if (rel <= t->tol) return;
    e->n_over++;
    if (!t->first.set) note_first(t, layer, op, rel, worst_row(a, b, rows, cols));
}

void diff_table_unmatched(diff_table *t, char side, int32_t layer, const char *op, int64_t rows, int64_t cols,
                          const char *why) {
    if (t->n_unmatched < DIFF_MAX_UNMATCHED) {
        diff_unmatched *u = &t->unmatched[t->n_unmatched];
        *u = (diff_unmatched){.side = side, .step = t->step, .layer = layer, .rows = rows, .cols = cols};
        snprintf(u->op, sizeof u->op, "%s", op);
        snprintf(u->why, sizeof u->why, "%s", why);
    }
    t->n_unmatched++;
}

void diff_table_free(diff_table *t) {
    free(t->ops);
    t->ops = NULL;
    t->n_ops = t->cap_ops = 0;
}
