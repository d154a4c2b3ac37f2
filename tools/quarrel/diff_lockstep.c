/* Lock-step decoding of two contexts for `quarrel diff` (see diff_lockstep.h). */
#include "diff_lockstep.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* The per-layer ops in forward order (include/quarrel.h, qr_activation_cb). */
static const char *const LAYER_OPS[] = {"attn_norm", "q",       "k",       "v",       "attn", "attn_out",
                                        "ffn_inp",   "ffn_norm", "ffn_act", "ffn_out", "l_out"};
#define N_LAYER_OPS ((int64_t)(sizeof LAYER_OPS / sizeof LAYER_OPS[0]))

typedef struct posted {
    int32_t layer;
    const char *op;
    const float *data;
    int64_t rows, cols;
} posted;

typedef struct lockstep {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool a_posted, a_done; /* a's op waits in `a`; a's decode has returned */
    posted a;
    diff_table *t;
    int32_t n_layer;
    qr_ctx *ca;
    const qr_batch *batch;
    int a_rc;
    char a_err[512];
} lockstep;

/* The op's place in the forward pass; -1 for a name outside the list. */
static int64_t rank(int32_t n_layer, int32_t layer, const char *op) {
    const int64_t end = 1 + (int64_t)n_layer * N_LAYER_OPS;
    if (layer < 0) {
        if (strcmp(op, "embd") == 0) return 0;
        if (strcmp(op, "result_norm") == 0) return end;
        if (strcmp(op, "logits") == 0) return end + 1;
        return -1;
    }
    for (int64_t k = 0; k < N_LAYER_OPS; k++) {
        if (strcmp(op, LAYER_OPS[k]) == 0) return 1 + (int64_t)layer * N_LAYER_OPS + k;
    }
    return -1;
}

/* Side a (worker thread): publish the op, then wait until b has taken it. */
static int a_observe(void *user, int32_t layer, const char *op, const float *data, int64_t rows, int64_t cols) {
    lockstep *ls = user;
    pthread_mutex_lock(&ls->mu);
    ls->a = (posted){layer, op, data, rows, cols};
    ls->a_posted = true;
    pthread_cond_broadcast(&ls->cv);
    while (ls->a_posted) pthread_cond_wait(&ls->cv, &ls->mu);
    pthread_mutex_unlock(&ls->mu);
    return 0;
}

/* With mu held: until a has an op waiting or has finished. */
static void wait_a(lockstep *ls) {
    while (!ls->a_posted && !ls->a_done) pthread_cond_wait(&ls->cv, &ls->mu);
}

static void release_a(lockstep *ls) {
    ls->a_posted = false;
    pthread_cond_broadcast(&ls->cv);
}

static void unmatched_a(lockstep *ls, const char *why) {
    diff_table_unmatched(ls->t, 'a', ls->a.layer, ls->a.op, ls->a.rows, ls->a.cols, why);
    release_a(ls);
}

static void compare(lockstep *ls, const posted *b) {
    const posted *a = &ls->a;
    if (a->rows != b->rows || a->cols != b->cols) {
        char why[64];
        snprintf(why, sizeof why, "shape differs: a has %lld x %lld", (long long)a->rows, (long long)a->cols);
        diff_table_unmatched(ls->t, 'b', b->layer, b->op, b->rows, b->cols, why);
        return;
    }
    diff_table_compare(ls->t, b->layer, b->op, a->data, b->data, b->rows, b->cols);
}

/* Side b (caller's thread): meet a at the same op, or record whichever is unmatched. */
static int b_observe(void *user, int32_t layer, const char *op, const float *data, int64_t rows, int64_t cols) {
    lockstep *ls = user;
    const posted b = {layer, op, data, rows, cols};
    pthread_mutex_lock(&ls->mu);
    for (;;) {
        wait_a(ls);
        if (!ls->a_posted) {
            diff_table_unmatched(ls->t, 'b', layer, op, rows, cols, "side a has no such op");
            break;
        }
        if (ls->a.layer == layer && strcmp(ls->a.op, op) == 0) {
            compare(ls, &b);
            release_a(ls);
            wait_a(ls); /* a runs to its next op while b waits: one side computes at a time */
            break;
        }
        if (rank(ls->n_layer, ls->a.layer, ls->a.op) >= rank(ls->n_layer, layer, op)) {
            diff_table_unmatched(ls->t, 'b', layer, op, rows, cols, "side a has no such op");
            break;
        }
        unmatched_a(ls, "side b has no such op");
    }
    pthread_mutex_unlock(&ls->mu);
    return 0;
}

static void *a_main(void *user) {
    lockstep *ls = user;
    ls->a_rc = qr_decode(ls->ca, ls->batch, ls->a_err, sizeof ls->a_err);
    pthread_mutex_lock(&ls->mu);
    ls->a_done = true;
    pthread_cond_broadcast(&ls->cv);
    pthread_mutex_unlock(&ls->mu);
    return NULL;
}

/* After b's decode: whatever a still produces has no partner. */
static void drain_a(lockstep *ls) {
    pthread_mutex_lock(&ls->mu);
    for (;;) {
        wait_a(ls);
        if (!ls->a_posted) break;
        unmatched_a(ls, "side b has no such op");
    }
    pthread_mutex_unlock(&ls->mu);
}

int diff_lockstep_decode(qr_ctx *ca, qr_ctx *cb, int32_t n_layer, const qr_batch *b, diff_table *t, char *err,
                         size_t err_size) {
    lockstep ls = {.t = t, .n_layer = n_layer, .ca = ca, .batch = b};
    pthread_mutex_init(&ls.mu, NULL);
    pthread_cond_init(&ls.cv, NULL);
    qr_ctx_set_activation_callback(ca, a_observe, &ls);
    qr_ctx_set_activation_callback(cb, b_observe, &ls);
    pthread_t th;
    int rc = 0;
    if (pthread_create(&th, NULL, a_main, &ls) != 0) {
        snprintf(err, err_size, "cannot start a thread for side a");
        rc = -1;
    } else {
        char b_err[512];
        const int b_rc = qr_decode(cb, b, b_err, sizeof b_err);
        drain_a(&ls);
        pthread_join(th, NULL);
        if (ls.a_rc != 0) snprintf(err, err_size, "side a: %s", ls.a_err), rc = -1;
        else if (b_rc != 0) snprintf(err, err_size, "side b: %s", b_err), rc = -1;
    }
    qr_ctx_set_activation_callback(ca, NULL, NULL);
    qr_ctx_set_activation_callback(cb, NULL, NULL);
    pthread_cond_destroy(&ls.cv);
    pthread_mutex_destroy(&ls.mu);
    return rc;
}
