/* src/core/threadpool: every index of a parallel_for runs exactly once, on threads with
 * valid ids, for many back-to-back jobs (the engine's pattern), with grains larger than
 * the range, empty ranges, and a single-thread pool; and that work really is spread over
 * several threads. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/threadpool.h"
#include "testing.h"

typedef struct {
    atomic_int *hits;     /* per index */
    atomic_int *per_tid;  /* chunks run per thread id */
    int n_threads;
    atomic_int bad_tid;
    atomic_int bad_range;
    int64_t n;
} count_job;

static void count_fn(void *ctx, int64_t begin, int64_t end, int tid) {
    count_job *j = ctx;
    if (tid < 0 || tid >= j->n_threads) atomic_fetch_add(&j->bad_tid, 1);
    if (begin < 0 || end > j->n || begin >= end) atomic_fetch_add(&j->bad_range, 1);
    else atomic_fetch_add(&j->per_tid[tid], 1);
    for (int64_t i = begin; i < end && i < j->n && i >= 0; i++) atomic_fetch_add(&j->hits[i], 1);
}

static void run_and_check(qr_threadpool *pool, int64_t n, int64_t grain, int *threads_used) {
    int nt = qr_threadpool_n_threads(pool);
    count_job j = {.n_threads = nt, .n = n};
    j.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *j.hits);
    j.per_tid = calloc((size_t)nt, sizeof *j.per_tid);
    REQUIRE(j.hits && j.per_tid);
    qr_threadpool_parallel_for(pool, n, grain, count_fn, &j);
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; i++) wrong += atomic_load(&j.hits[i]) != 1;
    CHECK_MSG(wrong == 0, "n=%lld grain=%lld: %lld indices not run exactly once", (long long)n,
              (long long)grain, (long long)wrong);
    CHECK(atomic_load(&j.bad_tid) == 0);
    CHECK(atomic_load(&j.bad_range) == 0);
    if (threads_used) {
        *threads_used = 0;
        for (int t = 0; t < nt; t++) *threads_used += atomic_load(&j.per_tid[t]) > 0;
    }
    free(j.hits);
    free(j.per_tid);
}

static void test_ranges(int n_threads) {
    qr_threadpool *pool = NULL;
    qr_error err;
    REQUIRE(qr_threadpool_create(n_threads, &pool, &err) == QR_OK);
    CHECK(qr_threadpool_n_threads(pool) == n_threads);
    const int64_t ns[] = {0, 1, 2, 7, 64, 1000, 100003};
    const int64_t grains[] = {0, 1, 3, 64, 1000000};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
        for (size_t b = 0; b < sizeof grains / sizeof grains[0]; b++) {
            run_and_check(pool, ns[a], grains[b], NULL);
        }
    }
    /* Many small jobs back to back, as a forward pass issues them. */
    for (int rep = 0; rep < 2000; rep++) run_and_check(pool, 37, 1, NULL);
    qr_threadpool_destroy(pool);
}

typedef struct {
    atomic_int seen[64];
} spread_job;

/* Each chunk waits until at least two threads have arrived (or gives up), so a pool of
 * several threads must run chunks concurrently. */
static void spread_fn(void *ctx, int64_t begin, int64_t end, int tid) {
    (void)begin;
    (void)end;
    spread_job *j = ctx;
    atomic_store(&j->seen[tid], 1);
    for (long spin = 0; spin < 200000000L; spin++) {
        int n = 0;
        for (int t = 0; t < 64; t++) n += atomic_load(&j->seen[t]);
        if (n >= 2) return;
    }
}

static void test_concurrency(void) {
    qr_threadpool *pool = NULL;
    qr_error err;
    REQUIRE(qr_threadpool_create(4, &pool, &err) == QR_OK);
    spread_job j;
    for (int t = 0; t < 64; t++) atomic_init(&j.seen[t], 0);
    qr_threadpool_parallel_for(pool, 4, 1, spread_fn, &j);
    int n = 0;
    for (int t = 0; t < 64; t++) n += atomic_load(&j.seen[t]);
    CHECK_MSG(n >= 2, "only %d thread(s) ran chunks of a 4-thread pool", n);
    qr_threadpool_destroy(pool);
}

static void test_bad_args(void) {
    qr_threadpool *pool = (qr_threadpool *)1;
    qr_error err;
    CHECK(qr_threadpool_create(0, &pool, &err) == QR_ERR);
    CHECK(pool == NULL);
    CHECK(strstr(err.msg, "n_threads") != NULL);
    qr_threadpool_destroy(NULL);
    CHECK(qr_threadpool_default_threads() >= 1);
}

int main(void) {
    test_ranges(1);
    test_ranges(2);
    test_ranges(5);
    test_concurrency();
    test_bad_args();
    return qr_test_finish("test_threadpool");
}
