/* The endpoints: /v1/completions, /v1/chat/completions, /v1/models, /health, /metrics,
 * /tokenize, /detokenize. Generation requests are parsed, turned into prompt tokens
 * (through the chat template for chat), checked against the limits and queued; then the
 * connection's thread waits for the job (or streams it, stream.c). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "server/job.h"
#include "server/request.h"
#include "server/respond.h"
#include "server/server_internal.h"

/* ---- Prompts ---------------------------------------------------------------------------------- */

static qr_token *tokenize(const qr_model *m, const char *text, bool add_special, int32_t *n, qs_api_error *e) {
    char err[256];
    const size_t len = strlen(text);
    int32_t cap = (int32_t)(len < 1000000 ? len : 1000000) + 8;
    qr_token *t = malloc((size_t)cap * sizeof *t);
    if (!t) return NULL;
    int32_t k = qr_model_tokenize(m, text, len, add_special, true, t, cap, err, sizeof err);
    if (k > cap) {
        free(t);
        t = malloc((size_t)k * sizeof *t);
        if (!t) return NULL;
        cap = k;
        k = qr_model_tokenize(m, text, len, add_special, true, t, cap, err, sizeof err);
    }
    if (k < 0) {
        free(t);
        qs_api_fail(e, 400, "invalid_request_error", "prompt", NULL, "cannot tokenize the prompt: %s", err);
        return NULL;
    }
    *n = k;
    return t;
}

static char *render_chat(const qs_server *srv, const qs_request *r, qs_api_error *e) {
    char err[256];
    const int32_t n = qr_chat_format(srv->m, srv->cfg.chat_template, r->messages, r->n_messages, true, NULL, 0,
                                     err, sizeof err);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (n < 0 || !text ||
        qr_chat_format(srv->m, srv->cfg.chat_template, r->messages, r->n_messages, true, text, n + 1, err,
                       sizeof err) < 0) {
        free(text);
        qs_api_fail(e, 400, "invalid_request_error", "messages", NULL, "cannot apply the chat template: %s",
                    n < 0 ? err : "out of memory");
        return NULL;
    }
    return text;
}

/* The request's prompt tokens, checked against the context and --max-prompt-tokens. */
static qr_token *prompt_tokens(qs_server *srv, qs_request *r, int32_t *n, qs_api_error *e) {
    qr_token *t = NULL;
    e->status = 0;
    if (r->prompt_ids) {
        t = r->prompt_ids;
        *n = r->n_prompt_ids;
        r->prompt_ids = NULL;
    } else if (r->kind == QS_CHAT) {
        char *text = render_chat(srv, r, e);
        if (text) t = tokenize(srv->m, text, true, n, e);
        free(text);
    } else {
        t = tokenize(srv->m, r->prompt_text, true, n, e);
    }
    if (!t) {
        if (!e->status) qs_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    const char *param = r->kind == QS_CHAT ? "messages" : "prompt";
    const int32_t limit = srv->cfg.max_prompt_tokens;
    if (*n == 0) {
        qs_api_fail(e, 400, "invalid_request_error", param, NULL, "the prompt is empty");
    } else if (*n > limit) {
        qs_api_fail(e, 400, "invalid_request_error", param, "context_length_exceeded",
                    "the prompt is %d tokens; this server accepts at most %d (context size %d)", *n, limit,
                    qr_ctx_n_ctx(srv->ctx));
    } else {
        return t;
    }
    free(t);
    return NULL;
}

/* ---- Generation ---------------------------------------------------------------------------------- */

static enum MHD_Result wait_and_reply(qs_server *srv, struct MHD_Connection *c, const char *ep, qs_job *j,
                                      const qs_resp_meta *meta) {
    size_t seen = 0;
    qs_finish fin = QS_FINISH_NONE;
    for (;;) {
        qs_job_state(j, &seen, &fin);
        if (fin != QS_FINISH_NONE) break;
        /* Checked on every wake-up, not only on timeouts: a busy job always has news. */
        qs_job_wait(j, seen, 100);
        if (qs_client_gone(c)) {
            qs_job_cancel(j);
            qs_scheduler_poke(srv->sched);
            qs_job_release(j);
            qs_metrics_request(&srv->metrics, ep, 499); /* nginx's "client closed request" */
            return MHD_NO;
        }
    }
    enum MHD_Result rc;
    if (fin == QS_FINISH_ERROR) {
        qs_api_error e;
        qs_api_fail(&e, 500, "server_error", NULL, NULL, "generation failed: %s", j->error);
        rc = qs_reply_error(srv, c, ep, &e);
    } else {
        pthread_mutex_lock(&j->mu);
        char *body = qs_resp_full(meta, j->ev, j->n_ev, fin, j->n_prompt, j->n_cached);
        pthread_mutex_unlock(&j->mu);
        rc = qs_reply_json(srv, c, ep, 200, body);
    }
    qs_job_release(j);
    return rc;
}

static enum MHD_Result generate(qs_server *srv, struct MHD_Connection *c, qs_kind kind, const char *ep,
                                const char *body, size_t len) {
    qs_api_error e;
    qs_request req;
    const qs_limits lim = {srv->cfg.max_tokens, srv->cfg.max_tokens, qr_model_n_vocab(srv->m)};
    if (qs_request_parse(body, len, kind, &lim, &req, &e) != 0) return qs_reply_error(srv, c, ep, &e);
    int32_t n = 0;
    qr_token *toks = prompt_tokens(srv, &req, &n, &e);
    if (!toks) {
        qs_request_free(&req);
        return qs_reply_error(srv, c, ep, &e);
    }
    const uint64_t id = atomic_fetch_add(&srv->next_id, 1);
    qs_job *j = qs_job_create(id, &req.params, toks, n);
    qs_request_free(&req);
    if (!j) {
        free(toks);
        qs_api_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        return qs_reply_error(srv, c, ep, &e);
    }
    if (qs_scheduler_submit(srv->sched, j) != 0) {
        qs_job_release(j);
        qs_api_fail(&e, 503, "server_error", NULL, "queue_full",
                    "the server is busy (%d requests queued); retry after the time in Retry-After",
                    srv->cfg.max_queue);
        return qs_reply_error(srv, c, ep, &e);
    }
    qs_resp_meta meta = {.kind = kind, .created = srv->created, .model = srv->model_name, .m = srv->m,
                         .params = &j->params};
    snprintf(meta.id, sizeof meta.id, "%s-%llu", kind == QS_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)id);
    meta.created = (long long)time(NULL);
    if (j->params.stream) return qs_reply_stream(srv, c, ep, j, &meta);
    return wait_and_reply(srv, c, ep, j, &meta);
}

/* ---- Small endpoints ------------------------------------------------------------------------------ */

static enum MHD_Result models(qs_server *srv, struct MHD_Connection *c) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(root, "data");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", srv->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)srv->created);
    cJSON_AddStringToObject(m, "owned_by", "quarrel");
    cJSON_AddItemToArray(data, m);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return qs_reply_json(srv, c, "models", 200, s);
}

static enum MHD_Result metrics(qs_server *srv, struct MHD_Connection *c) {
    char *text = qs_metrics_render(&srv->metrics);
    if (!text) return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    const enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    qs_metrics_request(&srv->metrics, "metrics", 200);
    return ok;
}

static cJSON *parse_object(const char *body, size_t len, qs_api_error *e) {
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (o && cJSON_IsObject(o)) return o;
    cJSON_Delete(o);
    qs_api_fail(e, 400, "invalid_request_error", NULL, NULL, "the request body must be a JSON object");
    return NULL;
}

/* llama-server's shapes: {"content", "add_special"} -> {"tokens"}. */
static enum MHD_Result tokenize_ep(qs_server *srv, struct MHD_Connection *c, const char *body, size_t len) {
    qs_api_error e;
    cJSON *o = parse_object(body, len, &e);
    if (!o) return qs_reply_error(srv, c, "tokenize", &e);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(o, "add_special");
    if (!cJSON_IsString(content) || (add && !cJSON_IsBool(add))) {
        cJSON_Delete(o);
        qs_api_fail(&e, 400, "invalid_request_error", "content", NULL,
                    "'content' must be a string (and 'add_special' a boolean)");
        return qs_reply_error(srv, c, "tokenize", &e);
    }
    int32_t n = 0;
    qr_token *t = tokenize(srv->m, content->valuestring, add && cJSON_IsTrue(add), &n, &e);
    cJSON_Delete(o);
    if (!t) return qs_reply_error(srv, c, "tokenize", &e);
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "tokens");
    for (int32_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(t[i]));
    free(t);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return qs_reply_json(srv, c, "tokenize", 200, s);
}

/* {"tokens": [ids]} -> {"content": text}. */
static enum MHD_Result detokenize_ep(qs_server *srv, struct MHD_Connection *c, const char *body, size_t len) {
    qs_api_error e;
    cJSON *o = parse_object(body, len, &e);
    if (!o) return qs_reply_error(srv, c, "detokenize", &e);
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(o, "tokens"), *t;
    const int32_t nv = qr_model_n_vocab(srv->m);
    bool ok = cJSON_IsArray(toks);
    size_t cap = 64, n = 0;
    char *text = malloc(cap);
    const cJSON *list = ok ? toks : NULL;
    cJSON_ArrayForEach(t, list) {
        if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble >= nv || t->valuedouble != (int32_t)t->valuedouble) {
            ok = false;
            break;
        }
        char piece[256];
        int32_t k = qr_model_token_to_piece(srv->m, (qr_token)t->valuedouble, false, piece, (int32_t)sizeof piece);
        k = k > (int32_t)sizeof piece ? (int32_t)sizeof piece : k;
        if (text && n + (size_t)k + 1 > cap) {
            cap = 2 * (n + (size_t)k + 1);
            char *grown = realloc(text, cap);
            if (!grown) free(text);
            text = grown;
        }
        if (text) memcpy(text + n, piece, (size_t)k);
        n += (size_t)k;
    }
    cJSON_Delete(o);
    if (!ok || !text) {
        free(text);
        qs_api_fail(&e, 400, "invalid_request_error", "tokens", NULL, "'tokens' must be an array of token ids in [0, %d)", nv);
        return qs_reply_error(srv, c, "detokenize", &e);
    }
    text[n] = 0;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "content", text);
    free(text);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return qs_reply_json(srv, c, "detokenize", 200, s);
}

/* ---- Routing ---------------------------------------------------------------------------------------- */

typedef struct route {
    const char *path, *method, *endpoint;
    int id;
} route;

enum { R_COMPLETIONS, R_CHAT, R_MODELS, R_HEALTH, R_METRICS, R_TOKENIZE, R_DETOKENIZE };

static const route ROUTES[] = {
    {"/v1/completions", "POST", "completions", R_COMPLETIONS},
    {"/completions", "POST", "completions", R_COMPLETIONS},
    {"/v1/chat/completions", "POST", "chat", R_CHAT},
    {"/chat/completions", "POST", "chat", R_CHAT},
    {"/v1/models", "GET", "models", R_MODELS},
    {"/models", "GET", "models", R_MODELS},
    {"/health", "GET", "health", R_HEALTH},
    {"/metrics", "GET", "metrics", R_METRICS},
    {"/tokenize", "POST", "tokenize", R_TOKENIZE},
    {"/detokenize", "POST", "detokenize", R_DETOKENIZE},
};

enum MHD_Result qs_route(qs_server *srv, struct MHD_Connection *c, const char *url, const char *method,
                         const char *body, size_t len) {
    const route *r = NULL;
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        if (strcmp(url, ROUTES[i].path) == 0) r = &ROUTES[i];
    }
    qs_api_error e;
    if (!r) {
        qs_api_fail(&e, 404, "invalid_request_error", NULL, "not_found", "unknown endpoint %s %s", method, url);
        return qs_reply_error(srv, c, "other", &e);
    }
    if (strcmp(method, r->method) != 0) {
        qs_api_fail(&e, 405, "invalid_request_error", NULL, "method_not_allowed", "%s takes %s, not %s", url,
                    r->method, method);
        return qs_reply_error(srv, c, r->endpoint, &e);
    }
    switch (r->id) {
    case R_COMPLETIONS: return generate(srv, c, QS_COMPLETION, r->endpoint, body, len);
    case R_CHAT: return generate(srv, c, QS_CHAT, r->endpoint, body, len);
    case R_MODELS: return models(srv, c);
    case R_METRICS: return metrics(srv, c);
    case R_TOKENIZE: return tokenize_ep(srv, c, body, len);
    case R_DETOKENIZE: return detokenize_ep(srv, c, body, len);
    default: return qs_reply_json(srv, c, "health", 200, strdup("{\"status\":\"ok\"}"));
    }
}
