/* Memory figures for `quarrel bench`: the machine's read bandwidth (the roofline of
 * decode), the bytes one generated token must read, and the process's peak RSS. */
#ifndef QR_TOOLS_BENCH_MEMORY_H
#define QR_TOOLS_BENCH_MEMORY_H

#include <stdint.h>

/* Read bandwidth in bytes/s: n_threads threads each stream over their share of a buffer
 * of `bytes` (far larger than the caches), best of `reps` passes. 0 when it cannot
 * allocate the buffer or start the threads. */
double bench_read_bandwidth(int n_threads, uint64_t bytes, int reps);

/* What one decode step reads from a model file: every tensor once, except the token
 * embedding, of which only one row is read. kv_bytes_per_pos: the bytes of K and V one
 * cached position holds over all layers (F16 cache). Returns 0 or 1 after printing. */
typedef struct bench_model_bytes {
    uint64_t file_bytes;      /* the whole file */
    uint64_t weight_bytes;    /* all tensors */
    uint64_t per_token_bytes; /* weights a token reads (embedding: one row) */
    uint64_t kv_bytes_per_pos;
    uint64_t n_params;
    char type_name[32];       /* the most common weight type by bytes, e.g. "Q4_K" */
} bench_model_bytes;

int bench_model_bytes_read(const char *path, bench_model_bytes *out);

/* Peak resident set size of this process so far, in bytes (getrusage). */
uint64_t bench_peak_rss(void);

#endif
