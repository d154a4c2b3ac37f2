#include "server/job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/timer.h"

void qs_params_free(qs_params *p) {
    for (int32_t i = 0; i < p->n_stop; i++) free(p->stop[i]);
    free(p->bias);
    p->n_stop = 0;
    p->bias = NULL;
    p->n_bias = 0;
}

qs_job *qs_job_create(uint64_t id, qs_params *params, qr_token *prompt, int32_t n_prompt) {
    qs_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    j->refs = 1;
    j->id = id;
    j->params = *params;
    memset(params, 0, sizeof *params);
    j->prompt = prompt;
    j->n_prompt = n_prompt;
    j->t_arrival = qr_time_now_s();
    atomic_init(&j->cancel, false);
    return j;
}

void qs_job_retain(qs_job *j) {
    pthread_mutex_lock(&j->mu);
    j->refs++;
    pthread_mutex_unlock(&j->mu);
}

void qs_job_release(qs_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    const int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left > 0) return;
    for (size_t i = 0; i < j->n_ev; i++) free(j->ev[i].text);
    free(j->ev);
    free(j->prompt);
    qs_params_free(&j->params);
    pthread_cond_destroy(&j->cv);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

int qs_job_push(qs_job *j, const char *text, size_t len, const qs_event *info) {
    char *copy = malloc(len + 1);
    if (!copy) return -1;
    memcpy(copy, text, len);
    copy[len] = 0;
    pthread_mutex_lock(&j->mu);
    if (j->n_ev == j->cap_ev) {
        const size_t cap = j->cap_ev ? 2 * j->cap_ev : 16;
        qs_event *ev = realloc(j->ev, cap * sizeof *ev);
        if (!ev) {
            pthread_mutex_unlock(&j->mu);
            free(copy);
            return -1;
        }
        j->ev = ev;
        j->cap_ev = cap;
    }
    qs_event *e = &j->ev[j->n_ev++];
    *e = *info;
    e->text = copy;
    e->len = len;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

void qs_job_finish(qs_job *j, qs_finish reason, const char *error) {
    pthread_mutex_lock(&j->mu);
    if (j->finish == QS_FINISH_NONE) {
        j->finish = reason;
        if (error) snprintf(j->error, sizeof j->error, "%s", error);
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

bool qs_job_wait(qs_job *j, size_t seen, int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    ts.tv_sec += timeout_ms / 1000 + ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&j->mu);
    while (j->n_ev <= seen && j->finish == QS_FINISH_NONE) {
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT) break;
    }
    const bool news = j->n_ev > seen || j->finish != QS_FINISH_NONE;
    pthread_mutex_unlock(&j->mu);
    return news;
}

void qs_job_state(qs_job *j, size_t *n_ev, qs_finish *finish) {
    pthread_mutex_lock(&j->mu);
    *n_ev = j->n_ev;
    *finish = j->finish;
    pthread_mutex_unlock(&j->mu);
}

void qs_job_cancel(qs_job *j) { atomic_store(&j->cancel, true); }
