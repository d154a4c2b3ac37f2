/* Server metrics, rendered in Prometheus' text exposition format (GET /metrics).
 * Counters and histograms are updated by the HTTP threads and the scheduler under one
 * mutex; gauges that describe the engine (KV pages, active sequences) are copied in by
 * the scheduler, the only thread that may look at the engine context. */
#ifndef QS_METRICS_H
#define QS_METRICS_H

#include <pthread.h>
#include <stdint.h>

#define QS_HIST_MAX_BUCKETS 16
#define QS_STATUS_SLOTS 32

typedef struct qs_histogram {
    int32_t n_bounds;
    double bounds[QS_HIST_MAX_BUCKETS]; /* upper bounds; +Inf is implied */
    uint64_t counts[QS_HIST_MAX_BUCKETS + 1];
    double sum;
    uint64_t count;
} qs_histogram;

typedef struct qs_status_count {
    const char *endpoint; /* a string literal */
    int status;
    uint64_t count;
} qs_status_count;

typedef struct qs_metrics {
    pthread_mutex_t mu;
    qs_status_count requests[QS_STATUS_SLOTS];
    int32_t n_requests;
    uint64_t prompt_tokens, generated_tokens, prefix_hit_tokens, prefix_hit_requests, admitted;
    uint64_t decode_steps, cancelled;
    qs_histogram batch_rows, ttft, itl;
    /* gauges */
    int64_t queue_length, active_sequences, connections;
    int64_t kv_pages_total, kv_pages_free, kv_pages_shared;
} qs_metrics;

void qs_metrics_init(qs_metrics *m);
void qs_metrics_destroy(qs_metrics *m);

void qs_metrics_request(qs_metrics *m, const char *endpoint, int status);
void qs_metrics_admit(qs_metrics *m, int64_t prompt_tokens, int64_t reused_tokens);
void qs_metrics_step(qs_metrics *m, int32_t rows);
void qs_metrics_token(qs_metrics *m, double since_last_s, int first);
void qs_metrics_gauges(qs_metrics *m, int64_t queue_length, int64_t active, int64_t pages_total,
                       int64_t pages_free, int64_t pages_shared);
void qs_metrics_connections(qs_metrics *m, int64_t delta);
void qs_metrics_cancelled(qs_metrics *m);

/* The exposition text (malloc'd); NULL on out of memory. */
char *qs_metrics_render(qs_metrics *m);

#endif
