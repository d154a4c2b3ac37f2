#include "server/metrics.h"

#include "server/bytes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hist_init(qs_histogram *h, const double *bounds, int32_t n) {
    memset(h, 0, sizeof *h);
    h->n_bounds = n;
    memcpy(h->bounds, bounds, (size_t)n * sizeof *bounds);
}

static void hist_add(qs_histogram *h, double v) {
    int32_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void qs_metrics_init(qs_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    static const double rows[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    static const double ttft[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    static const double itl[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
    hist_init(&m->batch_rows, rows, (int32_t)(sizeof rows / sizeof rows[0]));
    hist_init(&m->ttft, ttft, (int32_t)(sizeof ttft / sizeof ttft[0]));
    hist_init(&m->itl, itl, (int32_t)(sizeof itl / sizeof itl[0]));
}

void qs_metrics_destroy(qs_metrics *m) { pthread_mutex_destroy(&m->mu); }

void qs_metrics_request(qs_metrics *m, const char *endpoint, int status) {
    pthread_mutex_lock(&m->mu);
    int32_t i = 0;
    while (i < m->n_requests && !(m->requests[i].status == status && strcmp(m->requests[i].endpoint, endpoint) == 0)) i++;
    if (i == m->n_requests && i < QS_STATUS_SLOTS) {
        m->requests[i] = (qs_status_count){endpoint, status, 0};
        m->n_requests++;
    }
    if (i < QS_STATUS_SLOTS) m->requests[i].count++;
    pthread_mutex_unlock(&m->mu);
}

void qs_metrics_admit(qs_metrics *m, int64_t prompt_tokens, int64_t reused_tokens) {
    pthread_mutex_lock(&m->mu);
    m->admitted++;
    m->prompt_tokens += (uint64_t)prompt_tokens;
    m->prefix_hit_tokens += (uint64_t)reused_tokens;
    m->prefix_hit_requests += reused_tokens > 0;
    pthread_mutex_unlock(&m->mu);
}

void qs_metrics_step(qs_metrics *m, int32_t rows) {
    pthread_mutex_lock(&m->mu);
    m->decode_steps++;
    hist_add(&m->batch_rows, rows);
    pthread_mutex_unlock(&m->mu);
}

void qs_metrics_token(qs_metrics *m, double since_last_s, int first) {
    pthread_mutex_lock(&m->mu);
    m->generated_tokens++;
    hist_add(first ? &m->ttft : &m->itl, since_last_s);
    pthread_mutex_unlock(&m->mu);
}

void qs_metrics_gauges(qs_metrics *m, int64_t queue_length, int64_t active, int64_t pages_total,
                       int64_t pages_free, int64_t pages_shared) {
    pthread_mutex_lock(&m->mu);
    m->queue_length = queue_length;
    m->active_sequences = active;
    m->kv_pages_total = pages_total;
    m->kv_pages_free = pages_free;
    m->kv_pages_shared = pages_shared;
    pthread_mutex_unlock(&m->mu);
}

void qs_metrics_connections(qs_metrics *m, int64_t delta) {
    pthread_mutex_lock(&m->mu);
    m->connections += delta;
    pthread_mutex_unlock(&m->mu);
}

void qs_metrics_cancelled(qs_metrics *m) {
    pthread_mutex_lock(&m->mu);
    m->cancelled++;
    pthread_mutex_unlock(&m->mu);
}

/* ---- Rendering -------------------------------------------------------------------------- */

/* Rendering stops adding at the first allocation failure; oom is checked once at the end. */
typedef struct page {
    qs_bytes b;
    int oom;
} page;

#define put(pg, ...) ((pg)->oom |= qs_bytes_printf(&(pg)->b, __VA_ARGS__) != 0)

static void metric(page *b, const char *name, const char *type, const char *help) {
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void scalar(page *b, const char *name, const char *type, const char *help, double v) {
    metric(b, name, type, help);
    put(b, "%s %.17g\n", name, v);
}

static void histogram(page *b, const char *name, const char *help, const qs_histogram *h) {
    metric(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int32_t i = 0; i < h->n_bounds; i++) {
        cum += h->counts[i];
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    put(b, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

char *qs_metrics_render(qs_metrics *m) {
    page b = {{0}, 0};
    pthread_mutex_lock(&m->mu);
    metric(&b, "quarrel_requests_total", "counter", "HTTP requests answered, by endpoint and status");
    for (int32_t i = 0; i < m->n_requests; i++) {
        put(&b, "quarrel_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", m->requests[i].endpoint,
            m->requests[i].status, (unsigned long long)m->requests[i].count);
    }
    scalar(&b, "quarrel_queue_length", "gauge", "requests waiting for a sequence slot", (double)m->queue_length);
    scalar(&b, "quarrel_active_sequences", "gauge", "sequences being prefilled or decoded",
           (double)m->active_sequences);
    scalar(&b, "quarrel_open_connections", "gauge", "open HTTP connections", (double)m->connections);
    scalar(&b, "quarrel_requests_cancelled_total", "counter",
           "requests whose client went away before the end (sequence dropped, pages freed)", (double)m->cancelled);
    histogram(&b, "quarrel_batch_rows", "rows (tokens of all sequences) per forward pass", &m->batch_rows);
    scalar(&b, "quarrel_forward_passes_total", "counter", "forward passes (qr_decode calls)",
           (double)m->decode_steps);
    scalar(&b, "quarrel_prompt_tokens_total", "counter", "prompt tokens of admitted requests",
           (double)m->prompt_tokens);
    scalar(&b, "quarrel_generated_tokens_total", "counter", "tokens generated", (double)m->generated_tokens);
    histogram(&b, "quarrel_time_to_first_token_seconds", "arrival to first generated token", &m->ttft);
    histogram(&b, "quarrel_inter_token_latency_seconds", "time between a sequence's consecutive tokens", &m->itl);
    scalar(&b, "quarrel_kv_pages_total", "gauge", "pages in the paged KV cache", (double)m->kv_pages_total);
    scalar(&b, "quarrel_kv_pages_used", "gauge", "KV pages held by sequences (active or cached)",
           (double)(m->kv_pages_total - m->kv_pages_free));
    scalar(&b, "quarrel_kv_pages_free", "gauge", "KV pages free", (double)m->kv_pages_free);
    scalar(&b, "quarrel_kv_pages_shared", "gauge", "KV pages shared by several sequences",
           (double)m->kv_pages_shared);
    scalar(&b, "quarrel_prefix_cache_hit_tokens_total", "counter", "prompt tokens reused from cached KV pages",
           (double)m->prefix_hit_tokens);
    scalar(&b, "quarrel_prefix_cache_hits_total", "counter", "admitted requests that reused a cached prefix",
           (double)m->prefix_hit_requests);
    scalar(&b, "quarrel_prefix_cache_requests_total", "counter", "admitted requests (prefix-cache lookups)",
           (double)m->admitted);
    scalar(&b, "quarrel_prefix_cache_hit_ratio", "gauge", "prefix-cache hit tokens / prompt tokens",
           m->prompt_tokens ? (double)m->prefix_hit_tokens / (double)m->prompt_tokens : 0.0);
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        qs_bytes_free(&b.b);
        return NULL;
    }
    return b.b.s;
}
