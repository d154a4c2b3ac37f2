#include "server/respond.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

const char *qs_finish_name(qs_finish f) {
    switch (f) {
    case QS_FINISH_STOP: return "stop";
    case QS_FINISH_LENGTH: return "length";
    case QS_FINISH_CANCELLED: return "cancelled";
    case QS_FINISH_ERROR: return "error";
    default: return NULL;
    }
}

int32_t qs_count_tokens(const qs_event *ev, size_t n_ev) {
    int32_t n = 0;
    for (size_t i = 0; i < n_ev; i++) n += ev[i].token >= 0;
    return n;
}

/* JSON strings must be valid UTF-8: invalid bytes become U+FFFD. */
static char *valid_utf8(const char *s, size_t n) {
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (c == 0) len = 0; /* a NUL would end the C string */
        for (size_t k = 1; len && k < len; k++) {
            if (i + k >= n || ((unsigned char)s[i + k] & 0xC0) != 0x80) len = 0;
        }
        if (!len) {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(o, s + i, len);
        o += len;
        i += len;
    }
    *o = 0;
    return out;
}

static void add_text(cJSON *obj, const char *key, const char *s, size_t n) {
    char *v = valid_utf8(s, n);
    cJSON_AddStringToObject(obj, key, v ? v : "");
    free(v);
}

static char *joined_text(const qs_event *ev, size_t n_ev, size_t *len) {
    size_t n = 0;
    for (size_t i = 0; i < n_ev; i++) n += ev[i].len;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    n = 0;
    for (size_t i = 0; i < n_ev; i++) {
        memcpy(s + n, ev[i].text, ev[i].len);
        n += ev[i].len;
    }
    s[n] = 0;
    *len = n;
    return s;
}

static void add_piece(cJSON *obj, const char *key, const qr_model *m, qr_token t, bool bytes) {
    char piece[256];
    int32_t n = qr_model_token_to_piece(m, t, true, piece, (int32_t)sizeof piece);
    if (n > (int32_t)sizeof piece) n = (int32_t)sizeof piece;
    add_text(obj, key, piece, (size_t)n);
    if (!bytes) return;
    cJSON *arr = cJSON_AddArrayToObject(obj, "bytes");
    for (int32_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber((unsigned char)piece[i]));
}

/* Chat: {"content": [{token, logprob, bytes, top_logprobs: [...]}]}. */
static cJSON *chat_logprobs(const qs_resp_meta *meta, const qs_event *ev, size_t n_ev) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *content = cJSON_AddArrayToObject(lp, "content");
    for (size_t i = 0; i < n_ev; i++) {
        if (ev[i].token < 0) continue;
        cJSON *e = cJSON_CreateObject();
        add_piece(e, "token", meta->m, ev[i].token, true);
        cJSON_AddNumberToObject(e, "logprob", ev[i].logprob);
        cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int32_t k = 0; k < ev[i].n_top; k++) {
            cJSON *t = cJSON_CreateObject();
            add_piece(t, "token", meta->m, ev[i].top[k].token, true);
            cJSON_AddNumberToObject(t, "logprob", ev[i].top[k].logprob);
            cJSON_AddItemToArray(top, t);
        }
        cJSON_AddItemToArray(content, e);
    }
    return lp;
}

/* Completions: {"tokens", "token_logprobs", "top_logprobs": [{text: logprob}], "text_offset"}. */
static cJSON *completion_logprobs(const qs_resp_meta *meta, const qs_event *ev, size_t n_ev, size_t offset) {
    cJSON *lp = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(lp, "tokens"), *tlp = cJSON_AddArrayToObject(lp, "token_logprobs");
    cJSON *top = cJSON_AddArrayToObject(lp, "top_logprobs"), *off = cJSON_AddArrayToObject(lp, "text_offset");
    for (size_t i = 0; i < n_ev; i++) {
        if (ev[i].token >= 0) {
            cJSON *holder = cJSON_CreateObject();
            add_piece(holder, "t", meta->m, ev[i].token, false);
            cJSON_AddItemToArray(tokens, cJSON_DetachItemFromObject(holder, "t"));
            cJSON_Delete(holder);
            cJSON_AddItemToArray(tlp, cJSON_CreateNumber(ev[i].logprob));
            cJSON *alts = cJSON_CreateObject();
            for (int32_t k = 0; k < ev[i].n_top; k++) {
                cJSON *tmp = cJSON_CreateObject();
                add_piece(tmp, "t", meta->m, ev[i].top[k].token, false);
                const char *key = cJSON_GetObjectItem(tmp, "t")->valuestring;
                if (!cJSON_GetObjectItemCaseSensitive(alts, key)) cJSON_AddNumberToObject(alts, key, ev[i].top[k].logprob);
                cJSON_Delete(tmp);
            }
            cJSON_AddItemToArray(top, alts);
            cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
        }
        offset += ev[i].len;
    }
    return lp;
}

static cJSON *envelope(const qs_resp_meta *meta, bool chunk) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", meta->id);
    const char *obj = meta->kind == QS_CHAT ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion";
    cJSON_AddStringToObject(root, "object", obj);
    cJSON_AddNumberToObject(root, "created", (double)meta->created);
    cJSON_AddStringToObject(root, "model", meta->model);
    cJSON_AddStringToObject(root, "system_fingerprint", "quarrel-0.1.0");
    return root;
}

static void add_usage(cJSON *root, int32_t n_prompt, int32_t n_completion, int32_t n_cached) {
    cJSON *u = cJSON_AddObjectToObject(root, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", n_completion);
    cJSON_AddNumberToObject(u, "total_tokens", n_prompt + n_completion);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", n_cached);
}

static void add_finish(cJSON *choice, qs_finish f) {
    const char *name = qs_finish_name(f);
    if (name) cJSON_AddStringToObject(choice, "finish_reason", name);
    else cJSON_AddNullToObject(choice, "finish_reason");
}

static char *print(cJSON *root) {
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static void add_choice_body(const qs_resp_meta *meta, cJSON *choice, const qs_event *ev, size_t n_ev,
                            bool chunk, bool role) {
    size_t len = 0;
    char *text = joined_text(ev, n_ev, &len);
    if (meta->kind == QS_CHAT) {
        cJSON *msg = cJSON_AddObjectToObject(choice, chunk ? "delta" : "message");
        if (role || !chunk) cJSON_AddStringToObject(msg, "role", "assistant");
        add_text(msg, "content", text ? text : "", text ? len : 0);
    } else {
        add_text(choice, "text", text ? text : "", text ? len : 0);
    }
    free(text);
    if (meta->params->logprobs && n_ev > 0) {
        cJSON_AddItemToObject(choice, "logprobs", meta->kind == QS_CHAT ? chat_logprobs(meta, ev, n_ev)
                                                                         : completion_logprobs(meta, ev, n_ev, 0));
    } else {
        cJSON_AddNullToObject(choice, "logprobs");
    }
}

static char *one_choice(const qs_resp_meta *meta, const qs_event *ev, size_t n_ev, bool chunk, bool role,
                        qs_finish f, const int32_t *usage) {
    cJSON *root = envelope(meta, chunk);
    cJSON *choices = cJSON_AddArrayToObject(root, "choices");
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    add_choice_body(meta, choice, ev, n_ev, chunk, role);
    add_finish(choice, f);
    cJSON_AddItemToArray(choices, choice);
    if (usage) add_usage(root, usage[0], usage[1], usage[2]);
    return print(root);
}

char *qs_resp_full(const qs_resp_meta *meta, const qs_event *ev, size_t n_ev, qs_finish f, int32_t n_prompt,
                   int32_t n_cached) {
    const int32_t usage[3] = {n_prompt, qs_count_tokens(ev, n_ev), n_cached};
    return one_choice(meta, ev, n_ev, false, true, f, usage);
}

char *qs_resp_chunk(const qs_resp_meta *meta, const qs_event *ev, size_t n_ev, bool role, qs_finish finish) {
    return one_choice(meta, ev, n_ev, true, role, finish, NULL);
}

char *qs_resp_usage_chunk(const qs_resp_meta *meta, int32_t n_prompt, int32_t n_completion, int32_t n_cached) {
    cJSON *root = envelope(meta, true);
    cJSON_AddArrayToObject(root, "choices");
    add_usage(root, n_prompt, n_completion, n_cached);
    return print(root);
}
