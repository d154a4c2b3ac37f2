/* Streamed responses: server-sent events, one `data: {chunk}` per token as the scheduler
 * produces it, then `data: [DONE]`. The reader waits for the job in short slices and
 * checks in between whether the client has gone; if it has, the job is cancelled, which
 * frees its sequence's KV pages at the scheduler's next step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/bytes.h"
#include "server/job.h"
#include "server/respond.h"
#include "server/server_internal.h"

typedef struct stream {
    qs_server *srv;
    qs_job *job;
    struct MHD_Connection *conn;
    qs_resp_meta meta;
    size_t seen;       /* events already sent */
    bool role_sent, done;
    qs_bytes out;      /* formatted bytes; out.s[out_off..out.n) not yet handed over */
    size_t out_off;
} stream;

static int put_event(stream *st, char *json) {
    if (!json) return -1;
    const int rc = qs_bytes_printf(&st->out, "data: %s\n\n", json);
    free(json);
    return rc;
}

/* Formats the events past `seen` (one chunk each) and, once finished, the final chunk,
 * usage and [DONE]. */
static int format_new(stream *st) {
    qs_job *j = st->job;
    int rc = 0;
    pthread_mutex_lock(&j->mu);
    const size_t n_ev = j->n_ev;
    const qs_finish fin = j->finish;
    for (; st->seen < n_ev && rc == 0; st->seen++) {
        const qs_event *ev = &j->ev[st->seen];
        if (ev->len == 0 && !(st->meta.params->logprobs && ev->token >= 0)) continue;
        rc = put_event(st, qs_resp_chunk(&st->meta, ev, 1, !st->role_sent, QS_FINISH_NONE));
        st->role_sent = true;
    }
    const int32_t n_tokens = qs_count_tokens(j->ev, n_ev);
    char error[256];
    memcpy(error, j->error, sizeof error);
    pthread_mutex_unlock(&j->mu);
    if (fin == QS_FINISH_NONE || rc != 0) return rc;
    if (fin == QS_FINISH_ERROR) {
        qs_api_error e;
        qs_api_fail(&e, 500, "server_error", NULL, NULL, "generation failed: %s", error);
        rc |= put_event(st, qs_api_error_json(&e));
    } else {
        rc |= put_event(st, qs_resp_chunk(&st->meta, NULL, 0, !st->role_sent, fin));
        if (st->meta.params->include_usage) {
            rc |= put_event(st, qs_resp_usage_chunk(&st->meta, j->n_prompt, n_tokens, j->n_cached));
        }
    }
    rc |= qs_bytes_append(&st->out, "data: [DONE]\n\n", 14);
    st->done = true;
    return rc;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream *st = cls;
    while (st->out_off == st->out.n) {
        st->out_off = st->out.n = 0;
        if (st->done) return MHD_CONTENT_READER_END_OF_STREAM;
        if (!qs_job_wait(st->job, st->seen, 100)) {
            if (qs_client_gone(st->conn)) return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        if (format_new(st) != 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    const size_t n = st->out.n - st->out_off < max ? st->out.n - st->out_off : max;
    memcpy(buf, st->out.s + st->out_off, n);
    st->out_off += n;
    return (ssize_t)n;
}

static void free_stream(void *cls) {
    stream *st = cls;
    if (!st->done) {
        /* The client went away (or the write failed): stop generating for it. */
        qs_job_cancel(st->job);
        qs_scheduler_poke(st->srv->sched);
    }
    qs_job_release(st->job);
    qs_bytes_free(&st->out);
    free(st);
}

enum MHD_Result qs_reply_stream(qs_server *srv, struct MHD_Connection *c, const char *endpoint, qs_job *job,
                                const qs_resp_meta *meta) {
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        qs_job_cancel(job);
        qs_job_release(job);
        return MHD_NO;
    }
    st->srv = srv;
    st->job = job;
    st->conn = c;
    st->meta = *meta;
    st->meta.params = &job->params;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, read_stream, st, free_stream);
    if (!r) {
        free_stream(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    const enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    qs_metrics_request(&srv->metrics, endpoint, 200);
    return ok;
}
