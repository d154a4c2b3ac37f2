#include "server/request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BAD(e, param, ...) qs_api_fail(e, 400, "invalid_request_error", param, NULL, __VA_ARGS__)

/* ---- Typed field readers: absent or null leaves *out unchanged ------------------------------- */

static int get_number(const cJSON *o, const char *key, double lo, double hi, double *out, qs_api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return BAD(e, key, "'%s' must be a number", key);
    if (v->valuedouble < lo || v->valuedouble > hi) {
        return BAD(e, key, "'%s' must be between %g and %g (got %g)", key, lo, hi, v->valuedouble);
    }
    *out = v->valuedouble;
    return 0;
}

static int get_float(const cJSON *o, const char *key, double lo, double hi, float *out, qs_api_error *e) {
    double d = *out;
    if (get_number(o, key, lo, hi, &d, e) != 0) return -1;
    *out = (float)d;
    return 0;
}

static int get_int(const cJSON *o, const char *key, double lo, double hi, int64_t *out, qs_api_error *e) {
    double d = NAN;
    if (get_number(o, key, lo, hi, &d, e) != 0) return -1;
    if (isnan(d)) return 0; /* absent */
    if (d != floor(d)) return BAD(e, key, "'%s' must be an integer (got %g)", key, d);
    *out = (int64_t)d;
    return 0;
}

static int get_i32(const cJSON *o, const char *key, double lo, double hi, int32_t *out, qs_api_error *e) {
    int64_t v = *out;
    if (get_int(o, key, lo, hi, &v, e) != 0) return -1;
    *out = (int32_t)v;
    return 0;
}

static int get_bool(const cJSON *o, const char *key, bool *out, qs_api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return BAD(e, key, "'%s' must be a boolean", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static char *dup_str(const char *s) {
    const size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- Composite fields ------------------------------------------------------------------------ */

static int parse_stop(const cJSON *o, qs_params *p, qs_api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "stop");
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0]) return 0;
        p->stop[p->n_stop++] = dup_str(v->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(v)) return BAD(e, "stop", "'stop' must be a string or an array of strings");
    if (cJSON_GetArraySize(v) > QS_MAX_STOP) return BAD(e, "stop", "'stop' holds at most %d strings", QS_MAX_STOP);
    const cJSON *s;
    cJSON_ArrayForEach(s, v) {
        if (!cJSON_IsString(s)) return BAD(e, "stop", "'stop' must be a string or an array of strings");
        if (s->valuestring[0]) p->stop[p->n_stop++] = dup_str(s->valuestring);
    }
    return 0;
}

static int parse_logit_bias(const cJSON *o, const qs_limits *lim, qs_params *p, qs_api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "logit_bias");
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsObject(v)) return BAD(e, "logit_bias", "'logit_bias' must be an object of token id -> bias");
    const int n = cJSON_GetArraySize(v);
    p->bias = calloc((size_t)(n > 0 ? n : 1), sizeof *p->bias);
    if (!p->bias) return qs_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *b;
    cJSON_ArrayForEach(b, v) {
        char *end;
        const long id = strtol(b->string, &end, 10);
        if (end == b->string || *end || id < 0 || id >= lim->n_vocab) {
            return BAD(e, "logit_bias", "logit_bias key '%s' is not a token id in [0, %d)", b->string, lim->n_vocab);
        }
        if (!cJSON_IsNumber(b) || b->valuedouble < -100 || b->valuedouble > 100) {
            return BAD(e, "logit_bias", "logit_bias of token %ld must be a number in [-100, 100]", id);
        }
        /* OpenAI: -100 bans the token. */
        const float bias = b->valuedouble <= -100 ? -INFINITY : (float)b->valuedouble;
        p->bias[p->n_bias++] = (qs_bias){(qr_token)id, bias};
    }
    return 0;
}

static int parse_logprobs(const cJSON *o, qs_kind kind, qs_params *p, qs_api_error *e) {
    if (kind == QS_COMPLETION) {
        /* Completions: logprobs is the number of alternatives (0 = the chosen token only). */
        int32_t n = -1;
        if (get_i32(o, "logprobs", 0, QS_MAX_TOP_LOGPROBS, &n, e) != 0) return -1;
        p->logprobs = n >= 0;
        p->top_logprobs = n > 0 ? n : 0;
        return 0;
    }
    if (get_bool(o, "logprobs", &p->logprobs, e) != 0) return -1;
    if (get_i32(o, "top_logprobs", 0, QS_MAX_TOP_LOGPROBS, &p->top_logprobs, e) != 0) return -1;
    if (p->top_logprobs > 0 && !p->logprobs) return BAD(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
    return 0;
}

static int parse_stream(const cJSON *o, qs_params *p, qs_api_error *e) {
    if (get_bool(o, "stream", &p->stream, e) != 0) return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(o, "stream_options");
    if (!so || cJSON_IsNull(so)) return 0;
    if (!cJSON_IsObject(so)) return BAD(e, "stream_options", "'stream_options' must be an object");
    return get_bool(so, "include_usage", &p->include_usage, e);
}

/* Sampling defaults are llama-server's (temperature 0.8, top-k 40, top-p 0.95, min-p 0.05). */
static int parse_params(const cJSON *o, qs_kind kind, const qs_limits *lim, qs_params *p, qs_api_error *e) {
    memset(p, 0, sizeof *p);
    p->max_tokens = kind == QS_CHAT ? lim->default_max_tokens_chat : 16;
    if (p->max_tokens > lim->max_tokens) p->max_tokens = lim->max_tokens;
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    int32_t n = 1;
    int64_t seed = -1;
    const double big = 2147483647.0;
    if (get_i32(o, "max_tokens", -big, big, &p->max_tokens, e) != 0) return -1;
    if (kind == QS_CHAT && get_i32(o, "max_completion_tokens", -big, big, &p->max_tokens, e) != 0) return -1;
    if (p->max_tokens <= 0) return BAD(e, "max_tokens", "'max_tokens' must be at least 1 (got %d)", p->max_tokens);
    if (p->max_tokens > lim->max_tokens) {
        return BAD(e, "max_tokens", "'max_tokens' is %d; this server allows at most %d", p->max_tokens,
                   lim->max_tokens);
    }
    if (get_float(o, "temperature", 0, 100, &p->temperature, e) != 0) return -1;
    if (get_float(o, "top_p", 0, 1, &p->top_p, e) != 0) return -1;
    if (p->top_p <= 0) p->top_p = 1e-9f; /* top_p 0 keeps the single most likely token */
    if (get_i32(o, "top_k", -1, big, &p->top_k, e) != 0) return -1;
    if (get_float(o, "min_p", 0, 1, &p->min_p, e) != 0) return -1;
    if (get_float(o, "presence_penalty", -2, 2, &p->presence_penalty, e) != 0) return -1;
    if (get_float(o, "frequency_penalty", -2, 2, &p->frequency_penalty, e) != 0) return -1;
    if (get_int(o, "seed", -9007199254740991.0, 9007199254740991.0, &seed, e) != 0) return -1;
    p->has_seed = cJSON_GetObjectItemCaseSensitive(o, "seed") && seed >= 0;
    p->seed = (uint64_t)(seed >= 0 ? seed : 0);
    if (get_i32(o, "n", 1, big, &n, e) != 0) return -1;
    if (n != 1) return BAD(e, "n", "only n = 1 is supported (got %d)", n);
    if (get_i32(o, "priority", -1000000, 1000000, &p->priority, e) != 0) return -1;
    if (get_bool(o, "ignore_eos", &p->ignore_eos, e) != 0) return -1;
    if (parse_stop(o, p, e) != 0 || parse_logit_bias(o, lim, p, e) != 0) return -1;
    if (parse_logprobs(o, kind, p, e) != 0 || parse_stream(o, p, e) != 0) return -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (model && !cJSON_IsNull(model) && !cJSON_IsString(model)) return BAD(e, "model", "'model' must be a string");
    return 0;
}

/* ---- Prompts and messages ---------------------------------------------------------------------- */

static int parse_token_array(const cJSON *v, const qs_limits *lim, qs_request *r, qs_api_error *e) {
    const int n = cJSON_GetArraySize(v);
    r->prompt_ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *r->prompt_ids);
    if (!r->prompt_ids) return qs_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *t;
    cJSON_ArrayForEach(t, v) {
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
            t->valuedouble >= lim->n_vocab) {
            return BAD(e, "prompt", "prompt token %d is not a token id in [0, %d)", r->n_prompt_ids, lim->n_vocab);
        }
        r->prompt_ids[r->n_prompt_ids++] = (qr_token)t->valuedouble;
    }
    return 0;
}

static int parse_prompt(const cJSON *o, const qs_limits *lim, qs_request *r, qs_api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    if (!v) return BAD(e, "prompt", "'prompt' is required");
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 && cJSON_IsString(cJSON_GetArrayItem(v, 0))) {
        v = cJSON_GetArrayItem(v, 0);
    }
    if (cJSON_IsString(v)) {
        r->prompt_text = dup_str(v->valuestring);
        return r->prompt_text ? 0 : qs_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0 && cJSON_IsNumber(cJSON_GetArrayItem(v, 0))) {
        return parse_token_array(v, lim, r, e);
    }
    if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 1) {
        return BAD(e, "prompt", "only one prompt per request is supported (n = 1)");
    }
    return BAD(e, "prompt", "'prompt' must be a string, an array of one string, or an array of token ids");
}

/* A message's content: a string, or an array of {"type": "text", "text": ...} parts. */
static char *message_text(const cJSON *c, qs_api_error *e) {
    if (!c || cJSON_IsNull(c)) return dup_str("");
    if (cJSON_IsString(c)) return dup_str(c->valuestring);
    if (!cJSON_IsArray(c)) {
        BAD(e, "messages", "a message's 'content' must be a string or an array of text parts");
        return NULL;
    }
    size_t len = 0;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text)) {
            BAD(e, "messages", "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
            return NULL;
        }
        len += strlen(text->valuestring);
    }
    char *s = malloc(len + 1);
    if (!s) return NULL;
    s[0] = 0;
    cJSON_ArrayForEach(part, c) strcat(s, cJSON_GetObjectItemCaseSensitive(part, "text")->valuestring);
    return s;
}

static int parse_messages(const cJSON *o, qs_request *r, qs_api_error *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!v) return BAD(e, "messages", "'messages' is required");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
        return BAD(e, "messages", "'messages' must be a non-empty array of {role, content} objects");
    }
    r->messages = calloc((size_t)cJSON_GetArraySize(v), sizeof *r->messages);
    if (!r->messages) return qs_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, v) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            return BAD(e, "messages", "message %d must be an object with a string 'role'", r->n_messages);
        }
        e->status = 0;
        char *text = message_text(cJSON_GetObjectItemCaseSensitive(m, "content"), e);
        if (!text) return e->status ? -1 : qs_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
        qr_chat_message *dst = &r->messages[r->n_messages++];
        dst->content = text;
        dst->role = dup_str(role->valuestring);
        if (!dst->role) return qs_api_fail(e, 500, "server_error", NULL, NULL, "out of memory");
    }
    return 0;
}

int qs_request_parse(const char *body, size_t len, qs_kind kind, const qs_limits *lim, qs_request *out,
                     qs_api_error *e) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) return BAD(e, NULL, "the request body is not valid JSON");
    int rc = -1;
    if (!cJSON_IsObject(o)) {
        BAD(e, NULL, "the request body must be a JSON object");
    } else if (parse_params(o, kind, lim, &out->params, e) == 0) {
        rc = kind == QS_CHAT ? parse_messages(o, out, e) : parse_prompt(o, lim, out, e);
    }
    cJSON_Delete(o);
    if (rc != 0) qs_request_free(out);
    return rc;
}

void qs_request_free(qs_request *r) {
    qs_params_free(&r->params);
    free(r->prompt_text);
    free(r->prompt_ids);
    for (int32_t i = 0; i < r->n_messages; i++) {
        free((char *)r->messages[i].role);
        free((char *)r->messages[i].content);
    }
    free(r->messages);
    memset(r, 0, sizeof *r);
}
