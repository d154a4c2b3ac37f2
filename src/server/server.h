/* quarrel serve: an OpenAI-compatible HTTP server (libmicrohttpd) over one engine context
 * with continuous batching (scheduler.h). docs/server.md describes the endpoints. */
#ifndef QS_SERVER_H
#define QS_SERVER_H

#include <stdint.h>

#include "core/error.h"
#include "quarrel.h"

typedef struct qs_config {
    const char *model_path;
    const char *alias;         /* the model name clients see; default: the file name */
    const char *host;          /* default 127.0.0.1 */
    int port;                  /* 0 = any free port (qs_server_port tells which) */
    const char *api_key;       /* NULL = no authentication */
    const char *chat_template; /* NULL = the model's own */
    qr_model_params mp;
    int32_t n_ctx;             /* KV cells shared by all sequences; 0 = 4096 * ... see server.c */
    int32_t n_threads;
    qr_device device;          /* QR_DEVICE_AUTO (default): CUDA when built with it and a GPU is present */
    int32_t n_gpu_layers;      /* qr_ctx_params.n_gpu_layers (-1 = all, the default) */
    int32_t n_parallel;        /* sequences decoded together */
    int32_t n_batch;           /* rows per forward pass */
    int32_t max_queue;         /* waiting requests before 503 */
    int32_t max_connections;
    int64_t max_body_bytes;
    int32_t max_prompt_tokens; /* 0 = the context size - 1 */
    int32_t max_tokens;        /* largest max_tokens accepted */
    int32_t timeout_s;         /* idle connection timeout */
} qs_config;

qs_config qs_config_default(void);

typedef struct qs_server qs_server;

/* Loads the model, creates the batch-invariant context, starts the scheduler and the HTTP
 * daemon. QR_ERR with err set (bad model, port in use, ...). */
int qs_server_start(const qs_config *cfg, qs_server **out, qr_error *err);
int qs_server_port(const qs_server *s);
/* "cuda" or "cpu": the device the engine context computes on (--device auto resolved). */
const char *qs_server_device(const qs_server *s);
const char *qs_server_model_name(const qs_server *s);
void qs_server_stop(qs_server *s);

#endif
