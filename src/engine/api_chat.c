/* Public chat-template entry points (include/quarrel.h): the model's own template and
 * rendering through src/tokenizer/chat_template.h with the vocabulary's BOS/EOS texts. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quarrel.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"

#define CHAT_TEMPLATE_KEY "tokenizer.chat_template"

static const qr_gguf_kv *find_template(const qr_model *m) {
    const qr_gguf_kv *kv = qr_gguf_find_kv(m->gguf, CHAT_TEMPLATE_KEY);
    return kv && kv->value.type == QR_GGUF_STRING ? kv : NULL;
}

int32_t qr_model_chat_template(const qr_model *m, char *buf, int32_t cap) {
    const qr_gguf_kv *kv = find_template(m);
    if (!kv || kv->value.v.str.len > INT32_MAX - 1) return -1;
    const int32_t len = (int32_t)kv->value.v.str.len;
    if (buf && cap > 0) {
        const int32_t n = len < cap - 1 ? len : cap - 1;
        memcpy(buf, kv->value.v.str.ptr, (size_t)n);
        buf[n] = '\0';
    }
    return len;
}

/* A NUL-terminated copy of a special token's text, or NULL when the vocabulary has none. */
static char *token_text(const qr_model *m, qr_token t) {
    if (t < 0) return NULL;
    size_t len = 0;
    const char *p = qr_token_to_piece(m->tok, t, true, &len);
    char *s = malloc(len + 1);
    if (!s) return NULL;
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* A name wins over detection ("gemma" is also a substring cue), then Jinja source. */
static int resolve_style(const qr_model *m, const char *tmpl, qr_chat_style *style, qr_error *e) {
    if (tmpl) {
        if (qr_chat_template_from_name(tmpl, style, e) == QR_OK) return QR_OK;
        return qr_chat_template_detect(tmpl, style, e);
    }
    const qr_gguf_kv *kv = find_template(m);
    if (!kv) {
        return qr_fail(e, "%s: the model has no '%s' key; name a template (e.g. --chat-template chatml)",
                       qr_gguf_path(m->gguf), CHAT_TEMPLATE_KEY);
    }
    char *src = malloc(kv->value.v.str.len + 1);
    if (!src) return qr_fail(e, "out of memory");
    memcpy(src, kv->value.v.str.ptr, kv->value.v.str.len);
    src[kv->value.v.str.len] = '\0';
    const int rc = qr_chat_template_detect(src, style, e);
    free(src);
    if (rc != QR_OK) qr_fail_prefix(e, "%s: %s: ", qr_gguf_path(m->gguf), CHAT_TEMPLATE_KEY);
    return rc;
}

static int render(const qr_model *m, const char *tmpl, const qr_chat_message *msgs, int32_t n_msgs,
                  bool add_generation_prompt, char **out, qr_error *e) {
    qr_chat_style style;
    if (resolve_style(m, tmpl, &style, e) != QR_OK) return QR_ERR;
    qr_chat_msg *cm = malloc((size_t)(n_msgs > 0 ? n_msgs : 1) * sizeof *cm);
    char *bos = token_text(m, qr_tokenizer_bos(m->tok));
    char *eos = token_text(m, qr_tokenizer_eos(m->tok));
    int rc = QR_ERR;
    if (!cm) {
        qr_fail(e, "out of memory");
    } else {
        for (int32_t i = 0; i < n_msgs; i++) cm[i] = (qr_chat_msg){msgs[i].role, msgs[i].content};
        rc = qr_chat_apply(&style, cm, (size_t)n_msgs, add_generation_prompt, bos, eos, out, e);
    }
    free(cm);
    free(bos);
    free(eos);
    return rc;
}

int32_t qr_chat_format(const qr_model *m, const char *tmpl, const qr_chat_message *msgs, int32_t n_msgs,
                       bool add_generation_prompt, char *buf, int32_t cap, char *err, size_t err_size) {
    qr_error e = {{0}};
    char *text = NULL;
    int32_t len = -1;
    if (!m || (!msgs && n_msgs > 0) || n_msgs < 0) {
        qr_fail(&e, "qr_chat_format: model and messages must not be NULL");
    } else if (render(m, tmpl, msgs, n_msgs, add_generation_prompt, &text, &e) == QR_OK) {
        const size_t n = strlen(text);
        if (n > INT32_MAX - 1) {
            qr_fail(&e, "rendered conversation is too long (%zu bytes)", n);
        } else {
            len = (int32_t)n;
            if (buf && cap > 0) {
                const int32_t k = len < cap - 1 ? len : cap - 1;
                memcpy(buf, text, (size_t)k);
                buf[k] = '\0';
            }
        }
    }
    free(text);
    if (len < 0 && err && err_size > 0) snprintf(err, err_size, "%s", e.msg);
    return len;
}
