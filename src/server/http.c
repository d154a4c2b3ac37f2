/* The HTTP glue on libmicrohttpd: one thread per connection (generation requests block
 * until their job finishes or stream it), request bodies gathered under a size limit, a
 * connection limit answered with a JSON error, Bearer authentication. */
#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "server/bytes.h"
#include "server/server_internal.h"

typedef struct http_req {
    qs_bytes body;
    bool too_large;
} http_req;

bool qs_client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

enum MHD_Result qs_reply_json(qs_server *srv, struct MHD_Connection *c, const char *endpoint, int status,
                              char *body) {
    if (!body) {
        status = 500;
        body = strdup("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(body ? strlen(body) : 0, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == 503) MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    const enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    qs_metrics_request(&srv->metrics, endpoint, status);
    return ok;
}

enum MHD_Result qs_reply_error(qs_server *srv, struct MHD_Connection *c, const char *endpoint,
                               const qs_api_error *e) {
    return qs_reply_json(srv, c, endpoint, e->status, qs_api_error_json(e));
}

/* Constant-time comparison, so the key cannot be guessed byte by byte from timings. */
static bool authorized(const qs_server *srv, struct MHD_Connection *c) {
    if (!srv->cfg.api_key) return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return false;
    const char *got = h + 7, *want = srv->cfg.api_key;
    const size_t ng = strlen(got), nw = strlen(want);
    unsigned char diff = (unsigned char)(ng != nw);
    for (size_t i = 0; i < nw; i++) diff |= (unsigned char)(want[i] ^ (i < ng ? got[i] : 0));
    return diff == 0;
}

static int append_body(qs_server *srv, http_req *r, const char *data, size_t n) {
    if (r->too_large || r->body.n + n > (size_t)srv->cfg.max_body_bytes) {
        r->too_large = true; /* keep reading (discarding) so the client gets the 413 */
        return 0;
    }
    return qs_bytes_append(&r->body, data, n);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    qs_server *srv = cls;
    http_req *r = *con_cls;
    qs_api_error e;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        *con_cls = r;
        if (atomic_load(&srv->n_connections) > srv->cfg.max_connections) {
            qs_api_fail(&e, 503, "server_error", NULL, "too_many_connections",
                        "too many open connections (limit %d); retry later", srv->cfg.max_connections);
            return qs_reply_error(srv, c, "other", &e);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        const int rc = append_body(srv, r, upload, *upload_size);
        *upload_size = 0;
        return rc == 0 ? MHD_YES : MHD_NO;
    }
    if (r->too_large) {
        qs_api_fail(&e, 413, "invalid_request_error", NULL, "request_too_large",
                    "the request body exceeds %lld bytes", (long long)srv->cfg.max_body_bytes);
        return qs_reply_error(srv, c, "other", &e);
    }
    if (strcmp(url, "/health") != 0 && !authorized(srv, c)) {
        qs_api_fail(&e, 401, "invalid_request_error", NULL, "invalid_api_key",
                    "missing or incorrect API key (send 'Authorization: Bearer KEY')");
        return qs_reply_error(srv, c, "other", &e);
    }
    return qs_route(srv, c, url, method, r->body.s ? r->body.s : "", r->body.n);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode tc) {
    (void)cls;
    (void)c;
    (void)tc;
    http_req *r = *con_cls;
    if (r) qs_bytes_free(&r->body);
    free(r);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx, enum MHD_ConnectionNotificationCode code) {
    (void)c;
    (void)socket_ctx;
    qs_server *srv = cls;
    const int d = code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;
    atomic_fetch_add(&srv->n_connections, d);
    qs_metrics_connections(&srv->metrics, d);
}

static void log_mhd(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    const size_t n = strlen(msg);
    if (n && msg[n - 1] == '\n') msg[n - 1] = 0;
    QR_LOG_DEBUG("http", "%s", msg);
}

int qs_http_start(qs_server *srv, qr_error *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", srv->cfg.port);
    const int gai = getaddrinfo(srv->cfg.host, port, &hints, &ai);
    if (gai != 0) return qr_fail(err, "--host '%s': %s (give a numeric IPv4 or IPv6 address)", srv->cfg.host, gai_strerror(gai));
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    /* libmicrohttpd refuses connections past its own limit silently; ours is checked per
     * request (a JSON 503), so its limit sits a little above. */
    srv->daemon = MHD_start_daemon(flags, (uint16_t)srv->cfg.port, NULL, NULL, on_request, srv,
                                   MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                   MHD_OPTION_CONNECTION_LIMIT, (unsigned)(srv->cfg.max_connections + 16),
                                   MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->cfg.timeout_s,
                                   MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                                   MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
                                   MHD_OPTION_EXTERNAL_LOGGER, log_mhd, srv,
                                   MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!srv->daemon) return qr_fail(err, "cannot listen on %s port %d (in use, or not an address of this host)", srv->cfg.host, srv->cfg.port);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : srv->cfg.port;
    return QR_OK;
}

void qs_http_stop(qs_server *srv) {
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
}
