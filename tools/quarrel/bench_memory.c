/* Read bandwidth, per-token bytes and peak RSS for `quarrel bench`. */
#include "bench_memory.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/error.h"
#include "core/timer.h"
#include "gguf/gguf.h"
#include "gguf/types.h"
#include "model/quant_policy.h"

/* ---- Read bandwidth --------------------------------------------------------------------- */

typedef struct bw_slice {
    const uint64_t *p;
    size_t n;
    atomic_int *go; /* 1 = start reading, -1 = give up */
    uint64_t sum;   /* kept so the compiler cannot drop the reads */
} bw_slice;

static void *bw_read(void *arg) {
    bw_slice *s = arg;
    int go;
    while ((go = atomic_load(s->go)) == 0) sched_yield();
    if (go < 0) return NULL;
    /* Eight independent sums (several loads in flight, vectorized by the compiler) and
     * software prefetch 4 KiB ahead, as the kernels do: the hardware prefetchers stop at
     * page boundaries, and without this the figure understates what the kernels get. */
    uint64_t acc[8] = {0};
    for (size_t i = 0; i + 8 <= s->n; i += 8) {
        __builtin_prefetch(s->p + i + 512);
        for (int k = 0; k < 8; k++) acc[k] += s->p[i + k];
    }
    for (int k = 0; k < 8; k++) s->sum += acc[k];
    return NULL;
}

/* One timed pass of n_threads readers; 0 when a thread cannot start. */
static double bw_pass(const uint64_t *buf, size_t words, int n_threads) {
    atomic_int go;
    atomic_init(&go, 0);
    pthread_t th[256];
    bw_slice sl[256];
    const size_t per = words / (size_t)n_threads;
    int started = 0;
    for (; started < n_threads; started++) {
        sl[started] = (bw_slice){.p = buf + per * (size_t)started, .n = per, .go = &go};
        if (pthread_create(&th[started], NULL, bw_read, &sl[started]) != 0) break;
    }
    const bool ok = started == n_threads;
    const double t0 = qr_time_now_s();
    atomic_store(&go, ok ? 1 : -1);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    const double dt = qr_time_now_s() - t0;
    if (!ok || dt <= 0.0) return 0.0;
    return (double)(per * (size_t)n_threads * sizeof(uint64_t)) / dt;
}

double bench_read_bandwidth(int n_threads, uint64_t bytes, int reps) {
    if (n_threads < 1) n_threads = 1;
    if (n_threads > 256) n_threads = 256;
    const size_t words = (size_t)(bytes / sizeof(uint64_t));
    uint64_t *buf = malloc(words * sizeof *buf);
    if (!buf) return 0.0;
    for (size_t i = 0; i < words; i++) buf[i] = i; /* touch every page before timing */
    double best = 0.0;
    for (int r = 0; r < reps; r++) {
        const double bw = bw_pass(buf, words, n_threads);
        best = bw > best ? bw : best;
    }
    free(buf);
    return best;
}

/* ---- Bytes a token reads ------------------------------------------------------------------- */

static bool name_is(qr_gguf_str s, const char *prefix, const char *suffix) {
    const size_t lp = strlen(prefix), ls = strlen(suffix);
    return s.len >= lp + ls && memcmp(s.ptr, prefix, lp) == 0 && memcmp(s.ptr + s.len - ls, suffix, ls) == 0;
}

/* llama.cpp's name for general.file_type; without it the type holding the most bytes. */
static void name_main_type(const qr_gguf *g, char out[32]) {
    uint32_t ft = 0;
    qr_error err;
    uint64_t bytes[QR_TYPE_COUNT] = {0};
    int best = 0;
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        if ((int)t->type < QR_TYPE_COUNT) bytes[t->type] += t->n_bytes;
    }
    for (int t = 0; t < QR_TYPE_COUNT; t++) best = bytes[t] > bytes[best] ? t : best;
    snprintf(out, 32, "%s", qr_type_name((qr_type)best));
    if (qr_gguf_find_kv(g, "general.file_type") && qr_gguf_get_u32(g, "general.file_type", &ft, &err) == QR_OK) {
        for (int i = 0; i < qr_quant_mix_count(); i++) {
            if ((uint32_t)qr_quant_mix_at(i)->ftype == ft) {
                snprintf(out, 32, "%s", qr_quant_mix_at(i)->name);
                return;
            }
        }
        if (ft == QR_FTYPE_ALL_F32) snprintf(out, 32, "F32");
    }
}

int bench_model_bytes_read(const char *path, bench_model_bytes *out) {
    memset(out, 0, sizeof *out);
    qr_gguf *g = NULL;
    qr_error err;
    if (qr_gguf_open(path, &g, &err) != QR_OK) {
        fprintf(stderr, "quarrel bench: %s\n", err.msg);
        return 1;
    }
    out->file_bytes = qr_gguf_file_size(g);
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        out->weight_bytes += t->n_bytes;
        out->n_params += (uint64_t)t->n_elements;
        /* the embedding: one row, unless the logits reuse it (tied output: all of it) */
        if (name_is(t->name, "token_embd.weight", "") && qr_gguf_find_tensor(g, "output.weight")) {
            out->per_token_bytes += t->n_bytes / (uint64_t)(t->ne[1] > 0 ? t->ne[1] : 1);
        } else {
            out->per_token_bytes += t->n_bytes;
        }
        /* K and V rows per position: n_head_kv * head_dim each, stored as F16. */
        if (name_is(t->name, "blk.", ".attn_k.weight") || name_is(t->name, "blk.", ".attn_v.weight")) {
            out->kv_bytes_per_pos += (uint64_t)t->ne[1] * 2;
        }
    }
    name_main_type(g, out->type_name);
    qr_gguf_close(g);
    return 0;
}

uint64_t bench_peak_rss(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024u; /* kilobytes on Linux */
}
