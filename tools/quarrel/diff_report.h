/* The report of `quarrel diff`: a table for people or one JSON object (--json). */
#ifndef QR_TOOLS_DIFF_REPORT_H
#define QR_TOOLS_DIFF_REPORT_H

#include <stdio.h>

#include "diff_table.h"
#include "quarrel.h"

/* How one side's context is made. */
typedef struct diff_side {
    qr_device device;      /* QR_DEVICE_CPU or QR_DEVICE_CUDA */
    const char *kernels;   /* QUARREL_CPU_KERNELS for this side's context; NULL = as the environment */
    bool kv_f32;
    int32_t threads;       /* 0 = all CPUs */
} diff_side;

/* The final logits of one position on both sides. */
typedef struct diff_pos {
    int32_t pos;
    bool generated;        /* a greedy token rather than a prompt token */
    double rel_l2, max_abs;
    int32_t top_a, top_b;  /* argmax, lowest id on ties */
} diff_pos;

typedef struct diff_result {
    const char *model;
    double tol;
    diff_side a, b;
    int32_t n_prompt, n_gen;
    diff_table table;
    diff_pos *pos;
    int32_t n_pos;
} diff_result;

/* Ops (steps) and positions over the tolerance; 0 means the sides agree. */
int32_t diff_n_ops_over(const diff_result *r);
int32_t diff_n_pos_over(const diff_result *r);

void diff_report_text(FILE *f, const diff_result *r);
void diff_report_json(FILE *f, const diff_result *r);

#endif
