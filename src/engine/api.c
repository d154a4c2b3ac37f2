/* The public API (include/quarrel.h) over the internal modules: model, KV cache,
 * forward pass, sampler. */
#include "quarrel.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/log.h"
#include "core/threadpool.h"
#include "engine/forward.h"
#include "engine/kv_cache.h"
#include "engine/sampler.h"
#include "model/model.h"
#ifdef QUARREL_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_forward.h"
#endif

_Static_assert(QR_FWD_WANT_ARGMAX == QR_OUTPUT_ARGMAX, "forward.h and quarrel.h name the same output kind");

/* qr_ctx.argmax of a row whose greedy token the host finds in its logits. */
#define ARGMAX_ON_HOST INT32_MIN

struct qr_ctx {
    qr_model *m;
    qr_backend *be;
    qr_kv_cache *kv;
    qr_forward *fwd;
    qr_device device;
    bool batch_invariant;
#ifdef QUARREL_HAVE_CUDA
    qr_cuda_forward *cfwd; /* device QR_DEVICE_CUDA: the forward pass on the GPU */
#endif
    uint32_t n_cpu_layers; /* -ngl on CUDA: fwd runs layers 0 .. n_cpu_layers-1, cfwd the rest */
    float *hidden;         /* the split pass's hand-over: n_batch x n_embd */
    int32_t *saved_len;    /* the split pass's KV rollback: n_batch */
    int32_t n_ctx, n_batch, n_threads;
    float *logits;         /* rows that asked, in row order */
    size_t logits_cap;     /* floats */
    int32_t *logit_row;    /* row of the last batch -> index into logits, or -1 */
    int8_t *row_out;       /* row of the last batch -> its QR_OUTPUT_* */
    int32_t *argmax;       /* index into logits -> the GPU's greedy token (QR_OUTPUT_ARGMAX
                              rows on the GPU; ARGMAX_ON_HOST elsewhere) */
    int32_t n_rows_last;
    int32_t last_logit_row;
    size_t row_cap;
};

struct qr_sampling {
    qr_sampler *s;
};

static void set_err(char *err, size_t n, const qr_error *e) {
    if (err && n > 0) snprintf(err, n, "%s", e->msg);
}

/* ---- Model ------------------------------------------------------------------------------- */

qr_model *qr_model_load(const char *path, char *err, size_t err_size) {
    qr_error e = {{0}};
    qr_model *m = NULL;
    if (!path) {
        qr_fail(&e, "model path is NULL");
    } else if (qr_model_open(path, &m, &e) == QR_OK) {
        return m;
    }
    set_err(err, err_size, &e);
    return NULL;
}

void qr_model_free(qr_model *m) { qr_model_close(m); }
const char *qr_model_arch(const qr_model *m) { return m->desc.arch->name; }
int32_t qr_model_n_vocab(const qr_model *m) { return (int32_t)m->desc.hp.n_vocab; }
int32_t qr_model_n_ctx_train(const qr_model *m) { return (int32_t)m->desc.hp.n_ctx; }
int32_t qr_model_n_embd(const qr_model *m) { return (int32_t)m->desc.hp.n_embd; }
int32_t qr_model_n_layer(const qr_model *m) { return (int32_t)m->desc.hp.n_layer; }
qr_token qr_model_bos(const qr_model *m) { return qr_tokenizer_bos(m->tok); }
qr_token qr_model_eos(const qr_model *m) { return qr_tokenizer_eos(m->tok); }
bool qr_model_add_bos(const qr_model *m) { return qr_tokenizer_add_bos(m->tok); }
bool qr_model_is_eog(const qr_model *m, qr_token t) { return qr_tokenizer_is_eog(m->tok, t); }

int32_t qr_model_tokenize(const qr_model *m, const char *text, size_t len, bool add_special,
                          bool parse_special, qr_token *out, int32_t cap, char *err, size_t err_size) {
    qr_error e = {{0}};
    int32_t *ids = NULL;
    size_t n = 0;
    if (qr_tokenize(m->tok, text, len, add_special, parse_special, &ids, &n, &e) != QR_OK) {
        set_err(err, err_size, &e);
        return -1;
    }
    if (n > INT32_MAX) {
        free(ids);
        qr_fail(&e, "text yields too many tokens");
        set_err(err, err_size, &e);
        return -1;
    }
    for (size_t i = 0; i < n && (int64_t)i < cap; i++) out[i] = ids[i];
    free(ids);
    return (int32_t)n;
}

int32_t qr_model_token_to_piece(const qr_model *m, qr_token t, bool special, char *buf, int32_t cap) {
    size_t len = 0;
    const char *p = qr_token_to_piece(m->tok, t, special, &len);
    if (buf && cap > 0) memcpy(buf, p, len < (size_t)cap ? len : (size_t)cap);
    return (int32_t)len;
}

/* ---- Context -------------------------------------------------------------------------------- */

qr_ctx_params qr_ctx_default_params(void) {
    qr_ctx_params p = {.n_ctx = 0, .n_batch = 512, .n_seq_max = 1, .n_threads = 0, .kv_f32 = false,
                       .batch_invariant = false, .device = QR_DEVICE_AUTO, .n_gpu_layers = -1};
    return p;
}

/* AUTO picks CUDA when the library has it and a device is present. */
static int resolve_device(qr_ctx_params *p, qr_error *e) {
    if (p->device < QR_DEVICE_AUTO || p->device > QR_DEVICE_CUDA) return qr_fail(e, "device %d is unknown", (int)p->device);
#ifdef QUARREL_HAVE_CUDA
    int n = 0;
    if (p->device != QR_DEVICE_CPU && qr_cuda_device_count(&n, e) != QR_OK) return QR_ERR;
    if (p->device == QR_DEVICE_AUTO) p->device = n > 0 ? QR_DEVICE_CUDA : QR_DEVICE_CPU;
    if (p->device == QR_DEVICE_CUDA && n == 0) return qr_fail(e, "device cuda: no CUDA device found");
#else
    if (p->device == QR_DEVICE_CUDA) return qr_fail(e, "device cuda: this build has no CUDA backend");
    p->device = QR_DEVICE_CPU;
#endif
    return QR_OK;
}

static int check_ctx_params(const qr_model *m, const qr_ctx_params *p, qr_ctx_params *out, qr_error *e) {
    *out = *p;
    if (p->n_ctx < 0) return qr_fail(e, "n_ctx must be >= 0 (got %d)", p->n_ctx);
    if (p->n_batch < 1) return qr_fail(e, "n_batch must be >= 1 (got %d)", p->n_batch);
    if (p->n_seq_max < 1) return qr_fail(e, "n_seq_max must be >= 1 (got %d)", p->n_seq_max);
    if (p->n_threads < 0 || p->n_threads > 1024) return qr_fail(e, "n_threads must be in 0..1024 (got %d)", p->n_threads);
    if (p->n_gpu_layers < -1) {
        return qr_fail(e, "n_gpu_layers must be -1 (all) or >= 0 (got %d)", p->n_gpu_layers);
    }
    if (out->n_ctx == 0) {
        const int32_t train = (int32_t)m->desc.hp.n_ctx;
        out->n_ctx = train < 4096 ? train : 4096;
    }
    if (out->n_batch > out->n_ctx) out->n_batch = out->n_ctx;
    if (out->n_threads == 0) out->n_threads = qr_threadpool_default_threads();
    return resolve_device(out, e);
}

/* -ngl: the layers the CPU runs before the GPU takes over; 0 when the GPU runs them all
 * (n_gpu_layers -1 or >= the layer count, llama.cpp's meaning) or there is no GPU. */
static uint32_t split_point(const qr_model *m, const qr_ctx_params *p) {
    const uint32_t n_layer = m->desc.hp.n_layer;
    if (p->device != QR_DEVICE_CUDA || p->n_gpu_layers < 0 || (uint32_t)p->n_gpu_layers >= n_layer) return 0;
    return n_layer - (uint32_t)p->n_gpu_layers;
}

#ifdef QUARREL_HAVE_CUDA
static int alloc_split(qr_ctx *c, qr_error *e) {
    c->hidden = malloc((size_t)c->n_batch * (size_t)c->m->desc.hp.n_embd * sizeof(float));
    c->saved_len = malloc((size_t)c->n_batch * sizeof *c->saved_len);
    if (!c->hidden || !c->saved_len) return qr_fail(e, "out of memory for the CPU/GPU hand-over buffers");
    QR_LOG_INFO("api", "-ngl: layers 0..%u and the embedding on the CPU, %u layers and the output on the GPU",
                c->n_cpu_layers - 1, c->m->desc.hp.n_layer - c->n_cpu_layers);
    return QR_OK;
}
#endif

qr_ctx *qr_ctx_create(qr_model *m, const qr_ctx_params *p, char *err, size_t err_size) {
    qr_error e = {{0}};
    qr_ctx_params cp;
    qr_ctx *c = NULL;
    if (!m || !p) {
        qr_fail(&e, "qr_ctx_create: model and params must not be NULL");
        goto fail;
    }
    if (check_ctx_params(m, p, &cp, &e) != QR_OK) goto fail;
    c = calloc(1, sizeof *c);
    if (!c) {
        qr_fail(&e, "out of memory");
        goto fail;
    }
    c->m = m;
    c->n_ctx = cp.n_ctx;
    c->n_batch = cp.n_batch;
    c->n_threads = cp.n_threads;
    c->last_logit_row = -1;
    c->n_cpu_layers = split_point(m, &cp);
    /* On CUDA the GPU layers' cells live on the device only. */
    const int32_t n_dev_layers = cp.device == QR_DEVICE_CUDA ? (int32_t)(m->desc.hp.n_layer - c->n_cpu_layers) : 0;
    qr_kv_params kp = {.n_ctx = cp.n_ctx, .n_seq_max = cp.n_seq_max, .max_batch = cp.n_batch, .f32 = cp.kv_f32,
                       .n_device_layers = n_dev_layers};
    c->device = cp.device;
    c->batch_invariant = cp.batch_invariant;
    if (qr_kv_create(&m->desc, &kp, &c->kv, &e) != QR_OK) goto fail;
#ifdef QUARREL_HAVE_CUDA
    if (cp.device == QR_DEVICE_CUDA) {
        if (qr_cuda_forward_create(m, c->kv, cp.n_batch, cp.n_ctx, c->n_cpu_layers, &c->cfwd, &e) != QR_OK) goto fail;
        if (c->n_cpu_layers == 0) return c;
        if (alloc_split(c, &e) != QR_OK) goto fail; /* and the CPU's layers below */
    }
#endif
    if (qr_backend_cpu_create(cp.n_threads, &c->be, &e) != QR_OK) goto fail;
    c->be->batch_invariant = cp.batch_invariant;
    if (qr_forward_create(m, c->be, cp.n_batch, cp.n_ctx, &c->fwd, &e) != QR_OK) goto fail;
    return c;
fail:
    qr_ctx_free(c);
    set_err(err, err_size, &e);
    return NULL;
}

static void free_logits(qr_ctx *c) {
#ifdef QUARREL_HAVE_CUDA
    if (c->device == QR_DEVICE_CUDA) {
        qr_cuda_host_free(c->logits);
        c->logits = NULL;
        return;
    }
#endif
    free(c->logits);
    c->logits = NULL;
}

void qr_ctx_free(qr_ctx *c) {
    if (!c) return;
    qr_forward_free(c->fwd);
#ifdef QUARREL_HAVE_CUDA
    qr_cuda_forward_free(c->cfwd);
#endif
    qr_kv_free(c->kv);
    qr_backend_destroy(c->be);
    free(c->hidden);
    free(c->saved_len);
    free_logits(c);
    free(c->logit_row);
    free(c->row_out);
    free(c->argmax);
    free(c);
}

int32_t qr_ctx_n_ctx(const qr_ctx *c) { return c->n_ctx; }
int32_t qr_ctx_n_threads(const qr_ctx *c) { return c->n_threads; }
qr_device qr_ctx_device(const qr_ctx *c) { return c->device; }
int32_t qr_ctx_n_gpu_layers(const qr_ctx *c) {
    return c->device == QR_DEVICE_CUDA ? (int32_t)(c->m->desc.hp.n_layer - c->n_cpu_layers) : 0;
}
int32_t qr_ctx_seq_len(const qr_ctx *c, int32_t seq_id) { return qr_kv_seq_len(c->kv, seq_id); }

int qr_ctx_seq_truncate(qr_ctx *c, int32_t seq_id, int32_t pos, char *err, size_t err_size) {
    qr_error e = {{0}};
    if (qr_kv_seq_truncate(c->kv, seq_id, pos, &e) != QR_OK) {
        set_err(err, err_size, &e);
        return -1;
    }
    return 0;
}

int qr_ctx_seq_copy(qr_ctx *c, int32_t src, int32_t dst, int32_t n, char *err, size_t err_size) {
    qr_error e = {{0}};
    int rc = qr_kv_seq_copy(c->kv, src, dst, n, &e);
#ifdef QUARREL_HAVE_CUDA
    /* The sliding-window cells just copied live on the device: queue their copies now so
     * that a failure is reported here, not at the next decode. */
    if (rc == QR_OK && c->cfwd) rc = qr_cuda_forward_sync_kv(c->cfwd, &e);
#endif
    if (rc != QR_OK) {
        set_err(err, err_size, &e);
        return -1;
    }
    return 0;
}

qr_kv_stats qr_ctx_kv_stats(const qr_ctx *c) {
    qr_kv_stats st = {qr_kv_page_size(c->kv), qr_kv_n_pages(c->kv), qr_kv_n_free_pages(c->kv),
                      qr_kv_n_shared_pages(c->kv)};
    return st;
}

void qr_ctx_set_activation_callback(qr_ctx *c, qr_activation_cb cb, void *user) {
#ifdef QUARREL_HAVE_CUDA
    if (c->cfwd) qr_cuda_forward_set_observer(c->cfwd, cb, user);
#endif
    if (c->fwd) qr_forward_set_observer(c->fwd, cb, user); /* the CPU layers, split or not */
}

/* ---- Decode ------------------------------------------------------------------------------------ */

typedef struct rows {
    int32_t *pos, *seq;
    int8_t *want;
} rows;

/* Fills in defaults (positions continuing each sequence, sequence 0, last-row logits)
 * and sizes the logits buffer. */
static int prepare_rows(qr_ctx *c, const qr_batch *b, rows *r, int32_t *n_want, qr_error *e) {
    const int32_t n = b->n_tokens;
    r->pos = malloc((size_t)n * sizeof *r->pos);
    r->seq = malloc((size_t)n * sizeof *r->seq);
    r->want = malloc((size_t)n);
    if (!r->pos || !r->seq || !r->want) return qr_fail(e, "out of memory");
    const int32_t n_seq = qr_kv_n_seq_max(c->kv);
    *n_want = 0;
    for (int32_t i = 0; i < n; i++) {
        r->seq[i] = b->seq_id ? b->seq_id[i] : 0;
        if (r->seq[i] < 0 || r->seq[i] >= n_seq) {
            return qr_fail(e, "batch row %d: sequence id %d is out of range [0, %d)", i, r->seq[i], n_seq);
        }
        if (b->pos) {
            r->pos[i] = b->pos[i];
        } else {
            int32_t p = qr_kv_seq_len(c->kv, r->seq[i]);
            for (int32_t j = 0; j < i; j++) p += r->seq[j] == r->seq[i];
            r->pos[i] = p;
        }
        const int8_t out = b->logits ? b->logits[i] : (int8_t)(i == n - 1);
        r->want[i] = out == QR_OUTPUT_ARGMAX ? QR_OUTPUT_ARGMAX : (int8_t)(out != 0);
        *n_want += r->want[i] != 0;
    }
    return QR_OK;
}

static int size_outputs(qr_ctx *c, int32_t n_rows, int32_t n_want, qr_error *e) {
    const size_t need = (size_t)n_want * (size_t)c->m->desc.hp.n_vocab;
    if (need > c->logits_cap) {
        free_logits(c);
        c->logits_cap = 0;
#ifdef QUARREL_HAVE_CUDA
        /* Page-locked on the GPU: the logits' download is then one bus-speed copy. */
        if (c->device == QR_DEVICE_CUDA) {
            if (qr_cuda_host_alloc((void **)&c->logits, need * sizeof(float), e) != QR_OK) return QR_ERR;
        } else
#endif
            c->logits = malloc(need * sizeof(float));
        c->logits_cap = c->logits ? need : 0;
        if (!c->logits) return qr_fail(e, "out of memory for %d rows of logits", n_want);
    }
    if ((size_t)n_rows > c->row_cap) {
        free(c->logit_row);
        free(c->row_out);
        free(c->argmax);
        c->logit_row = malloc((size_t)n_rows * sizeof *c->logit_row);
        c->row_out = malloc((size_t)n_rows);
        c->argmax = malloc((size_t)n_rows * sizeof *c->argmax);
        c->row_cap = c->logit_row && c->row_out && c->argmax ? (size_t)n_rows : 0;
        if (!c->row_cap) return qr_fail(e, "out of memory");
    }
    return QR_OK;
}

#ifdef QUARREL_HAVE_CUDA
/* -ngl: the CPU runs the embedding and its layers, the GPU the rest and the output. The
 * rows enter the KV cache once for both halves; a failure in either drops them again. */
static int forward_split(qr_ctx *c, const qr_fwd_batch *fb, float *out, int32_t *argmax, qr_error *e) {
    if (qr_forward_check_batch(c->m, c->n_batch, fb, e) != QR_OK) return QR_ERR;
    if (qr_forward_append_rows(c->kv, fb, c->saved_len, e) != QR_OK) return QR_ERR;
    if (qr_forward_run_first(c->fwd, c->kv, fb, c->n_cpu_layers, c->hidden, e) == QR_OK &&
        qr_cuda_forward_run_last(c->cfwd, c->kv, fb, c->hidden, c->batch_invariant, out, argmax, e) == QR_OK) {
        return QR_OK;
    }
    for (int32_t r = fb->n_rows - 1; r >= 0; r--) qr_kv_seq_truncate(c->kv, fb->seq[r], c->saved_len[r], NULL);
    return QR_ERR;
}
#endif

/* out: the logits of the step's rows that want an output; argmax: their greedy tokens,
 * which only the GPU fills (for its QR_OUTPUT_ARGMAX rows). */
static int forward_run(qr_ctx *c, const qr_fwd_batch *fb, float *out, int32_t *argmax, qr_error *e) {
#ifdef QUARREL_HAVE_CUDA
    if (c->cfwd && c->fwd) return forward_split(c, fb, out, argmax, e);
    if (c->cfwd) return qr_cuda_forward_run(c->cfwd, c->kv, fb, c->batch_invariant, out, argmax, e);
#endif
    (void)argmax;
    return qr_forward_run(c->fwd, c->kv, fb, out, e);
}

static int run_steps(qr_ctx *c, const qr_batch *b, const rows *r, qr_error *e) {
    const int64_t n_vocab = c->m->desc.hp.n_vocab;
    int32_t out_i = 0;
    for (int32_t i0 = 0; i0 < b->n_tokens; i0 += c->n_batch) {
        const int32_t n = b->n_tokens - i0 < c->n_batch ? b->n_tokens - i0 : c->n_batch;
        qr_fwd_batch fb = {n, b->tokens + i0, r->pos + i0, r->seq + i0, r->want + i0};
        /* No logits buffer exists when no row of the batch asks for logits. */
        float *out = c->logits ? c->logits + (size_t)out_i * n_vocab : NULL;
        for (int32_t i = out_i; i < out_i + n; i++) c->argmax[i] = ARGMAX_ON_HOST;
        if (forward_run(c, &fb, out, c->argmax + out_i, e) != QR_OK) {
            return qr_fail_prefix(e, "decoding rows %d..%d: ", i0, i0 + n - 1);
        }
        for (int32_t i = i0; i < i0 + n; i++) {
            c->row_out[i] = r->want[i];
            c->logit_row[i] = r->want[i] ? out_i++ : -1;
            if (r->want[i]) c->last_logit_row = i;
        }
    }
    return QR_OK;
}

int qr_decode(qr_ctx *c, const qr_batch *b, char *err, size_t err_size) {
    qr_error e = {{0}};
    rows r = {0};
    int32_t n_want = 0;
    int rc = QR_ERR;
    c->n_rows_last = 0;
    c->last_logit_row = -1;
    if (!b || b->n_tokens < 1 || !b->tokens) {
        qr_fail(&e, "batch is empty");
    } else if (prepare_rows(c, b, &r, &n_want, &e) == QR_OK && size_outputs(c, b->n_tokens, n_want, &e) == QR_OK) {
        for (int32_t i = 0; i < b->n_tokens; i++) c->logit_row[i] = -1;
        c->n_rows_last = b->n_tokens;
        rc = run_steps(c, b, &r, &e);
    }
    free(r.pos);
    free(r.seq);
    free(r.want);
    if (rc != QR_OK) {
        c->last_logit_row = -1;
        set_err(err, err_size, &e);
        return -1;
    }
    return 0;
}

const float *qr_get_logits(const qr_ctx *c, int32_t i) {
    if (i == -1) i = c->last_logit_row;
    if (i < 0 || i >= c->n_rows_last || c->logit_row[i] < 0 || c->row_out[i] == QR_OUTPUT_ARGMAX) return NULL;
    return c->logits + (size_t)c->logit_row[i] * c->m->desc.hp.n_vocab;
}

qr_token qr_get_argmax(const qr_ctx *c, int32_t i, char *err, size_t err_size) {
    qr_error e = {{0}};
    if (i == -1) i = c->last_logit_row;
    qr_token t = -1;
    if (i < 0 || i >= c->n_rows_last || c->logit_row[i] < 0) {
        qr_fail(&e, "row %d of the last batch asked for no output", i);
    } else if (c->argmax[c->logit_row[i]] == ARGMAX_ON_HOST) {
        /* The logits are here (also for the CPU's QR_OUTPUT_ARGMAX rows). */
        t = qr_sampler_greedy(c->logits + (size_t)c->logit_row[i] * c->m->desc.hp.n_vocab, c->m->desc.hp.n_vocab, &e);
    } else {
        t = c->argmax[c->logit_row[i]];
        if (t == -1) qr_fail(&e, "sampler: every logit is -inf, nothing can be sampled");
        if (t < -1) {
            qr_fail(&e, "sampler: logit of token %d is NaN or +inf", -2 - t);
            t = -1;
        }
    }
    if (t < 0) set_err(err, err_size, &e);
    return t;
}

/* ---- Sampling ---------------------------------------------------------------------------------- */

qr_sampling_params qr_sampling_default_params(void) {
    qr_sampler_params d = qr_sampler_params_default();
    qr_sampling_params p = {d.temperature, d.top_k, d.top_p, d.min_p, d.repeat_penalty,
                            d.freq_penalty, d.presence_penalty, d.penalty_last_n, d.seed};
    return p;
}

qr_sampling *qr_sampling_create(const qr_model *m, const qr_sampling_params *p, char *err,
                                size_t err_size) {
    qr_error e = {{0}};
    qr_sampler_params sp = {p->temperature, p->top_k, p->top_p, p->min_p, p->repeat_penalty,
                            p->freq_penalty, p->presence_penalty, p->penalty_last_n, p->seed};
    qr_sampling *s = calloc(1, sizeof *s);
    if (!s) {
        qr_fail(&e, "out of memory");
    } else if ((s->s = qr_sampler_create(&sp, (int32_t)m->desc.hp.n_vocab, &e)) != NULL) {
        return s;
    }
    free(s);
    set_err(err, err_size, &e);
    return NULL;
}

void qr_sampling_free(qr_sampling *s) {
    if (!s) return;
    qr_sampler_free(s->s);
    free(s);
}

qr_token qr_sampling_sample(qr_sampling *s, const qr_ctx *c, int32_t i, char *err, size_t err_size) {
    qr_error e = {{0}};
    const float *logits = qr_get_logits(c, i);
    if (!logits) {
        qr_fail(&e, "row %d of the last batch has no logits", i);
        set_err(err, err_size, &e);
        return -1;
    }
    qr_token t = qr_sampler_sample(s->s, logits, &e);
    if (t < 0) set_err(err, err_size, &e);
    return t;
}

void qr_sampling_accept(qr_sampling *s, qr_token t) { qr_sampler_accept(s->s, t, NULL); }
void qr_sampling_reset(qr_sampling *s) { qr_sampler_reset(s->s); }
