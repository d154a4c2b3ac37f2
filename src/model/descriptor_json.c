/* The resolved descriptor as JSON (`quarrel inspect --arch-json`) and JSON overrides of
 * it (`--arch-config FILE.json`, `--swa N`). Why overrides exist: some files omit compute
 * facts that llama.cpp never reads either, e.g. Mistral v0.1's 4096-token sliding window
 * (GGUF arch `llama`, no `llama.attention.sliding_window`).
 *
 * One table lists every field: its JSON name, its type, where it lives and whether a
 * config may change it. Fields that decide which tensors exist or their sizes are
 * read-only: the weights were bound against them, so changing them would make the
 * forward pass read the file wrongly. */
#include "model/descriptor.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum field_type { FT_U32, FT_F32, FT_BOOL, FT_ACT, FT_ROPE } field_type;

/* Allowed range of an overridable number. */
typedef enum field_range { R_ANY, R_POS, R_NONNEG, R_WINDOW, R_PATTERN } field_range;

typedef struct field {
    const char *key;
    field_type type;
    size_t off;        /* offsetof(qr_descriptor, ...) */
    bool writable;     /* false: describes tensor presence or sizes */
    field_range range;
} field;

#define D(m) offsetof(qr_descriptor, m)
#define RO(k, t, m) {k, t, D(m), false, R_ANY}
#define RW(k, t, m, r) {k, t, D(m), true, r}
static const field FIELDS[] = {
    RO("n_vocab", FT_U32, hp.n_vocab),
    RW("n_ctx_train", FT_U32, hp.n_ctx, R_POS),
    RO("n_embd", FT_U32, hp.n_embd),
    RO("n_layer", FT_U32, hp.n_layer),
    RO("n_head", FT_U32, hp.n_head),
    RO("n_head_kv", FT_U32, hp.n_head_kv),
    RO("n_ff", FT_U32, hp.n_ff),
    RO("head_dim_k", FT_U32, hp.head_dim_k),
    RO("head_dim_v", FT_U32, hp.head_dim_v),
    RO("n_rot", FT_U32, hp.n_rot),
    RW("norm_eps", FT_F32, norm_eps, R_POS),
    RW("activation", FT_ACT, act, R_ANY),
    RO("qkv_bias", FT_BOOL, qkv_bias),
    RO("qk_norm", FT_BOOL, qk_norm),
    RO("post_norms", FT_BOOL, post_norms),
    RW("embd_scale", FT_F32, embd_scale, R_POS),
    RW("rope_type", FT_ROPE, rope_type, R_ANY),
    RW("rope_base", FT_F32, rope_base, R_POS),
    RW("rope_freq_scale", FT_F32, rope_freq_scale, R_POS),
    RW("rope_base_swa", FT_F32, rope_base_swa, R_POS),
    RW("rope_freq_scale_swa", FT_F32, rope_freq_scale_swa, R_POS),
    RO("rope_freqs", FT_BOOL, rope_freqs),
    RW("n_swa", FT_U32, n_swa, R_WINDOW),
    RW("swa_pattern", FT_U32, swa_pattern, R_PATTERN),
    RW("q_prescaled", FT_BOOL, q_prescaled, R_ANY),
    RW("attn_scale", FT_F32, attn_scale, R_POS),
    RW("attn_softcap", FT_F32, attn_softcap, R_NONNEG),
    RW("final_softcap", FT_F32, final_softcap, R_NONNEG),
    RO("tied_output", FT_BOOL, tied_output),
    RO("output_bias", FT_BOOL, output_bias),
};
#define N_FIELDS (sizeof FIELDS / sizeof FIELDS[0])

static const char *const ACT_NAMES[] = {[QR_ACT_SILU] = "silu", [QR_ACT_GELU_TANH] = "gelu_tanh"};
static const char *const ROPE_NAMES[] = {[QR_ROPE_NORM] = "norm", [QR_ROPE_NEOX] = "neox"};

/* ---- Field access ----------------------------------------------------------------------- */

/* A field's value widened to double (enums and bools as their numbers). */
static double get_num(const qr_descriptor *d, const field *f) {
    const char *p = (const char *)d + f->off;
    switch (f->type) {
    case FT_U32: { uint32_t u; memcpy(&u, p, sizeof u); return u; }
    case FT_F32: { float x; memcpy(&x, p, sizeof x); return x; }
    case FT_BOOL: { bool b; memcpy(&b, p, sizeof b); return b; }
    case FT_ACT: { qr_activation a; memcpy(&a, p, sizeof a); return a; }
    case FT_ROPE: { qr_rope_type r; memcpy(&r, p, sizeof r); return r; }
    }
    return 0;
}

static void set_num(qr_descriptor *d, const field *f, double v) {
    char *p = (char *)d + f->off;
    switch (f->type) {
    case FT_U32: { uint32_t u = (uint32_t)v; memcpy(p, &u, sizeof u); break; }
    case FT_F32: { float x = (float)v; memcpy(p, &x, sizeof x); break; }
    case FT_BOOL: { bool b = v != 0; memcpy(p, &b, sizeof b); break; }
    case FT_ACT: { qr_activation a = (qr_activation)(int)v; memcpy(p, &a, sizeof a); break; }
    case FT_ROPE: { qr_rope_type r = (qr_rope_type)(int)v; memcpy(p, &r, sizeof r); break; }
    }
}

static const char *enum_name(const field *f, int v) {
    if (f->type == FT_ACT) return v >= 0 && v < 2 ? ACT_NAMES[v] : "?";
    return v >= 0 && v < 2 ? ROPE_NAMES[v] : "?";
}

/* ---- To JSON ------------------------------------------------------------------------------- */

static cJSON *field_json(const qr_descriptor *d, const field *f) {
    double v = get_num(d, f);
    switch (f->type) {
    case FT_BOOL: return cJSON_CreateBool(v != 0);
    case FT_ACT:
    case FT_ROPE: return cJSON_CreateString(enum_name(f, (int)v));
    default: return cJSON_CreateNumber(v);
    }
}

int qr_descriptor_to_json(const qr_descriptor *d, char **out, qr_error *err) {
    *out = NULL;
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddItemToObject(o, "arch", cJSON_CreateString(d->arch ? d->arch->name : "?"));
    for (size_t i = 0; ok && i < N_FIELDS; i++) ok = cJSON_AddItemToObject(o, FIELDS[i].key, field_json(d, &FIELDS[i]));
    char *text = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    if (!text) return qr_fail(err, "out of memory writing the descriptor as JSON");
    /* cJSON may allocate through hooks: hand back plain malloc memory. */
    *out = strdup(text);
    cJSON_free(text);
    return *out ? QR_OK : qr_fail(err, "out of memory writing the descriptor as JSON");
}

/* ---- Parsing one value ------------------------------------------------------------------- */

static int parse_enum(const field *f, const cJSON *v, const char *src, double *out, qr_error *err) {
    const char *const *names = f->type == FT_ACT ? ACT_NAMES : ROPE_NAMES;
    if (cJSON_IsString(v)) {
        for (int i = 0; i < 2; i++) {
            if (strcmp(v->valuestring, names[i]) == 0) {
                *out = i;
                return QR_OK;
            }
        }
    }
    return qr_fail(err, "%s: key '%s' must be one of \"%s\", \"%s\"", src, f->key, names[0], names[1]);
}

static int check_range(const field *f, double x, const char *src, qr_error *err) {
    switch (f->range) {
    case R_POS:
        if (!(x > 0)) return qr_fail(err, "%s: key '%s' must be > 0 (got %g)", src, f->key, x);
        break;
    case R_NONNEG:
        if (!(x >= 0)) return qr_fail(err, "%s: key '%s' must be >= 0 (0 = none; got %g)", src, f->key, x);
        break;
    case R_WINDOW:
        if (x < 0 || x > INT32_MAX) {
            return qr_fail(err, "%s: key '%s' must be a window in tokens, 0..%d (0 = none; got %g)", src, f->key,
                           INT32_MAX, x);
        }
        break;
    case R_PATTERN:
        if (x < 1 || x > 1e6) {
            return qr_fail(err, "%s: key '%s' must be >= 1 (1 = every layer slides; P = layer il slides iff "
                                "il %% P < P - 1; got %g)", src, f->key, x);
        }
        break;
    case R_ANY:
        break;
    }
    return QR_OK;
}

static int parse_number(const field *f, const cJSON *v, const char *src, double *out, qr_error *err) {
    if (!cJSON_IsNumber(v)) {
        return qr_fail(err, "%s: key '%s' must be a %s", src, f->key, f->type == FT_U32 ? "non-negative integer" : "number");
    }
    double x = v->valuedouble;
    if (!isfinite(x) || (f->type == FT_F32 && fabs(x) > FLT_MAX)) {
        return qr_fail(err, "%s: key '%s' is not a finite 32-bit float", src, f->key);
    }
    if (f->type == FT_U32 && (x != floor(x) || x < 0 || x > UINT32_MAX)) {
        return qr_fail(err, "%s: key '%s' must be a non-negative integer (got %g)", src, f->key, x);
    }
    if (f->writable && check_range(f, x, src, err) != QR_OK) return QR_ERR;
    *out = x;
    return QR_OK;
}

static int parse_value(const field *f, const cJSON *v, const char *src, double *out, qr_error *err) {
    if (f->type == FT_BOOL) {
        if (!cJSON_IsBool(v)) return qr_fail(err, "%s: key '%s' must be true or false", src, f->key);
        *out = cJSON_IsTrue(v) ? 1 : 0;
        return QR_OK;
    }
    if (f->type == FT_ACT || f->type == FT_ROPE) return parse_enum(f, v, src, out, err);
    return parse_number(f, v, src, out, err);
}

/* ---- Applying an object ---------------------------------------------------------------- */

static const field *find_field(const char *key) {
    for (size_t i = 0; i < N_FIELDS; i++) {
        if (strcmp(FIELDS[i].key, key) == 0) return &FIELDS[i];
    }
    return NULL;
}

static int unknown_key(const char *key, const char *src, qr_error *err) {
    char list[384];
    size_t n = 0;
    for (size_t i = 0; i < N_FIELDS && n < sizeof list; i++) {
        if (FIELDS[i].writable) n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", FIELDS[i].key);
    }
    return qr_fail(err, "%s: unknown key '%s' (accepted: %s; the other keys of `quarrel inspect --arch-json` "
                        "are read-only and must match the file)", src, key, list);
}

static int read_only(const qr_descriptor *d, const field *f, double v, const char *src, qr_error *err) {
    double cur = get_num(d, f);
    if (v == cur) return QR_OK;
    if (f->type == FT_BOOL) {
        return qr_fail(err, "%s: key '%s' cannot be overridden: it describes the file's tensors (file: %s, config: %s)",
                       src, f->key, cur != 0 ? "true" : "false", v != 0 ? "true" : "false");
    }
    return qr_fail(err, "%s: key '%s' cannot be overridden: it describes the file's tensors (file: %g, config: %g)",
                   src, f->key, cur, v);
}

static int apply_arch(const qr_descriptor *d, const cJSON *v, const char *src, qr_error *err) {
    const char *have = d->arch ? d->arch->name : "?";
    if (!cJSON_IsString(v)) return qr_fail(err, "%s: key 'arch' must be a string", src);
    if (strcmp(v->valuestring, have) != 0) {
        return qr_fail(err, "%s: key 'arch' cannot be overridden: it decides the file's tensors (file: %s, config: %s)",
                       src, have, v->valuestring);
    }
    return QR_OK;
}

static int apply_object(qr_descriptor *d, const cJSON *root, const char *src, qr_error *err) {
    bool pattern_given = false;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (strcmp(it->string, "arch") == 0) {
            if (apply_arch(d, it, src, err) != QR_OK) return QR_ERR;
            continue;
        }
        const field *f = find_field(it->string);
        if (!f) return unknown_key(it->string, src, err);
        double v = 0;
        if (parse_value(f, it, src, &v, err) != QR_OK) return QR_ERR;
        if (!f->writable) {
            if (read_only(d, f, v, src, err) != QR_OK) return QR_ERR;
            continue;
        }
        set_num(d, f, v);
        if (f->off == D(swa_pattern)) pattern_given = true;
    }
    /* A window without a pattern on a hand-made descriptor: slide on every layer. */
    if (!pattern_given && d->n_swa > 0 && d->swa_pattern == 0) d->swa_pattern = 1;
    return QR_OK;
}

int qr_descriptor_apply_json(qr_descriptor *d, const char *json, const char *source_name, qr_error *err) {
    const char *src = source_name ? source_name : "arch config";
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (!root) {
        long at = end && end >= json ? (long)(end - json) : 0;
        return qr_fail(err, "%s: not valid JSON (near byte %ld)", src, at);
    }
    int rc;
    if (!cJSON_IsObject(root)) {
        rc = qr_fail(err, "%s: expected a JSON object such as {\"n_swa\": 4096}", src);
    } else {
        qr_descriptor tmp = *d; /* d stays unchanged on error */
        rc = apply_object(&tmp, root, src, err);
        if (rc == QR_OK) *d = tmp;
    }
    cJSON_Delete(root);
    return rc;
}

int qr_descriptor_apply_json_file(qr_descriptor *d, const char *path, qr_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return qr_fail(err, "%s: cannot open arch config", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = cap <= (1u << 24) ? realloc(buf, cap) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                return qr_fail(err, "%s: arch config too large or out of memory", path);
            }
            buf = nb;
        }
        size_t k = fread(buf + len, 1, cap - len - 1, f);
        len += k;
        if (k == 0) break;
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        free(buf);
        return qr_fail(err, "%s: error reading arch config", path);
    }
    buf[len] = '\0';
    int rc = qr_descriptor_apply_json(d, buf, path, err);
    free(buf);
    return rc;
}

int qr_descriptor_set_swa(qr_descriptor *d, int64_t n_swa, qr_error *err) {
    if (n_swa < 0 || n_swa > INT32_MAX) {
        return qr_fail(err, "sliding window %lld must be in 0..%d (0 = none)", (long long)n_swa, INT32_MAX);
    }
    d->n_swa = (uint32_t)n_swa;
    if (d->n_swa > 0 && d->swa_pattern == 0) d->swa_pattern = 1;
    return QR_OK;
}
