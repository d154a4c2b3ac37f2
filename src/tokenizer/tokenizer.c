#include "tokenizer/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/unicode.h"

struct qr_tokenizer {
    qr_vocab v;
    qr_pretok *pre; /* BPE only */
    qr_gguf *file;  /* opened by qr_tokenizer_load_file: the vocabulary reads its mapping */
};

int qr_ids_push(qr_ids *ids, int32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return QR_ERR;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return QR_OK;
}

int qr_tokenizer_load(const qr_gguf *g, qr_tokenizer **out, qr_error *err) {
    *out = NULL;
    qr_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return qr_fail(err, "out of memory");
    if (qr_vocab_load(g, &t->v, err) != QR_OK) {
        free(t);
        return QR_ERR;
    }
    if (t->v.type == QR_VOCAB_BPE) {
        if (qr_pretok_create(t->v.pre_type, &t->pre, err) != QR_OK) {
            qr_tokenizer_free(t);
            return QR_ERR;
        }
        /* The newline token is whatever "\n" tokenizes to (llama.cpp does the same). */
        int32_t *ids = NULL;
        size_t n = 0;
        if (qr_tokenize(t, "\n", 1, false, false, &ids, &n, err) != QR_OK) {
            qr_tokenizer_free(t);
            return QR_ERR;
        }
        t->v.linefeed = n > 0 ? ids[0] : t->v.pad;
        free(ids);
    }
    *out = t;
    return QR_OK;
}

int qr_tokenizer_load_file(const char *path, qr_tokenizer **out, qr_error *err) {
    qr_gguf *g = NULL;
    *out = NULL;
    if (qr_gguf_open(path, &g, err) != QR_OK) return QR_ERR;
    if (qr_tokenizer_load(g, out, err) != QR_OK) {
        qr_gguf_close(g);
        return QR_ERR;
    }
    (*out)->file = g;
    return QR_OK;
}

void qr_tokenizer_free(qr_tokenizer *t) {
    if (!t) return;
    qr_vocab_free(&t->v);
    qr_pretok_free(t->pre);
    qr_gguf_close(t->file);
    free(t);
}

static int push_special(qr_ids *out, int32_t id) { return id >= 0 ? qr_ids_push(out, id) : QR_OK; }

static int tokenize_fragments(const qr_tokenizer *t, const char *text, const qr_fragments *fr,
                              bool add_special, qr_ids *out, qr_error *err) {
    const qr_vocab *v = &t->v;
    int rc = QR_OK;
    bool prev_special = true; /* SPM: the first fragment gets the space prefix */
    if (add_special && (v->add_bos || v->type == QR_VOCAB_WPM)) rc |= push_special(out, v->bos);
    for (size_t i = 0; i < fr->n && rc == QR_OK; i++) {
        const qr_fragment *f = &fr->v[i];
        if (f->token != QR_TOKEN_NULL) {
            rc = qr_ids_push(out, f->token);
            prev_special = true;
            continue;
        }
        const char *s = text + f->off;
        switch (v->type) {
        case QR_VOCAB_SPM:
            rc = qr_spm_tokenize(v, s, f->len, v->add_space_prefix && prev_special, out, err);
            break;
        case QR_VOCAB_BPE:
            rc = qr_bpe_tokenize(v, t->pre, s, f->len, out, err);
            break;
        case QR_VOCAB_WPM:
            rc = qr_wpm_tokenize(v, s, f->len, out, err);
            break;
        }
        prev_special = false;
    }
    if (rc == QR_OK && add_special) {
        if (v->type == QR_VOCAB_WPM) rc = push_special(out, v->sep);
        else if (v->add_eos) rc = push_special(out, v->eos);
    }
    return rc;
}

int qr_tokenize(const qr_tokenizer *t, const char *text, size_t len, bool add_special,
                bool parse_special, int32_t **ids, size_t *n_ids, qr_error *err) {
    *ids = NULL;
    *n_ids = 0;
    qr_fragments fr = {0};
    qr_ids out = {0};
    int rc = qr_split_special(&t->v, text, len, parse_special, &fr, err);
    if (rc == QR_OK) rc = tokenize_fragments(t, text, &fr, add_special, &out, err);
    free(fr.v);
    if (rc != QR_OK) {
        free(out.v);
        return QR_ERR;
    }
    if (!out.v && !(out.v = malloc(sizeof(int32_t)))) return qr_fail(err, "out of memory");
    *ids = out.v;
    *n_ids = out.n;
    return QR_OK;
}

const char *qr_token_to_piece(const qr_tokenizer *t, int32_t id, bool special, size_t *len) {
    const qr_vocab *v = &t->v;
    *len = 0;
    if (id < 0 || id >= v->n_tokens) return "";
    if (!special && (v->attr[id] & (QR_ATTR_UNKNOWN | QR_ATTR_CONTROL))) return "";
    return qr_vocab_piece(v, id, len);
}

/* llama.cpp's clean_up_tokenization_spaces, pass for pass, in place (the passes read
 * characters the previous writes may have moved, so they are kept literally). */
static size_t clean_spaces(char *text, size_t total) {
    /* " ?", " !", " .", " ," lose the space */
    size_t total1 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < total1; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) total--;
        text[total++] = x;
    }
    /* " ' " becomes "'" */
    size_t total2 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < total2; i++) {
        char x = text[i];
        if (x == '\'' && i + 1 < total2 && text[i - 1] == ' ' && text[i + 1] == ' ') {
            total--;
            text[++i] = '\0';
        }
        text[total++] = x;
    }
    /* " 's", " 'm", " 're", " 've" lose the space */
    size_t total3 = total;
    total = total ? 1 : 0;
    for (size_t i = 1; i < total3; i++) {
        char x = text[i];
        if (text[i - 1] == ' ' && x == '\'' && i + 1 < total3) {
            char x1 = text[i + 1];
            if (x1 == 's' || x1 == 'm') {
                total--;
            } else if (i + 2 < total3) {
                char x2 = text[i + 2];
                if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) total--;
            }
        }
        text[total++] = x;
    }
    return total;
}

int qr_detokenize(const qr_tokenizer *t, const int32_t *ids, size_t n_ids, bool remove_special,
                  bool unparse_special, char **text, size_t *len, qr_error *err) {
    const qr_vocab *v = &t->v;
    *text = NULL;
    *len = 0;
    bool remove_space = v->add_space_prefix;
    if (remove_special && v->add_bos && n_ids > 0 && ids[0] == v->bos) {
        remove_space = false;
        ids++, n_ids--;
    }
    if (remove_special && v->add_eos && n_ids > 0 && ids[n_ids - 1] == v->eos) n_ids--;
    /* One pass into a growing buffer: each piece is looked up once. */
    size_t cap = n_ids * 8 + 16, o = 0;
    char *out = malloc(cap);
    if (!out) return qr_fail(err, "out of memory detokenizing %zu tokens", n_ids);
    for (size_t i = 0; i < n_ids; i++) {
        size_t pl;
        const char *p = qr_token_to_piece(t, ids[i], unparse_special, &pl);
        if (remove_space && pl > 0 && p[0] == ' ') p++, pl--; /* the added leading space */
        remove_space = false;
        if (o + pl >= cap) {
            cap = (o + pl) * 2;
            char *grown = realloc(out, cap);
            if (!grown) {
                free(out);
                return qr_fail(err, "out of memory detokenizing %zu tokens", n_ids);
            }
            out = grown;
        }
        memcpy(out + o, p, pl);
        o += pl;
    }
    if (v->clean_spaces) o = clean_spaces(out, o);
    out[o] = '\0';
    char *fit = realloc(out, o + 1); /* give back the estimate's excess */
    *text = fit ? fit : out;
    *len = o;
    return QR_OK;
}

/* ---- streaming ---------------------------------------------------------------------- */

struct qr_detok_stream {
    const qr_tokenizer *t;
    bool unparse_special;
    bool first;   /* nothing emitted yet: strip SentencePiece's leading space */
    char *buf;    /* held-back incomplete UTF-8 tail, then the text being returned */
    size_t n, cap;
    size_t emitted; /* bytes of buf returned by the last call */
};

qr_detok_stream *qr_detok_stream_new(const qr_tokenizer *t, bool unparse_special) {
    qr_detok_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->t = t;
    s->unparse_special = unparse_special;
    s->first = true;
    return s;
}

void qr_detok_stream_free(qr_detok_stream *s) {
    if (!s) return;
    free(s->buf);
    free(s);
}

static void drop_emitted(qr_detok_stream *s) {
    if (s->emitted == 0) return;
    memmove(s->buf, s->buf + s->emitted, s->n - s->emitted);
    s->n -= s->emitted;
    s->emitted = 0;
}

const char *qr_detok_stream_push(qr_detok_stream *s, int32_t id, size_t *len) {
    drop_emitted(s); /* what the previous call returned; the held-back tail stays */
    size_t pl;
    const char *p = qr_token_to_piece(s->t, id, s->unparse_special, &pl);
    if (s->first) { /* as qr_detokenize: only the very first token loses its space */
        if (s->t->v.add_space_prefix && pl > 0 && p[0] == ' ') p++, pl--;
        s->first = false;
    }
    if (s->n + pl + 1 > s->cap) {
        size_t cap = (s->n + pl + 1) * 2;
        char *b = realloc(s->buf, cap);
        if (!b) return NULL;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->n, p, pl);
    s->n += pl;
    s->emitted = qr_utf8_complete_prefix((const uint8_t *)s->buf, s->n);
    *len = s->emitted;
    return s->buf ? s->buf : "";
}

const char *qr_detok_stream_flush(qr_detok_stream *s, size_t *len) {
    drop_emitted(s);
    *len = s->n;
    s->emitted = s->n;
    s->first = true;
    return s->buf ? s->buf : "";
}

/* ---- facts -------------------------------------------------------------------------- */

int32_t qr_tokenizer_n_vocab(const qr_tokenizer *t) { return t->v.n_tokens; }
int32_t qr_tokenizer_bos(const qr_tokenizer *t) { return t->v.bos; }
int32_t qr_tokenizer_eos(const qr_tokenizer *t) { return t->v.eos; }
int32_t qr_tokenizer_eot(const qr_tokenizer *t) { return t->v.eot; }
int32_t qr_tokenizer_pad(const qr_tokenizer *t) { return t->v.pad; }
int32_t qr_tokenizer_unk(const qr_tokenizer *t) { return t->v.unk; }
int32_t qr_tokenizer_linefeed(const qr_tokenizer *t) { return t->v.linefeed; }
bool qr_tokenizer_add_bos(const qr_tokenizer *t) { return t->v.add_bos; }
bool qr_tokenizer_add_eos(const qr_tokenizer *t) { return t->v.add_eos; }
bool qr_tokenizer_is_eog(const qr_tokenizer *t, int32_t id) { return qr_vocab_is_eog(&t->v, id); }

bool qr_tokenizer_is_control(const qr_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->v.n_tokens && (t->v.attr[id] & (QR_ATTR_CONTROL | QR_ATTR_UNKNOWN));
}

const char *qr_tokenizer_token_text(const qr_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->v.n_tokens) {
        *len = 0;
        return "";
    }
    return qr_vocab_text(&t->v, id, len);
}

int32_t qr_tokenizer_find(const qr_tokenizer *t, const char *text, size_t len) {
    return qr_vocab_find(&t->v, text, len);
}

const char *qr_tokenizer_model(const qr_tokenizer *t) { return t->v.model_name; }
const char *qr_tokenizer_pre(const qr_tokenizer *t) { return t->v.pre_name; }
