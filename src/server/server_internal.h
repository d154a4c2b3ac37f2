/* The server's shared state, seen by the HTTP glue (http.c), the endpoints (routes.c)
 * and the streaming responses (stream.c). */
#ifndef QS_SERVER_INTERNAL_H
#define QS_SERVER_INTERNAL_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "server/api_error.h"
#include "server/metrics.h"
#include "server/scheduler.h"
#include "server/server.h"

struct qs_server {
    qs_config cfg;
    qr_model *m;
    qr_ctx *ctx;
    qs_scheduler *sched;
    qs_metrics metrics;
    struct MHD_Daemon *daemon;
    int port;
    char model_name[256];
    long long created;
    atomic_uint_fast64_t next_id;
    atomic_int n_connections;
};

/* ---- http.c ---- */
int qs_http_start(qs_server *srv, qr_error *err);
void qs_http_stop(qs_server *srv);
/* Queues a response with a JSON body (takes ownership of body) and counts it. */
enum MHD_Result qs_reply_json(qs_server *srv, struct MHD_Connection *c, const char *endpoint, int status,
                              char *body);
enum MHD_Result qs_reply_error(qs_server *srv, struct MHD_Connection *c, const char *endpoint,
                               const qs_api_error *e);
/* True when the client has closed its end of the connection. */
bool qs_client_gone(struct MHD_Connection *c);

/* ---- routes.c ---- */
enum MHD_Result qs_route(qs_server *srv, struct MHD_Connection *c, const char *url, const char *method,
                         const char *body, size_t len);

/* ---- stream.c ---- */
struct qs_job;
struct qs_resp_meta;
/* Answers 200 with a server-sent event stream of the job's chunks (takes the job ref). */
enum MHD_Result qs_reply_stream(qs_server *srv, struct MHD_Connection *c, const char *endpoint,
                                struct qs_job *job, const struct qs_resp_meta *meta);

#endif
