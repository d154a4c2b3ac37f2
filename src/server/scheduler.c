#include "server/scheduler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/threadpool.h"
#include "core/timer.h"
#include "server/queue.h"
#include "server/sampling.h"
#include "server/slot.h"

struct qs_scheduler {
    pthread_mutex_t mu; /* guards queue and stop */
    pthread_cond_t cv;
    qs_queue queue;
    bool stop;
    pthread_t thread;
    qr_model *m;
    qr_ctx *ctx;
    qs_metrics *metrics;
    int32_t n_slots, n_batch, n_ctx, n_vocab, page_size;
    qs_slot *slots;
    /* The batch being built. */
    qr_token *b_tok;
    int32_t *b_pos, *b_seq;
    int8_t *b_logits;
    int32_t n_rows;
    float *scratch; /* n_vocab floats for log-probabilities */
    uint64_t tick;
    qr_threadpool *pool; /* draws the step's tokens, one slot per index */
};

/* ---- Finishing and freeing ----------------------------------------------------------------- */

static void push_text(qs_slot *sl, const char *text, size_t len, const qs_event *info) {
    if (qs_job_push(sl->job, text, len, info) != 0) QR_LOG_WARN("server", "out of memory queueing text");
}

/* Ends the slot's job; the slot keeps its KV (a cache for later prefixes) unless drop. */
static void finish_slot(qs_scheduler *s, qs_slot *sl, qs_finish reason, const char *error, bool drop) {
    if (reason == QS_FINISH_LENGTH || reason == QS_FINISH_ERROR) {
        const char *rest;
        size_t n;
        qs_text_out_flush(&sl->text, &rest, &n);
        if (n > 0) {
            qs_event ev = {.token = -1};
            push_text(sl, rest, n, &ev);
        }
    }
    qs_job_finish(sl->job, reason, error);
    qs_job_release(sl->job);
    sl->job = NULL;
    qr_sampler_free(sl->smp);
    sl->smp = NULL;
    sl->decoding = false;
    sl->last_used = ++s->tick;
    if (drop) {
        /* A cancelled sequence gives its pages back at once. */
        qr_ctx_seq_truncate(s->ctx, sl->seq, 0, NULL, 0);
        sl->n_cache = 0;
    }
}

static void drop_cancelled(qs_scheduler *s) {
    for (int32_t i = 0; i < s->n_slots; i++) {
        qs_slot *sl = &s->slots[i];
        if (sl->job && atomic_load(&sl->job->cancel)) {
            finish_slot(s, sl, QS_FINISH_CANCELLED, NULL, true);
            qs_metrics_cancelled(s->metrics);
        }
    }
}

/* ---- Admission with prefix reuse ------------------------------------------------------------- */

static qs_slot *pick_free_slot(qs_scheduler *s, const qs_job *j) {
    qs_slot *best = NULL;
    int32_t best_cp = -1;
    for (int32_t i = 0; i < s->n_slots; i++) {
        qs_slot *sl = &s->slots[i];
        if (sl->job) continue;
        const int32_t cp = qs_slot_common_prefix(sl, j->prompt, j->n_prompt - 1);
        if (cp > best_cp || (cp == best_cp && sl->last_used < best->last_used)) {
            best = sl;
            best_cp = cp;
        }
    }
    return best;
}

/* Makes dst's KV hold the longest cached prefix of the prompt (never the whole prompt:
 * its last token must run to give logits); returns the positions reused. */
static int32_t reuse_prefix(qs_scheduler *s, qs_slot *dst, const qs_job *j) {
    const int32_t limit = j->n_prompt - 1;
    qs_slot *src = dst;
    int32_t best = qs_slot_common_prefix(dst, j->prompt, limit);
    const int32_t own = best;
    for (int32_t i = 0; i < s->n_slots; i++) {
        const int32_t cp = qs_slot_common_prefix(&s->slots[i], j->prompt, limit);
        if (cp > best) {
            best = cp;
            src = &s->slots[i];
        }
    }
    if (src != dst) {
        char err[256];
        if (qr_ctx_seq_copy(s->ctx, src->seq, dst->seq, best, err, sizeof err) == 0) {
            dst->n_cache = 0;
            qs_slot_cache_push(dst, src->cache, best);
            return best;
        }
        QR_LOG_DEBUG("server", "prefix copy from sequence %d refused: %s", src->seq, err);
        dst->n_cache = 0; /* seq_copy emptied dst */
        return 0;
    }
    if (qr_ctx_seq_truncate(s->ctx, dst->seq, own, NULL, 0) != 0) {
        qr_ctx_seq_truncate(s->ctx, dst->seq, 0, NULL, 0);
        dst->n_cache = 0;
        return 0;
    }
    dst->n_cache = own;
    return own;
}

static uint64_t mix_seed(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void admit(qs_scheduler *s, qs_job *j) {
    qs_slot *sl = pick_free_slot(s, j);
    qr_error e = {{0}};
    const uint64_t seed = mix_seed(j->id ^ (uint64_t)(qr_time_now_s() * 1e9));
    sl->smp = qs_sampler_create(s->m, &j->params, seed, &e);
    if (!sl->smp) {
        qs_job_finish(j, QS_FINISH_ERROR, e.msg);
        qs_job_release(j);
        return;
    }
    for (int32_t i = 0; i < j->n_prompt; i++) qr_sampler_accept(sl->smp, j->prompt[i], NULL);
    sl->job = j;
    sl->n_gen = 0;
    sl->decoding = false;
    qs_text_out_reset(&sl->text);
    sl->n_prompt_done = reuse_prefix(s, sl, j);
    j->n_cached = sl->n_prompt_done;
    qs_metrics_admit(s->metrics, j->n_prompt, sl->n_prompt_done);
}

/* Takes queued jobs while slots are free; answers cancelled ones. Returns false on stop. */
static bool take_work(qs_scheduler *s) {
    qs_job *admitted[256];
    int32_t n_admit = 0, n_free = 0, n_busy = 0;
    for (int32_t i = 0; i < s->n_slots; i++) {
        n_free += s->slots[i].job == NULL;
    }
    n_busy = s->n_slots - n_free;
    pthread_mutex_lock(&s->mu);
    while (!s->stop && n_busy == 0 && s->queue.n == 0) pthread_cond_wait(&s->cv, &s->mu);
    const bool stop = s->stop;
    qs_job *gone;
    while ((gone = qs_queue_take_cancelled(&s->queue)) != NULL) {
        qs_metrics_cancelled(s->metrics);
        qs_job_finish(gone, QS_FINISH_CANCELLED, NULL);
        qs_job_release(gone);
    }
    while (!stop && n_free > 0 && n_admit < 256 && s->queue.n > 0) {
        admitted[n_admit++] = qs_queue_pop(&s->queue);
        n_free--;
    }
    pthread_mutex_unlock(&s->mu);
    for (int32_t i = 0; i < n_admit; i++) admit(s, admitted[i]);
    return !stop;
}

/* ---- Building the batch -------------------------------------------------------------------- */

/* A row that samples asks for its logits, or only for its greedy token when that is all
 * the slot's sampler reads (no logprobs): on the GPU that saves downloading a whole row of
 * logits per stream and step. */
static void add_row(qs_scheduler *s, qs_slot *sl, qr_token t, int32_t pos, bool logits) {
    const int32_t r = s->n_rows++;
    s->b_tok[r] = t;
    s->b_pos[r] = pos;
    s->b_seq[r] = sl->seq;
    const bool argmax_only = qr_sampler_is_greedy(sl->smp) && !sl->job->params.logprobs;
    s->b_logits[r] = (int8_t)(!logits ? QR_OUTPUT_NONE : argmax_only ? QR_OUTPUT_ARGMAX : QR_OUTPUT_LOGITS);
    sl->n_rows++;
    if (logits) sl->logit_row = r;
}

/* Oldest job first, so an earlier prompt finishes its prefill before a later one. */
static qs_slot *next_prefill(qs_scheduler *s, const qs_slot *after) {
    qs_slot *best = NULL;
    for (int32_t i = 0; i < s->n_slots; i++) {
        qs_slot *sl = &s->slots[i];
        if (!sl->job || sl->decoding || sl->n_rows > 0) continue;
        if (after && sl->job->id <= after->job->id) continue;
        if (!best || sl->job->id < best->job->id) best = sl;
    }
    return best;
}

static void build_batch(qs_scheduler *s, bool with_prefill) {
    s->n_rows = 0;
    for (int32_t i = 0; i < s->n_slots; i++) {
        s->slots[i].n_rows = 0;
        s->slots[i].logit_row = -1;
    }
    for (int32_t i = 0; i < s->n_slots; i++) {
        qs_slot *sl = &s->slots[i];
        if (sl->job && sl->decoding && s->n_rows < s->n_batch) add_row(s, sl, sl->next, sl->n_cache, true);
    }
    for (qs_slot *sl = NULL; with_prefill && s->n_rows < s->n_batch;) {
        sl = next_prefill(s, sl);
        if (!sl) break;
        const qs_job *j = sl->job;
        const int32_t room = s->n_batch - s->n_rows;
        const int32_t left = j->n_prompt - sl->n_prompt_done;
        const int32_t k = left < room ? left : room;
        for (int32_t i = 0; i < k; i++) {
            const int32_t p = sl->n_prompt_done + i;
            add_row(s, sl, j->prompt[p], p, p == j->n_prompt - 1);
        }
    }
}

/* Pages the batch may take: new pages for each sequence's rows, plus one for a copy on
 * write of a shared, partly filled last page. */
static int32_t pages_needed(const qs_scheduler *s) {
    int32_t need = 0;
    for (int32_t i = 0; i < s->n_slots; i++) {
        const qs_slot *sl = &s->slots[i];
        if (sl->n_rows == 0) continue;
        const int32_t ps = s->page_size, len = sl->n_cache;
        need += (len + sl->n_rows + ps - 1) / ps - (len + ps - 1) / ps + (len % ps != 0);
    }
    return need;
}

/* Frees idle slots' cached prefixes, least recently used first, until need pages are free. */
static bool make_room(qs_scheduler *s, int32_t need) {
    while (qr_ctx_kv_stats(s->ctx).n_free < need) {
        qs_slot *victim = NULL;
        for (int32_t i = 0; i < s->n_slots; i++) {
            qs_slot *sl = &s->slots[i];
            if (!sl->job && sl->n_cache > 0 && (!victim || sl->last_used < victim->last_used)) victim = sl;
        }
        if (!victim) return false;
        qr_ctx_seq_truncate(s->ctx, victim->seq, 0, NULL, 0);
        victim->n_cache = 0;
    }
    return true;
}

/* A batch that fits the KV cache: evicts cached prefixes, then defers prompt chunks, and
 * as a last resort ends the most recently admitted sequence ("length"). */
static void plan_batch(qs_scheduler *s) {
    for (;;) {
        build_batch(s, true);
        if (s->n_rows == 0 || make_room(s, pages_needed(s))) return;
        build_batch(s, false);
        if (s->n_rows > 0 && make_room(s, pages_needed(s))) return;
        qs_slot *newest = NULL;
        for (int32_t i = 0; i < s->n_slots; i++) {
            qs_slot *sl = &s->slots[i];
            if (sl->job && (!newest || sl->job->id > newest->job->id)) newest = sl;
        }
        if (!newest) return;
        QR_LOG_WARN("server", "KV cache full: ending request %llu early", (unsigned long long)newest->job->id);
        finish_slot(s, newest, QS_FINISH_LENGTH, NULL, true);
    }
}

/* ---- Sampling the batch's outputs ------------------------------------------------------------ */

static void emit_token(qs_scheduler *s, qs_slot *sl, qr_token t, const float *logits) {
    const qs_params *p = &sl->job->params;
    qs_event ev = {.token = t};
    if (p->logprobs) qs_logprobs(sl->smp, logits, s->n_vocab, t, p->top_logprobs, s->scratch, &ev);
    char piece[256];
    int32_t n = qr_model_token_to_piece(s->m, t, false, piece, (int32_t)sizeof piece);
    if (n > (int32_t)sizeof piece) n = (int32_t)sizeof piece;
    const char *out;
    size_t out_len;
    bool stopped = false;
    if (qs_text_out_add(&sl->text, piece, (size_t)n, p->stop, p->n_stop, &out, &out_len, &stopped) != 0) {
        finish_slot(s, sl, QS_FINISH_ERROR, "out of memory", true);
        return;
    }
    push_text(sl, out, out_len, &ev);
    if (stopped) finish_slot(s, sl, QS_FINISH_STOP, NULL, false);
}

/* Draws slot i's token from its logits row. Slots have their own samplers and the logits
 * are only read, so slots draw in parallel: with a 262k vocabulary one row is a 1 MiB scan,
 * and a 32-stream step on the GPU spent milliseconds drawing on one thread. */
static void draw_slots(void *ctx, int64_t begin, int64_t end, int thread_id) {
    (void)thread_id;
    qs_scheduler *s = ctx;
    for (int64_t i = begin; i < end; i++) {
        qs_slot *sl = &s->slots[i];
        if (sl->n_rows == 0 || !sl->job || sl->logit_row < 0) continue;
        sl->sample_err.msg[0] = '\0';
        if (s->b_logits[sl->logit_row] == QR_OUTPUT_ARGMAX) {
            sl->sampled = qr_get_argmax(s->ctx, sl->logit_row, sl->sample_err.msg, sizeof sl->sample_err.msg);
            continue;
        }
        const float *logits = qr_get_logits(s->ctx, sl->logit_row);
        sl->sampled = logits ? qr_sampler_sample(sl->smp, logits, &sl->sample_err) : -1;
        if (!logits) qr_fail(&sl->sample_err, "no logits");
    }
}

static void sample_slot(qs_scheduler *s, qs_slot *sl) {
    const float *logits = qr_get_logits(s->ctx, sl->logit_row);
    const qr_token t = sl->sampled;
    if (t < 0) {
        finish_slot(s, sl, QS_FINISH_ERROR, sl->sample_err.msg, true);
        return;
    }
    qr_sampler_accept(sl->smp, t, NULL);
    const double now = qr_time_now_s();
    qs_metrics_token(s->metrics, sl->n_gen == 0 ? now - sl->job->t_arrival : now - sl->t_last, sl->n_gen == 0);
    sl->t_last = now;
    sl->n_gen++;
    sl->decoding = true;
    sl->next = t;
    if (qr_model_is_eog(s->m, t)) {
        finish_slot(s, sl, QS_FINISH_STOP, NULL, false);
        return;
    }
    emit_token(s, sl, t, logits);
    if (!sl->job) return;
    if (sl->n_gen >= sl->job->params.max_tokens || sl->n_cache + 1 >= s->n_ctx) {
        finish_slot(s, sl, QS_FINISH_LENGTH, NULL, false);
    }
}

/* Records the rows just decoded in each slot's cache, then samples where logits came. */
static void after_decode(qs_scheduler *s) {
    qr_threadpool_parallel_for(s->pool, s->n_slots, 1, draw_slots, s);
    for (int32_t i = 0; i < s->n_slots; i++) {
        qs_slot *sl = &s->slots[i];
        if (sl->n_rows == 0 || !sl->job) continue;
        const qr_token *fed = sl->decoding ? &sl->next : sl->job->prompt + sl->n_prompt_done;
        if (qs_slot_cache_push(sl, fed, sl->n_rows) != 0) {
            finish_slot(s, sl, QS_FINISH_ERROR, "out of memory", true);
            continue;
        }
        if (!sl->decoding) sl->n_prompt_done += sl->n_rows;
        if (sl->logit_row >= 0) sample_slot(s, sl);
    }
}

static void fail_batch(qs_scheduler *s, const char *why) {
    QR_LOG_ERROR("server", "decode failed: %s", why);
    for (int32_t i = 0; i < s->n_slots; i++) {
        qs_slot *sl = &s->slots[i];
        if (sl->job && sl->n_rows > 0) finish_slot(s, sl, QS_FINISH_ERROR, why, true);
    }
}

static void publish_gauges(qs_scheduler *s) {
    int64_t active = 0;
    for (int32_t i = 0; i < s->n_slots; i++) active += s->slots[i].job != NULL;
    pthread_mutex_lock(&s->mu);
    const int64_t queued = s->queue.n;
    pthread_mutex_unlock(&s->mu);
    const qr_kv_stats st = qr_ctx_kv_stats(s->ctx);
    qs_metrics_gauges(s->metrics, queued, active, st.n_pages, st.n_free, st.n_shared);
}

static void *scheduler_main(void *arg) {
    qs_scheduler *s = arg;
    while (take_work(s)) {
        drop_cancelled(s);
        plan_batch(s);
        publish_gauges(s);
        if (s->n_rows == 0) continue;
        char err[512];
        qr_batch b = {s->n_rows, s->b_tok, s->b_pos, s->b_seq, s->b_logits};
        if (qr_decode(s->ctx, &b, err, sizeof err) != 0) {
            fail_batch(s, err);
            continue;
        }
        qs_metrics_step(s->metrics, s->n_rows);
        after_decode(s);
        publish_gauges(s);
    }
    for (int32_t i = 0; i < s->n_slots; i++) {
        if (s->slots[i].job) finish_slot(s, &s->slots[i], QS_FINISH_ERROR, "the server is shutting down", true);
    }
    return NULL;
}

/* ---- Lifecycle --------------------------------------------------------------------------------- */

static void free_scheduler(qs_scheduler *s) {
    for (int32_t i = 0; s->slots && i < s->n_slots; i++) {
        free(s->slots[i].cache);
        qs_text_out_free(&s->slots[i].text);
        qr_sampler_free(s->slots[i].smp);
    }
    free(s->slots);
    free(s->b_tok);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_logits);
    free(s->scratch);
    qr_threadpool_destroy(s->pool);
    qs_queue_free(&s->queue);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int qs_scheduler_start(qr_model *m, qr_ctx *ctx, const qs_scheduler_params *p, qs_metrics *metrics,
                       qs_scheduler **out, qr_error *err) {
    *out = NULL;
    qs_scheduler *s = calloc(1, sizeof *s);
    if (!s) return qr_fail(err, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->m = m;
    s->ctx = ctx;
    s->metrics = metrics;
    s->n_slots = p->n_slots;
    s->n_batch = p->n_batch;
    s->n_ctx = qr_ctx_n_ctx(ctx);
    s->n_vocab = qr_model_n_vocab(m);
    s->page_size = qr_ctx_kv_stats(ctx).page_size;
    s->slots = calloc((size_t)s->n_slots, sizeof *s->slots);
    s->b_tok = malloc((size_t)s->n_batch * sizeof *s->b_tok);
    s->b_pos = malloc((size_t)s->n_batch * sizeof *s->b_pos);
    s->b_seq = malloc((size_t)s->n_batch * sizeof *s->b_seq);
    s->b_logits = malloc((size_t)s->n_batch);
    s->scratch = malloc((size_t)s->n_vocab * sizeof *s->scratch);
    if (!s->slots || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_logits || !s->scratch ||
        qs_queue_init(&s->queue, p->max_queue) != 0) {
        free_scheduler(s);
        return qr_fail(err, "out of memory for the scheduler (%d slots, batch %d)", p->n_slots, p->n_batch);
    }
    const int n_draw = p->n_sample_threads > 1 ? (p->n_sample_threads < s->n_slots ? p->n_sample_threads : s->n_slots) : 1;
    if (qr_threadpool_create(n_draw > 0 ? n_draw : 1, &s->pool, err) != QR_OK) {
        free_scheduler(s);
        return QR_ERR;
    }
    for (int32_t i = 0; i < s->n_slots; i++) s->slots[i].seq = i;
    if (pthread_create(&s->thread, NULL, scheduler_main, s) != 0) {
        free_scheduler(s);
        return qr_fail(err, "cannot start the scheduler thread");
    }
    *out = s;
    return QR_OK;
}

void qs_scheduler_stop(qs_scheduler *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    const bool running = !s->stop;
    s->stop = true;
    qs_job *j;
    while ((j = qs_queue_pop(&s->queue)) != NULL) {
        qs_job_finish(j, QS_FINISH_ERROR, "the server is shutting down");
        qs_job_release(j);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (running) pthread_join(s->thread, NULL);
}

void qs_scheduler_free(qs_scheduler *s) {
    if (!s) return;
    qs_scheduler_stop(s);
    free_scheduler(s);
}

int qs_scheduler_submit(qs_scheduler *s, qs_job *j) {
    pthread_mutex_lock(&s->mu);
    const bool ok = !s->stop && qs_queue_push(&s->queue, j);
    if (ok) {
        qs_job_retain(j);
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return ok ? 0 : -1;
}

void qs_scheduler_poke(qs_scheduler *s) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}
