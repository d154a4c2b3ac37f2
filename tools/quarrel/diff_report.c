/* Text and JSON reports of `quarrel diff` (see diff_report.h). */
#include "diff_report.h"

#include <math.h>
#include <string.h>

int32_t diff_n_ops_over(const diff_result *r) {
    int32_t n = 0;
    for (int32_t i = 0; i < r->table.n_ops; i++) n += r->table.ops[i].n_over > 0;
    return n;
}

int32_t diff_n_pos_over(const diff_result *r) {
    int32_t n = 0;
    for (int32_t i = 0; i < r->n_pos; i++) n += !(r->pos[i].rel_l2 <= r->tol);
    return n;
}

static int32_t n_top1_agree(const diff_result *r) {
    int32_t n = 0;
    for (int32_t i = 0; i < r->n_pos; i++) n += r->pos[i].top_a == r->pos[i].top_b;
    return n;
}

static const char *device_name(qr_device d) { return d == QR_DEVICE_CUDA ? "cuda" : "cpu"; }

/* ---- Text ------------------------------------------------------------------------------------- */

static void side_text(FILE *f, char name, const diff_side *s) {
    fprintf(f, "%c = %s", name, device_name(s->device));
    if (s->kernels) fprintf(f, " (kernels %s)", s->kernels);
    if (s->kv_f32) fprintf(f, " (F32 KV cache)");
    if (s->threads) fprintf(f, " (%d thread%s)", s->threads, s->threads == 1 ? "" : "s");
}

static void layer_text(FILE *f, int32_t layer) {
    if (layer < 0) fprintf(f, "%5s", "-");
    else fprintf(f, "%5d", layer);
}

static void ops_text(FILE *f, const diff_result *r) {
    const diff_table *t = &r->table;
    fprintf(f, "%5s  %-12s %16s %11s %11s\n", "layer", "op", "rows x cols", "rel_l2", "max_abs");
    for (int32_t i = 0; i < t->n_ops; i++) {
        const diff_op *e = &t->ops[i];
        char shape[40];
        snprintf(shape, sizeof shape, "%lld x %lld", (long long)e->rows, (long long)e->cols);
        layer_text(f, e->layer);
        fprintf(f, "  %-12s %16s %11.3e %11.3e", e->op, shape, diff_rel_l2(&e->sum), e->sum.max_abs);
        const bool first = t->first.set && t->first.layer == e->layer && strcmp(t->first.op, e->op) == 0;
        if (first) fprintf(f, "  * first over tolerance: step %lld (%.3e), worst at position %d",
                           (long long)t->first.step, t->first.rel_l2, t->first.pos);
        else if (e->n_over) fprintf(f, "  *");
        fputc('\n', f);
    }
}

static void unmatched_text(FILE *f, const diff_table *t) {
    if (!t->n_unmatched) return;
    fprintf(f, "\nunmatched ops (%d, on one side only or with another shape):\n", t->n_unmatched);
    const int32_t n = t->n_unmatched < DIFF_MAX_UNMATCHED ? t->n_unmatched : DIFF_MAX_UNMATCHED;
    for (int32_t i = 0; i < n; i++) {
        const diff_unmatched *u = &t->unmatched[i];
        fprintf(f, "  step %lld, side %c: layer %d %s (%lld x %lld): %s\n", (long long)u->step, u->side, u->layer,
                u->op, (long long)u->rows, (long long)u->cols, u->why);
    }
    if (t->n_unmatched > n) fprintf(f, "  ... and %d more\n", t->n_unmatched - n);
}

static void positions_text(FILE *f, const diff_result *r) {
    fprintf(f, "\nfinal logits %9s %11s %11s %8s %8s\n", "position", "rel_l2", "max_abs", "top-1 a", "top-1 b");
    for (int32_t i = 0; i < r->n_pos; i++) {
        const diff_pos *p = &r->pos[i];
        fprintf(f, "%12s %9d %11.3e %11.3e %8d %8d%s%s\n", p->generated ? "(generated)" : "", p->pos, p->rel_l2,
                p->max_abs, p->top_a, p->top_b, p->top_a != p->top_b ? "  top-1 differs" : "",
                p->rel_l2 <= r->tol ? "" : "  *");
    }
    fprintf(f, "top-1 agreement: %d/%d positions\n", n_top1_agree(r), r->n_pos);
}

void diff_report_text(FILE *f, const diff_result *r) {
    fprintf(f, "quarrel diff: ");
    side_text(f, 'a', &r->a);
    fprintf(f, ", ");
    side_text(f, 'b', &r->b);
    fprintf(f, "\nmodel %s: %d prompt tokens, %d generated; tolerance %.3g (relative L2 per op and step)\n\n",
            r->model, r->n_prompt, r->n_gen, r->tol);
    ops_text(f, r);
    unmatched_text(f, &r->table);
    positions_text(f, r);
    const int32_t n_ops = diff_n_ops_over(r), n_pos = diff_n_pos_over(r);
    const diff_first *fo = &r->table.first;
    if (!n_ops && !n_pos) fprintf(f, "result: every op and position within %.3g\n", r->tol);
    else if (fo->set)
        fprintf(f, "result: %d ops and %d positions over %.3g; first: layer %d op %s (step %lld: %.3e, worst at position %d)\n",
                n_ops, n_pos, r->tol, fo->layer, fo->op, (long long)fo->step, fo->rel_l2, fo->pos);
    else fprintf(f, "result: %d positions over %.3g\n", n_pos, r->tol);
}

/* ---- JSON -------------------------------------------------------------------------------------- */

/* JSON has no NaN or infinity: those print as null. */
static void num(FILE *f, const char *key, double v) {
    if (isfinite(v)) fprintf(f, "\"%s\":%.9g", key, v);
    else fprintf(f, "\"%s\":null", key);
}

static void side_json(FILE *f, const char *key, const diff_side *s) {
    fprintf(f, "\"%s\":{\"device\":\"%s\",\"kernels\":", key, device_name(s->device));
    if (s->kernels) fprintf(f, "\"%s\"", s->kernels);
    else fprintf(f, "null");
    fprintf(f, ",\"kv_f32\":%s,\"threads\":%d}", s->kv_f32 ? "true" : "false", s->threads);
}

/* The model path with JSON's escapes. */
static void string_json(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void ops_json(FILE *f, const diff_table *t) {
    fprintf(f, "\"ops\":[");
    for (int32_t i = 0; i < t->n_ops; i++) {
        const diff_op *e = &t->ops[i];
        fprintf(f, "%s\n{\"layer\":%d,\"op\":\"%s\",\"rows\":%lld,\"cols\":%lld,", i ? "," : "", e->layer, e->op,
                (long long)e->rows, (long long)e->cols);
        num(f, "rel_l2", diff_rel_l2(&e->sum));
        fputc(',', f);
        num(f, "max_abs", e->sum.max_abs);
        fprintf(f, ",\"steps_over\":%d}", e->n_over);
    }
    fprintf(f, "],\n\"unmatched\":[");
    const int32_t n = t->n_unmatched < DIFF_MAX_UNMATCHED ? t->n_unmatched : DIFF_MAX_UNMATCHED;
    for (int32_t i = 0; i < n; i++) {
        const diff_unmatched *u = &t->unmatched[i];
        fprintf(f, "%s\n{\"side\":\"%c\",\"step\":%lld,\"layer\":%d,\"op\":\"%s\",\"rows\":%lld,\"cols\":%lld,\"why\":\"%s\"}",
                i ? "," : "", u->side, (long long)u->step, u->layer, u->op, (long long)u->rows, (long long)u->cols,
                u->why);
    }
    fprintf(f, "],\n\"n_unmatched\":%d,\n\"first_over\":", t->n_unmatched);
    if (!t->first.set) {
        fprintf(f, "null");
        return;
    }
    fprintf(f, "{\"step\":%lld,\"position\":%d,\"layer\":%d,\"op\":\"%s\",", (long long)t->first.step, t->first.pos,
            t->first.layer, t->first.op);
    num(f, "rel_l2", t->first.rel_l2);
    fputc('}', f);
}

static void positions_json(FILE *f, const diff_result *r) {
    fprintf(f, "\"logits\":[");
    for (int32_t i = 0; i < r->n_pos; i++) {
        const diff_pos *p = &r->pos[i];
        fprintf(f, "%s\n{\"position\":%d,\"generated\":%s,", i ? "," : "", p->pos, p->generated ? "true" : "false");
        num(f, "rel_l2", p->rel_l2);
        fputc(',', f);
        num(f, "max_abs", p->max_abs);
        fprintf(f, ",\"top1_a\":%d,\"top1_b\":%d}", p->top_a, p->top_b);
    }
    fprintf(f, "]");
}

void diff_report_json(FILE *f, const diff_result *r) {
    fprintf(f, "{\"model\":");
    string_json(f, r->model);
    fputc(',', f);
    side_json(f, "a", &r->a);
    fputc(',', f);
    side_json(f, "b", &r->b);
    fputc(',', f);
    num(f, "tol", r->tol);
    fprintf(f, ",\"n_prompt\":%d,\"n_generated\":%d,\n", r->n_prompt, r->n_gen);
    ops_json(f, &r->table);
    fprintf(f, ",\n");
    positions_json(f, r);
    const int32_t n_ops = diff_n_ops_over(r), n_pos = diff_n_pos_over(r);
    fprintf(f, ",\n\"top1_agree\":%d,\"ops_over\":%d,\"positions_over\":%d,\"ok\":%s}\n", n_top1_agree(r), n_ops,
            n_pos, n_ops || n_pos ? "false" : "true");
}
