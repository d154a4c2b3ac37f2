/* The statistics of `quarrel diff`: per (layer, op) the error of side b's output against
 * side a's, summed over every step, plus the ops seen on one side only and the first op of
 * the run whose error exceeded the tolerance.
 *
 * Errors: rel_l2 = ||b - a||_2 / ||a||_2 (0 when b == a, +inf when a is all zeros and b is
 * not, NaN when a non-finite value of one side differs from the other's), max_abs =
 * max |b - a|. An op exceeds the tolerance when its rel_l2 in some step is not <= tol (so
 * NaN exceeds). */
#ifndef QR_TOOLS_DIFF_TABLE_H
#define QR_TOOLS_DIFF_TABLE_H

#include <stdbool.h>
#include <stdint.h>

#define DIFF_OP_NAME 32
#define DIFF_MAX_UNMATCHED 64 /* listed; more are only counted */

/* The error sums of n pairs: non-finite pairs count as equal when both sides hold the
 * same value (NaN and NaN, +inf and +inf), else as bad. */
typedef struct diff_sums {
    double sq_diff, sq_ref, max_abs;
    int64_t n_bad;
} diff_sums;

typedef struct diff_op {
    int32_t layer;             /* -1: embd, result_norm, logits */
    char op[DIFF_OP_NAME];
    int64_t rows, cols;        /* rows summed over the steps */
    diff_sums sum;             /* over every step */
    int32_t n_over;            /* steps whose rel_l2 exceeded the tolerance */
} diff_op;

typedef struct diff_unmatched {
    char side;                 /* 'a' or 'b': the side that had the op */
    int64_t step;
    int32_t layer;
    char op[DIFF_OP_NAME];
    int64_t rows, cols;
    char why[64];
} diff_unmatched;

/* The first op (in run order) over the tolerance: rel_l2 over its step, pos the position
 * of its worst row. */
typedef struct diff_first {
    bool set;
    int64_t step;
    int32_t layer, pos;
    char op[DIFF_OP_NAME];
    double rel_l2;
} diff_first;

typedef struct diff_table {
    double tol;
    int64_t step;              /* set by the caller before each step */
    int32_t pos0;              /* position of the step's row 0 (every row wants logits) */
    diff_op *ops;
    int32_t n_ops, cap_ops, hint;
    diff_unmatched unmatched[DIFF_MAX_UNMATCHED];
    int32_t n_unmatched;       /* all of them, listed or not */
    diff_first first;
    bool oom;
} diff_table;

diff_sums diff_measure(const float *a, const float *b, int64_t n);
/* rel_l2 of the sums (see the top of this file). */
double diff_rel_l2(const diff_sums *s);

/* Compares one op's outputs (rows x cols each) and adds them to its entry. */
void diff_table_compare(diff_table *t, int32_t layer, const char *op, const float *a, const float *b,
                        int64_t rows, int64_t cols);
/* Records an op that one side had and the other did not (or had with another shape). */
void diff_table_unmatched(diff_table *t, char side, int32_t layer, const char *op, int64_t rows, int64_t cols,
                          const char *why);
void diff_table_free(diff_table *t);

#endif
