/* A job: one generation request shared by the HTTP thread that serves it and the
 * scheduler thread that runs it. The scheduler appends events (text deltas with their
 * token's log-probabilities) and finally a finish reason; the HTTP side reads them in
 * order. Either side may go first: the job is reference counted and freed by the last
 * holder. A client that goes away sets `cancel`; the scheduler then drops the sequence. */
#ifndef QS_JOB_H
#define QS_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/params.h"

typedef enum qs_finish {
    QS_FINISH_NONE = 0,
    QS_FINISH_STOP,      /* end-of-generation token or a stop string */
    QS_FINISH_LENGTH,    /* max_tokens, or the context / KV cache is full */
    QS_FINISH_CANCELLED, /* the client went away */
    QS_FINISH_ERROR,     /* the engine failed (message in `error`) */
} qs_finish;

typedef struct qs_top {
    qr_token token;
    float logprob;
} qs_top;

typedef struct qs_event {
    char *text;     /* text released at this token (may be empty: held back for a
                       possible stop string or an incomplete UTF-8 character) */
    size_t len;
    qr_token token;
    float logprob;
    int32_t n_top;
    qs_top top[QS_MAX_TOP_LOGPROBS];
} qs_event;

typedef struct qs_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    /* Set before submission, then read-only. */
    uint64_t id;
    qs_params params;
    qr_token *prompt;
    int32_t n_prompt;
    double t_arrival;
    /* Written by the scheduler under mu. */
    qs_event *ev;
    size_t n_ev, cap_ev;
    qs_finish finish;
    char error[256];
    int32_t n_cached;    /* prompt tokens reused from the prefix cache */
    /* Set by the HTTP side when the client disconnects. */
    atomic_bool cancel;
} qs_job;

/* Takes ownership of prompt and params (freed with the job). Starts with 1 reference. */
qs_job *qs_job_create(uint64_t id, qs_params *params, qr_token *prompt, int32_t n_prompt);
void qs_job_retain(qs_job *j);
void qs_job_release(qs_job *j);

/* Scheduler side. push copies text; returns -1 on out of memory. */
int qs_job_push(qs_job *j, const char *text, size_t len, const qs_event *info);
void qs_job_finish(qs_job *j, qs_finish reason, const char *error);

/* HTTP side: waits up to timeout_ms for events past `seen` or the finish; returns true when
 * there is something new. Read ev[] with mu held (the scheduler may grow the array). */
bool qs_job_wait(qs_job *j, size_t seen, int timeout_ms);
/* Snapshot of how many events exist and whether the job finished. */
void qs_job_state(qs_job *j, size_t *n_ev, qs_finish *finish);
void qs_job_cancel(qs_job *j);

#endif
