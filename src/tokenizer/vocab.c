#include "tokenizer/vocab.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "tokenizer/bpe_pretok.h"
#include "tokenizer/unicode.h"

#define K_MODEL "tokenizer.ggml.model"
#define K_PRE "tokenizer.ggml.pre"
#define K_TOKENS "tokenizer.ggml.tokens"
#define K_SCORES "tokenizer.ggml.scores"
#define K_TYPES "tokenizer.ggml.token_type"
#define K_MERGES "tokenizer.ggml.merges"

/* ---- metadata helpers ---------------------------------------------------------- */

static bool is_int_type(qr_gguf_vtype t) {
    return t == QR_GGUF_UINT8 || t == QR_GGUF_INT8 || t == QR_GGUF_UINT16 || t == QR_GGUF_INT16 ||
           t == QR_GGUF_UINT32 || t == QR_GGUF_INT32 || t == QR_GGUF_UINT64 || t == QR_GGUF_INT64;
}

static int64_t int_value(const qr_gguf_value *v) {
    switch (v->type) {
    case QR_GGUF_INT8: case QR_GGUF_INT16: case QR_GGUF_INT32: case QR_GGUF_INT64:
        return v->v.i64;
    default:
        return v->v.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v->v.u64;
    }
}

/* Optional bool key: leaves *out alone when absent; a present key of another type is an
 * error naming it. */
static int opt_bool(const qr_gguf *g, const char *key, bool *out, qr_error *err) {
    const qr_gguf_kv *kv = qr_gguf_find_kv(g, key);
    if (!kv) return QR_OK;
    if (kv->value.type != QR_GGUF_BOOL) {
        return qr_fail(err, "%s: key '%s' has type %s, expected bool", qr_gguf_path(g), key,
                       qr_gguf_vtype_name(kv->value.type));
    }
    *out = kv->value.v.u64 != 0;
    return QR_OK;
}

static int opt_str(const qr_gguf *g, const char *key, char **out, qr_error *err) {
    *out = NULL;
    const qr_gguf_kv *kv = qr_gguf_find_kv(g, key);
    if (!kv) return QR_OK;
    return qr_gguf_get_str(g, key, out, err);
}

static int32_t arr_i32(const qr_gguf_value *arr, uint64_t i) {
    int32_t x;
    memcpy(&x, arr->v.arr.data + 4 * i, 4);
    return x;
}

/* ---- model type and defaults --------------------------------------------------- */

static int set_model_defaults(qr_vocab *v, const char *path, qr_error *err) {
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->mask = QR_TOKEN_NULL;
    v->fim_pre = v->fim_suf = v->fim_mid = v->fim_pad = v->fim_rep = v->fim_sep = QR_TOKEN_NULL;
    v->linefeed = QR_TOKEN_NULL;
    v->escape_whitespaces = true;
    v->norm_lowercase = v->norm_strip_accents = true;
    if (strcmp(v->model_name, "llama") == 0) {
        v->type = QR_VOCAB_SPM;
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_space_prefix = true;
        v->add_bos = true;
    } else if (strcmp(v->model_name, "bert") == 0) {
        v->type = QR_VOCAB_WPM;
        v->bos = 101, v->unk = 100, v->sep = 102, v->pad = 0, v->mask = 103;
        v->add_bos = true, v->add_sep = true;
        v->clean_spaces = true;
    } else if (strcmp(v->model_name, "gpt2") == 0) {
        v->type = QR_VOCAB_BPE;
        v->bos = 11, v->eos = 11;
        v->escape_whitespaces = false;
        v->clean_spaces = true;
    } else {
        return qr_fail(err, "%s: unsupported tokenizer.ggml.model '%s' (supported: llama, gpt2, bert)",
                       path, v->model_name);
    }
    return QR_OK;
}

static int apply_pre(qr_vocab *v, const char *path, qr_error *err) {
    if (v->type != QR_VOCAB_BPE) {
        v->pre_type = 0;
        return QR_OK;
    }
    if (v->pre_name[0] == '\0') {
        QR_LOG_WARN("tokenizer", "%s: missing tokenizer.ggml.pre, using 'default' (quality may suffer)", path);
    }
    unsigned flags = 0;
    if (qr_pretok_lookup(v->pre_name, &v->pre_type, &flags, err) != QR_OK) {
        return qr_fail_prefix(err, "%s: ", path);
    }
    if (flags & QR_PRE_CLEAN_SPACES_OFF) v->clean_spaces = false;
    if (flags & QR_PRE_IGNORE_MERGES) v->ignore_merges = true;
    if (flags & QR_PRE_ADD_BOS) v->add_bos = true;
    if (flags & QR_PRE_ADD_SEP) v->add_sep = true;
    if (flags & QR_PRE_NO_BOS) v->bos = QR_TOKEN_NULL;
    return QR_OK;
}

/* ---- tokens --------------------------------------------------------------------- */

static uint8_t attr_of_type(int32_t type) {
    switch (type) {
    case QR_TOKEN_TYPE_UNKNOWN: return QR_ATTR_UNKNOWN;
    case QR_TOKEN_TYPE_UNUSED: return QR_ATTR_UNUSED;
    case QR_TOKEN_TYPE_NORMAL: return QR_ATTR_NORMAL;
    case QR_TOKEN_TYPE_CONTROL: return QR_ATTR_CONTROL;
    case QR_TOKEN_TYPE_USER_DEFINED: return QR_ATTR_USER_DEFINED;
    case QR_TOKEN_TYPE_BYTE: return QR_ATTR_BYTE;
    default: return 0;
    }
}

static int load_tokens(const qr_gguf *g, qr_vocab *v, qr_error *err) {
    const char *path = qr_gguf_path(g);
    const qr_gguf_value *toks = NULL;
    if (!qr_gguf_find_kv(g, K_TOKENS)) {
        return qr_fail(err, "%s: key '%s' is missing (no vocabulary)", path, K_TOKENS);
    }
    if (qr_gguf_get_arr(g, K_TOKENS, QR_GGUF_STRING, &toks, err) != QR_OK) return QR_ERR;
    if (toks->v.arr.count == 0 || toks->v.arr.count > INT32_MAX / 2) {
        return qr_fail(err, "%s: '%s' has %llu entries", path, K_TOKENS,
                       (unsigned long long)toks->v.arr.count);
    }
    int32_t n = (int32_t)toks->v.arr.count;
    const qr_gguf_value *scores = NULL, *types = NULL;
    if (qr_gguf_find_kv(g, K_SCORES)) {
        if (qr_gguf_get_arr(g, K_SCORES, QR_GGUF_VTYPE_COUNT, &scores, err) != QR_OK) return QR_ERR;
        qr_gguf_vtype et = scores->v.arr.elem_type;
        if (et != QR_GGUF_FLOAT32 && et != QR_GGUF_INT32) {
            return qr_fail(err, "%s: '%s' holds %s, expected float32 or int32", path, K_SCORES,
                           qr_gguf_vtype_name(et));
        }
        if (scores->v.arr.count < (uint64_t)n) {
            return qr_fail(err, "%s: '%s' has %llu entries for %d tokens", path, K_SCORES,
                           (unsigned long long)scores->v.arr.count, n);
        }
    }
    if (qr_gguf_find_kv(g, K_TYPES)) {
        if (qr_gguf_get_arr(g, K_TYPES, QR_GGUF_INT32, &types, err) != QR_OK) return QR_ERR;
        if (types->v.arr.count < (uint64_t)n) {
            return qr_fail(err, "%s: '%s' has %llu entries for %d tokens", path, K_TYPES,
                           (unsigned long long)types->v.arr.count, n);
        }
    }
    v->n_tokens = n;
    v->scores = scores ? scores->v.arr.data : NULL;
    v->scores_int = scores && scores->v.arr.elem_type == QR_GGUF_INT32;
    /* Empty texts become "[EMPTY_<i>]" as in llama.cpp. */
    if (qr_strtab_load(&v->texts, toks, true, path, K_TOKENS, err) != QR_OK) return QR_ERR;
    v->attr = malloc(sizeof(uint8_t) * (size_t)n);
    if (!v->attr || qr_strmap_init(&v->text_to_id, &v->texts, (size_t)n) != QR_OK) {
        return qr_fail(err, "%s: out of memory for %d tokens", path, n);
    }
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        qr_vocab_text(v, i, &len);
        if (len > QR_VOCAB_MAX_TOKEN_LEN) {
            return qr_fail(err, "%s: token %d is %zu bytes long; at most %u are supported", path, i, len,
                           QR_VOCAB_MAX_TOKEN_LEN);
        }
        if ((int32_t)len > v->max_token_len) v->max_token_len = (int32_t)len;
        v->attr[i] = types ? attr_of_type(arr_i32(types, (uint64_t)i)) : QR_ATTR_NORMAL;
        if (qr_strmap_put(&v->text_to_id, (uint32_t)i) != QR_OK) {
            return qr_fail(err, "%s: out of memory for %d tokens", path, n);
        }
    }
    return QR_OK;
}

static int load_merges(const qr_gguf *g, qr_vocab *v, qr_error *err) {
    const char *path = qr_gguf_path(g);
    const qr_gguf_value *m = NULL;
    if (!qr_gguf_find_kv(g, K_MERGES)) {
        return qr_fail(err, "%s: key '%s' is missing (a gpt2 tokenizer needs merges)", path, K_MERGES);
    }
    if (qr_gguf_get_arr(g, K_MERGES, QR_GGUF_STRING, &m, err) != QR_OK) return QR_ERR;
    /* The merge queue orders by -(float)rank, exact only below 2^24. */
    if (m->v.arr.count > (1u << 24)) {
        return qr_fail(err, "%s: key '%s' has %llu merges; at most %u are supported", path, K_MERGES,
                       (unsigned long long)m->v.arr.count, 1u << 24);
    }
    int32_t n = (int32_t)m->v.arr.count;
    if (qr_strtab_load(&v->merge_texts, m, false, path, K_MERGES, err) != QR_OK) return QR_ERR;
    if (qr_strmap_init(&v->merges, &v->merge_texts, (size_t)n) != QR_OK) {
        return qr_fail(err, "%s: out of memory for %d merges", path, n);
    }
    for (int32_t i = 0; i < n; i++) {
        size_t len;
        const char *t = qr_strtab_get(&v->merge_texts, (uint32_t)i, &len);
        /* A merge without a space at index >= 1 never matches (qr_vocab_merge_rank);
         * llama.cpp keeps the first rank of a repeated merge (map emplace). */
        if (len < 2 || !memchr(t + 1, ' ', len - 1) || qr_strmap_get(&v->merges, t, len) >= 0) continue;
        if (qr_strmap_put(&v->merges, (uint32_t)i) != QR_OK) {
            return qr_fail(err, "%s: out of memory for %d merges", path, n);
        }
    }
    v->n_merges = n;
    return QR_OK;
}

/* ---- special tokens --------------------------------------------------------------- */

static int read_special_ids(const qr_gguf *g, qr_vocab *v, qr_error *err) {
    struct { const char *key; int32_t *id; } keys[] = {
        {"tokenizer.ggml.bos_token_id", &v->bos},
        {"tokenizer.ggml.eos_token_id", &v->eos},
        {"tokenizer.ggml.eot_token_id", &v->eot},
        {"tokenizer.ggml.eom_token_id", &v->eom},
        {"tokenizer.ggml.unknown_token_id", &v->unk},
        {"tokenizer.ggml.seperator_token_id", &v->sep},
        {"tokenizer.ggml.padding_token_id", &v->pad},
        {"tokenizer.ggml.mask_token_id", &v->mask},
        {"tokenizer.ggml.fim_pre_token_id", &v->fim_pre},
        {"tokenizer.ggml.fim_suf_token_id", &v->fim_suf},
        {"tokenizer.ggml.fim_mid_token_id", &v->fim_mid},
        {"tokenizer.ggml.fim_pad_token_id", &v->fim_pad},
        {"tokenizer.ggml.fim_rep_token_id", &v->fim_rep},
        {"tokenizer.ggml.fim_sep_token_id", &v->fim_sep},
        {"tokenizer.ggml.prefix_token_id", &v->fim_pre}, /* deprecated spellings */
        {"tokenizer.ggml.suffix_token_id", &v->fim_suf},
        {"tokenizer.ggml.middle_token_id", &v->fim_mid},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int32_t *id = keys[i].id;
        if (*id >= v->n_tokens) {
            QR_LOG_WARN("tokenizer", "default special token '%s' = %d out of vocab range, disabling",
                        keys[i].key, *id);
            *id = QR_TOKEN_NULL;
        }
        const qr_gguf_kv *kv = qr_gguf_find_kv(g, keys[i].key);
        if (!kv) continue;
        if (!is_int_type(kv->value.type)) {
            return qr_fail(err, "%s: key '%s' has type %s, expected an integer", qr_gguf_path(g),
                           keys[i].key, qr_gguf_vtype_name(kv->value.type));
        }
        int64_t x = int_value(&kv->value);
        if (x < 0 || x >= v->n_tokens) {
            QR_LOG_WARN("tokenizer", "bad special token '%s' = %lld, using default id %d", keys[i].key,
                        (long long)x, *id);
        } else {
            *id = (int32_t)x;
        }
    }
    return QR_OK;
}

static int32_t find_cstr(const qr_vocab *v, const char *s) { return qr_vocab_find(v, s, strlen(s)); }

/* Returns the first of `names` present in the vocabulary (NULL-terminated list). */
static int32_t find_any(const qr_vocab *v, const char *const *names) {
    for (; *names; names++) {
        int32_t id = find_cstr(v, *names);
        if (id >= 0) return id;
    }
    return QR_TOKEN_NULL;
}

static void force_control(qr_vocab *v, int32_t id) {
    if (!(v->attr[id] & QR_ATTR_CONTROL)) {
        size_t len;
        const char *t = qr_vocab_text(v, id, &len);
        QR_LOG_DEBUG("tokenizer", "control-looking token %d '%.*s' was not control-type; overriding",
                     id, (int)len, t);
        v->attr[id] |= QR_ATTR_CONTROL;
    }
}

/* Fills an unset special id from its usual texts, and marks the token as control. */
static void detect_by_text(qr_vocab *v, int32_t *id, const char *const *names) {
    if (*id != QR_TOKEN_NULL) return;
    *id = find_any(v, names);
    if (*id != QR_TOKEN_NULL) force_control(v, *id);
}

static void detect_special_tokens(qr_vocab *v) {
    static const char *const eot[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
        "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]",
        "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<end_of_utterance>", NULL};
    static const char *const eom[] = {"<|eom_id|>", NULL};
    static const char *const fim_pre[] = {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>", "\xE2\x96\x81<PRE>",
        "<|code_prefix|>", "<|prefix|>", NULL};
    static const char *const fim_suf[] = {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>", "\xE2\x96\x81<SUF>",
        "<|code_suffix|>", "<|suffix|>", NULL};
    static const char *const fim_mid[] = {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
        "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>", "\xE2\x96\x81<MID>",
        "<|code_middle|>", "<|middle|>", NULL};
    static const char *const fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
    static const char *const fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
        "<reponame>", NULL};
    static const char *const fim_sep[] = {"<|file_sep|>", NULL};
    detect_by_text(v, &v->eot, eot);
    detect_by_text(v, &v->eom, eom);
    detect_by_text(v, &v->fim_pre, fim_pre);
    detect_by_text(v, &v->fim_suf, fim_suf);
    detect_by_text(v, &v->fim_mid, fim_mid);
    detect_by_text(v, &v->fim_pad, fim_pad);
    detect_by_text(v, &v->fim_rep, fim_rep);
    detect_by_text(v, &v->fim_sep, fim_sep);

    /* Control tokens named "...unused..." are unused. */
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (!(v->attr[i] & QR_ATTR_CONTROL) || (v->attr[i] & QR_ATTR_UNUSED)) continue;
        size_t len;
        const char *t = qr_vocab_text(v, i, &len);
        if (memmem(t, len, "unused", 6)) v->attr[i] |= QR_ATTR_UNUSED;
    }
}

static int add_eog(qr_vocab *v, int32_t id) {
    if (id < 0 || id >= v->n_tokens) return QR_OK;
    for (size_t i = 0; i < v->n_eog; i++) {
        if (v->eog[i] == id) return QR_OK;
    }
    int32_t *p = realloc(v->eog, sizeof(int32_t) * (v->n_eog + 1));
    if (!p) return QR_ERR;
    v->eog = p;
    v->eog[v->n_eog++] = id;
    return QR_OK;
}

static void remove_eog(qr_vocab *v, int32_t id) {
    for (size_t i = 0; i < v->n_eog; i++) {
        if (v->eog[i] == id) {
            v->eog[i] = v->eog[--v->n_eog];
            return;
        }
    }
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int build_eog(qr_vocab *v, qr_error *err) {
    static const char *const eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>",
        "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>",
        "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
        "<turn|>", "<|tool_response>",
        "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~[", NULL};
    int rc = add_eog(v, v->fim_pad) | add_eog(v, v->fim_rep) | add_eog(v, v->fim_sep);
    for (const char *const *t = eog_texts; *t; t++) {
        int32_t id = find_cstr(v, *t);
        if (id < 0) continue;
        rc |= add_eog(v, id);
        force_control(v, id);
    }
    /* gpt-oss: these are always rendered. */
    static const char *const user_defined[] = {"<|channel|>", "<|message|>", "<|start|>",
                                               "<|constrain|>", NULL};
    for (const char *const *t = user_defined; *t; t++) {
        int32_t id = find_cstr(v, *t);
        if (id >= 0) v->attr[id] = QR_ATTR_USER_DEFINED;
    }
    rc |= add_eog(v, v->eos) | add_eog(v, v->eot) | add_eog(v, v->eom);
    if (rc != QR_OK) return qr_fail(err, "out of memory building the end-of-generation set");
    /* o200k_harmony / solar-open: "<|end|>" is not an end of generation there. */
    int32_t end_id = find_cstr(v, "<|end|>");
    bool has_return = find_cstr(v, "<|return|>") >= 0;
    bool has_call = find_cstr(v, "<|call|>") >= 0 || find_cstr(v, "<|calls|>") >= 0;
    bool has_flush = find_cstr(v, "<|flush|>") >= 0;
    if (end_id >= 0 && has_call && (has_return || has_flush)) {
        remove_eog(v, end_id);
        v->attr[end_id] = QR_ATTR_USER_DEFINED;
    }
    /* gemma4 / paddleocr: "</s>" is not an end of generation when "<|tool_response>" is. */
    int32_t s_id = find_cstr(v, "</s>");
    if (s_id >= 0 && find_cstr(v, "<|tool_response>") >= 0) {
        remove_eog(v, s_id);
        v->attr[s_id] = QR_ATTR_NORMAL;
    }
    if (v->n_eog > 1) qsort(v->eog, v->n_eog, sizeof(int32_t), cmp_i32);
    return QR_OK;
}

/* qsort has no context argument in C11: sort (length, id) pairs instead. */
typedef struct { uint32_t len; int32_t id; } len_id;

static int cmp_len_desc(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int build_special_cache(qr_vocab *v, qr_error *err) {
    size_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->attr[i] & (QR_ATTR_CONTROL | QR_ATTR_USER_DEFINED | QR_ATTR_UNKNOWN)) n++;
    }
    len_id *tmp = malloc(sizeof(len_id) * (n + 1));
    v->special = malloc(sizeof(int32_t) * (n + 1));
    if (!tmp || !v->special) {
        free(tmp);
        return qr_fail(err, "out of memory for %zu special tokens", n);
    }
    size_t k = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        if (v->attr[i] & (QR_ATTR_CONTROL | QR_ATTR_USER_DEFINED | QR_ATTR_UNKNOWN)) {
            size_t len;
            qr_vocab_text(v, i, &len);
            tmp[k].len = (uint32_t)len;
            tmp[k++].id = i;
        }
    }
    qsort(tmp, n, sizeof *tmp, cmp_len_desc);
    for (size_t i = 0; i < n; i++) v->special[i] = tmp[i].id;
    v->n_special = n;
    free(tmp);
    return QR_OK;
}

/* Per-model attribute fix-ups llama.cpp applies by name (lstrip/rstrip of specials). */
static int apply_model_attrs(const qr_gguf *g, qr_vocab *v, qr_error *err) {
    char *name = NULL, *arch = NULL;
    if (opt_str(g, "general.name", &name, err) != QR_OK) return QR_ERR;
    if (opt_str(g, "general.architecture", &arch, err) != QR_OK) {
        free(name);
        return QR_ERR;
    }
    for (char *p = name; p && *p; p++) *p = (char)tolower((unsigned char)*p);
    const char *pre = v->pre_name;
    bool jina = strstr(pre, "jina-v2-de") || strstr(pre, "jina-v2-es") || strstr(pre, "jina-v2-code") ||
                (arch && (strstr(arch, "nomic-bert-moe") || strstr(arch, "jina-bert-v3")));
    if (jina) {
        int32_t id = find_cstr(v, "<mask>");
        if (id >= 0) v->attr[id] |= QR_ATTR_LSTRIP;
    } else if (name && (strstr(name, "phi-3") || strstr(name, "phi3"))) {
        for (size_t i = 0; i < v->n_special; i++) v->attr[v->special[i]] |= QR_ATTR_RSTRIP;
        int32_t id = find_cstr(v, "</s>");
        if (id >= 0) v->attr[id] |= QR_ATTR_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>", NULL};
        for (const char *const *t = keep; *t; t++) {
            id = find_cstr(v, *t);
            if (id >= 0) v->attr[id] &= (uint8_t)~QR_ATTR_RSTRIP;
        }
    } else if (name && strstr(name, "modern-bert")) {
        int32_t id = find_cstr(v, "[MASK]");
        if (id >= 0) v->attr[id] |= QR_ATTR_LSTRIP;
    }
    free(name);
    free(arch);
    return QR_OK;
}

/* True when every "▁" inside a token (not at its start) follows another "▁". */
static bool no_inner_space_marks(const qr_vocab *v) {
    static const char mark[3] = {'\xE2', '\x96', '\x81'};
    for (int32_t i = 0; i < v->n_tokens; i++) {
        size_t len;
        const char *t = qr_vocab_text(v, i, &len);
        for (size_t p = 1; p + 3 <= len; p++) {
            if (memcmp(t + p, mark, 3) != 0) continue;
            if (p < 3 || memcmp(t + p - 3, mark, 3) != 0) return false;
        }
    }
    return true;
}

/* ---- public ------------------------------------------------------------------------- */

static int load_flags(const qr_gguf *g, qr_vocab *v, qr_error *err) {
    if (opt_bool(g, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix, err) != QR_OK ||
        opt_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &v->remove_extra_whitespaces, err) != QR_OK ||
        opt_bool(g, "tokenizer.ggml.add_bos_token", &v->add_bos, err) != QR_OK ||
        opt_bool(g, "tokenizer.ggml.add_eos_token", &v->add_eos, err) != QR_OK ||
        opt_bool(g, "tokenizer.ggml.add_sep_token", &v->add_sep, err) != QR_OK) {
        return QR_ERR;
    }
    if (opt_bool(g, "tokenizer.ggml.normalizer.lowercase", &v->norm_lowercase, err) != QR_OK) return QR_ERR;
    v->norm_strip_accents = v->norm_lowercase;
    return opt_bool(g, "tokenizer.ggml.normalizer.strip_accents", &v->norm_strip_accents, err);
}

int qr_vocab_load(const qr_gguf *g, qr_vocab *v, qr_error *err) {
    memset(v, 0, sizeof *v);
    const char *path = qr_gguf_path(g);
    if (!qr_gguf_find_kv(g, K_MODEL)) {
        return qr_fail(err, "%s: key '%s' is missing (no tokenizer in this file)", path, K_MODEL);
    }
    if (qr_gguf_get_str(g, K_MODEL, &v->model_name, err) != QR_OK) goto fail;
    if (opt_str(g, K_PRE, &v->pre_name, err) != QR_OK) goto fail;
    if (!v->pre_name && !(v->pre_name = calloc(1, 1))) goto oom;
    if (set_model_defaults(v, path, err) != QR_OK) goto fail;
    if (v->type == QR_VOCAB_BPE && load_merges(g, v, err) != QR_OK) goto fail;
    if (apply_pre(v, path, err) != QR_OK) goto fail;
    /* add_bos/add_eos keys are read after the special ids, as in llama.cpp, but
     * add_space_prefix / remove_extra_whitespaces / normalizer keys first: order is
     * irrelevant as they are independent. */
    if (load_tokens(g, v, err) != QR_OK) goto fail;
    if (read_special_ids(g, v, err) != QR_OK) goto fail;
    if (load_flags(g, v, err) != QR_OK) goto fail;
    detect_special_tokens(v);
    if (build_eog(v, err) != QR_OK) goto fail;
    if (build_special_cache(v, err) != QR_OK) goto fail;
    if (qr_vocab_build_pieces(v, err) != QR_OK) goto fail;
    if (apply_model_attrs(g, v, err) != QR_OK) goto fail;
    if (v->type == QR_VOCAB_SPM) {
        v->spm_word_chunks = no_inner_space_marks(v);
        v->linefeed = qr_vocab_byte_token(v, '\n');
    } else if (v->type == QR_VOCAB_WPM) {
        v->linefeed = v->pad;
    }
    QR_LOG_DEBUG("tokenizer", "%s: %s vocab, pre '%s', %d tokens, %d merges, %zu special", path,
                 v->model_name, v->pre_name, v->n_tokens, v->n_merges, v->n_special);
    return QR_OK;
oom:
    qr_fail(err, "%s: out of memory", path);
fail:
    qr_vocab_free(v);
    return QR_ERR;
}

void qr_vocab_free(qr_vocab *v) {
    free(v->model_name);
    free(v->pre_name);
    qr_strtab_free(&v->texts);
    free(v->attr);
    qr_strmap_free(&v->text_to_id);
    qr_strtab_free(&v->merge_texts);
    qr_strmap_free(&v->merges);
    free(v->eog);
    free(v->special);
    free(v->piece_ref);
    free(v->piece_arena);
    memset(v, 0, sizeof *v);
}

int32_t qr_vocab_merge_rank(const qr_vocab *v, const char *left, size_t left_len, const char *right,
                            size_t right_len) {
    char stack[256];
    size_t len = left_len + 1 + right_len;
    char *key = len <= sizeof stack ? stack : malloc(len);
    if (!key) return -1;
    memcpy(key, left, left_len);
    key[left_len] = ' ';
    memcpy(key + left_len + 1, right, right_len);
    int32_t rank = qr_strmap_get(&v->merges, key, len);
    /* The merge must split at its first space past index 0, as llama.cpp splits it. */
    if (rank >= 0 && (left_len == 0 || memchr(key + 1, ' ', len - 1) != key + left_len)) rank = -1;
    if (key != stack) free(key);
    return rank;
}

int32_t qr_vocab_byte_token(const qr_vocab *v, uint8_t byte) {
    static const char hex[] = "0123456789ABCDEF";
    char buf[6] = {'<', '0', 'x', hex[byte >> 4], hex[byte & 15], '>'};
    int32_t id = qr_vocab_find(v, buf, 6);
    if (id >= 0) return id;
    char c = (char)byte;
    id = qr_vocab_find(v, &c, 1);
    return id >= 0 ? id : v->unk;
}

bool qr_vocab_is_eog(const qr_vocab *v, int32_t id) {
    return id >= 0 && v->n_eog > 0 && bsearch(&id, v->eog, v->n_eog, sizeof(int32_t), cmp_i32) != NULL;
}
