#include "server/server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "server/server_internal.h"

qs_config qs_config_default(void) {
    qs_config c = {
        .host = "127.0.0.1",
        .port = 8080,
        .mp = qr_model_default_params(),
        .n_ctx = 4096,
        .n_threads = 0,
        .device = QR_DEVICE_AUTO,
        .n_gpu_layers = -1,
        .n_parallel = 4,
        .n_batch = 256,
        .max_queue = 64,
        .max_connections = 128,
        .max_body_bytes = 1 << 20,
        .max_prompt_tokens = 0,
        .max_tokens = 4096,
        .timeout_s = 600,
    };
    return c;
}

static void free_server(qs_server *s) {
    /* Jobs fail first, so connection threads waiting on them return; then the daemon
     * joins those threads; only then may the scheduler go. */
    qs_scheduler_stop(s->sched);
    qs_http_stop(s);
    qs_scheduler_free(s->sched);
    qr_ctx_free(s->ctx);
    qr_model_free(s->m);
    qs_metrics_destroy(&s->metrics);
    free(s);
}

static void set_model_name(qs_server *s) {
    const char *name = s->cfg.alias;
    if (!name) {
        const char *slash = strrchr(s->cfg.model_path, '/');
        name = slash ? slash + 1 : s->cfg.model_path;
    }
    snprintf(s->model_name, sizeof s->model_name, "%s", name);
}

static int open_engine(qs_server *s, qr_error *err) {
    char msg[512];
    s->m = qr_model_load_with(s->cfg.model_path, &s->cfg.mp, msg, sizeof msg);
    if (!s->m) return qr_fail(err, "%s", msg);
    qr_ctx_params cp = qr_ctx_default_params();
    cp.n_ctx = s->cfg.n_ctx;
    cp.n_seq_max = s->cfg.n_parallel;
    cp.n_batch = s->cfg.n_batch;
    cp.n_threads = s->cfg.n_threads;
    /* The server's promise: a request's tokens do not depend on the other requests that
     * share its batches (docs/server.md), on either device. */
    cp.batch_invariant = true;
    cp.device = s->cfg.device;
    cp.n_gpu_layers = s->cfg.n_gpu_layers;
    s->ctx = qr_ctx_create(s->m, &cp, msg, sizeof msg);
    if (!s->ctx) return qr_fail(err, "%s", msg);
    /* Like quarrel chat: Gemma 3 files often lack tokenizer.chat_template. */
    if (!s->cfg.chat_template && qr_model_chat_template(s->m, NULL, 0) < 0 &&
        strcmp(qr_model_arch(s->m), "gemma3") == 0) {
        s->cfg.chat_template = "gemma";
    }
    const int32_t n_ctx = qr_ctx_n_ctx(s->ctx);
    if (s->cfg.max_prompt_tokens <= 0 || s->cfg.max_prompt_tokens > n_ctx - 1) s->cfg.max_prompt_tokens = n_ctx - 1;
    return QR_OK;
}

int qs_server_start(const qs_config *cfg, qs_server **out, qr_error *err) {
    *out = NULL;
    if (!cfg->model_path) return qr_fail(err, "no model given (-m FILE)");
    if (cfg->n_parallel < 1 || cfg->n_batch < 1 || cfg->max_queue < 1 || cfg->max_connections < 1 ||
        cfg->max_body_bytes < 1 || cfg->max_tokens < 1) {
        return qr_fail(err, "--parallel, --batch-size, --max-queue, --max-connections, --max-body and "
                            "--max-tokens must be >= 1");
    }
    qs_server *s = calloc(1, sizeof *s);
    if (!s) return qr_fail(err, "out of memory");
    s->cfg = *cfg;
    if (!s->cfg.host) s->cfg.host = "127.0.0.1";
    if (s->cfg.n_batch < s->cfg.n_parallel) s->cfg.n_batch = s->cfg.n_parallel;
    qs_metrics_init(&s->metrics);
    atomic_init(&s->next_id, 1);
    atomic_init(&s->n_connections, 0);
    s->created = (long long)time(NULL);
    set_model_name(s);
    if (open_engine(s, err) != QR_OK) {
        free_server(s);
        return QR_ERR;
    }
    /* On the GPU the CPU is free while tokens are drawn: up to 8 threads draw the step's
     * rows. On the CPU the forward pass owns the cores, and one thread draws. */
    int32_t draw = qr_ctx_device(s->ctx) == QR_DEVICE_CUDA ? qr_ctx_n_threads(s->ctx) : 1;
    if (draw > 8) draw = 8;
    const qs_scheduler_params sp = {s->cfg.n_parallel, s->cfg.n_batch, s->cfg.max_queue, draw};
    if (qs_scheduler_start(s->m, s->ctx, &sp, &s->metrics, &s->sched, err) != QR_OK ||
        qs_http_start(s, err) != QR_OK) {
        free_server(s);
        return QR_ERR;
    }
    QR_LOG_INFO("server", "%s on %s: %d sequences, context %d, batch %d, %d threads", s->model_name,
                qs_server_device(s), s->cfg.n_parallel, qr_ctx_n_ctx(s->ctx), s->cfg.n_batch,
                qr_ctx_n_threads(s->ctx));
    *out = s;
    return QR_OK;
}

int qs_server_port(const qs_server *s) { return s->port; }
const char *qs_server_device(const qs_server *s) { return qr_ctx_device(s->ctx) == QR_DEVICE_CUDA ? "cuda" : "cpu"; }
const char *qs_server_model_name(const qs_server *s) { return s->model_name; }

void qs_server_stop(qs_server *s) {
    if (s) free_server(s);
}
