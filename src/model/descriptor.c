#include "model/descriptor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Reading `<arch>.*` keys ------------------------------------------------------------- */

static int key_name(const qr_arch *a, const char *suffix, char *buf, size_t n) {
    int k = snprintf(buf, n, "%s.%s", a->gguf_name, suffix);
    return (k < 0 || (size_t)k >= n) ? QR_ERR : QR_OK;
}

/* Reads one key of the arch table into its qr_hparams field; a missing optional key
 * leaves the field at 0 (defaults are applied afterwards). */
static int read_key(const qr_gguf *g, const qr_arch *a, const qr_kv_spec *k, qr_hparams *hp,
                    qr_error *err) {
    char key[128];
    if (key_name(a, k->suffix, key, sizeof key) != QR_OK) return qr_fail(err, "key name too long");
    const qr_gguf_kv *kv = qr_gguf_find_kv(g, key);
    if (!kv) {
        if (k->required) {
            return qr_fail(err, "%s: required key '%s' is missing (architecture %s)", qr_gguf_path(g),
                           key, a->gguf_name);
        }
        return QR_OK;
    }
    if (kv->value.type == QR_GGUF_ARRAY) {
        return qr_fail(err, "%s: key '%s' is a per-layer array; only scalar values are supported",
                       qr_gguf_path(g), key);
    }
    char *field = (char *)hp + k->field;
    if (k->type == QR_GGUF_FLOAT32) {
        float f;
        if (qr_gguf_get_f32(g, key, &f, err) != QR_OK) return QR_ERR;
        memcpy(field, &f, sizeof f);
    } else {
        uint32_t u;
        if (qr_gguf_get_u32(g, key, &u, err) != QR_OK) return QR_ERR;
        memcpy(field, &u, sizeof u);
    }
    return QR_OK;
}

static bool has_key(const qr_gguf *g, const qr_arch *a, const char *suffix) {
    char key[128];
    return key_name(a, suffix, key, sizeof key) == QR_OK && qr_gguf_find_kv(g, key) != NULL;
}

static int opt_f32(const qr_gguf *g, const qr_arch *a, const char *suffix, float *out, qr_error *err) {
    char key[128];
    if (key_name(a, suffix, key, sizeof key) != QR_OK) return qr_fail(err, "key name too long");
    if (!qr_gguf_find_kv(g, key)) return QR_OK;
    return qr_gguf_get_f32(g, key, out, err);
}

static int opt_u32(const qr_gguf *g, const qr_arch *a, const char *suffix, uint32_t *out, qr_error *err) {
    char key[128];
    if (key_name(a, suffix, key, sizeof key) != QR_OK) return qr_fail(err, "key name too long");
    const qr_gguf_kv *kv = qr_gguf_find_kv(g, key);
    if (!kv || kv->value.type == QR_GGUF_ARRAY) return QR_OK; /* array form ignored, as llama.cpp */
    return qr_gguf_get_u32(g, key, out, err);
}

/* ---- Architecture detection --------------------------------------------------------------- */

static int detect_arch(const qr_gguf *g, const qr_arch **out, qr_error *err) {
    char *name = NULL;
    if (qr_gguf_get_str(g, "general.architecture", &name, err) != QR_OK) {
        return qr_fail_prefix(err, "%s: ", qr_gguf_path(g));
    }
    const qr_arch *a = NULL;
    if (strcmp(name, "llama") == 0) {
        /* Mistral is arch llama plus a sliding window (MODELS.md section 2). */
        const qr_gguf_kv *kv = qr_gguf_find_kv(g, "llama.attention.sliding_window");
        bool swa = kv && kv->value.type != QR_GGUF_ARRAY && kv->value.v.u64 > 0;
        a = qr_arch_get(swa ? QR_ARCH_MISTRAL : QR_ARCH_LLAMA);
    } else if (strcmp(name, "qwen2") == 0) {
        a = qr_arch_get(QR_ARCH_QWEN2);
    } else if (strcmp(name, "gemma3") == 0) {
        a = qr_arch_get(QR_ARCH_GEMMA3);
    }
    if (!a) {
        int rc = qr_fail(err, "%s: unsupported architecture '%s' (supported: llama, mistral, qwen2, gemma3)",
                         qr_gguf_path(g), name);
        free(name);
        return rc;
    }
    free(name);
    *out = a;
    return QR_OK;
}

/* ---- Hyper-parameters ---------------------------------------------------------------------- */

static int read_n_vocab(const qr_gguf *g, qr_hparams *hp, qr_error *err) {
    if (hp->n_vocab != 0) return QR_OK;
    const qr_gguf_value *arr;
    if (qr_gguf_get_arr(g, "tokenizer.ggml.tokens", QR_GGUF_STRING, &arr, err) != QR_OK) {
        return qr_fail_prefix(err, "%s: vocabulary size unknown: ", qr_gguf_path(g));
    }
    if (arr->v.arr.count > INT32_MAX) return qr_fail(err, "%s: vocabulary too large", qr_gguf_path(g));
    hp->n_vocab = (uint32_t)arr->v.arr.count;
    return QR_OK;
}

static int read_hparams(const qr_gguf *g, const qr_arch *a, qr_hparams *hp, qr_error *err) {
    memset(hp, 0, sizeof *hp);
    for (size_t i = 0; i < a->n_keys; i++) {
        if (read_key(g, a, &a->keys[i], hp, err) != QR_OK) return QR_ERR;
    }
    if (read_n_vocab(g, hp, err) != QR_OK) return QR_ERR;
    if (hp->n_head == 0) return qr_fail(err, "%s: %s.attention.head_count is missing or 0", qr_gguf_path(g), a->gguf_name);
    if (hp->n_head_kv == 0) hp->n_head_kv = hp->n_head;
    if (hp->head_dim_k == 0) hp->head_dim_k = hp->n_embd / hp->n_head;
    if (hp->head_dim_v == 0) hp->head_dim_v = hp->n_embd / hp->n_head;
    if (hp->n_rot == 0) hp->n_rot = hp->head_dim_k;
    if (!has_key(g, a, "rope.freq_base")) hp->rope_base = 10000.0f;
    hp->tied_output = qr_gguf_find_tensor(g, "output.weight") == NULL;
    hp->qkv_bias = qr_gguf_find_tensor(g, "blk.0.attn_q.bias") != NULL;
    hp->rope_freqs = qr_gguf_find_tensor(g, "rope_freqs.weight") != NULL;
    if (qr_hparams_validate(a, hp, err) != QR_OK) return qr_fail_prefix(err, "%s: ", qr_gguf_path(g));
    return QR_OK;
}

/* ---- RoPE scaling ----------------------------------------------------------------------------- */

/* freq_scale from rope.scaling.{type,factor} (old files: rope.scale_linear). llama.cpp
 * treats an absent type as linear and "none" as factor 1; YaRN/LongRoPE change the
 * rotation itself and are refused rather than silently run wrong. */
static int read_rope_scale(const qr_gguf *g, const qr_arch *a, float *freq_scale, qr_error *err) {
    *freq_scale = 1.0f;
    char key[128];
    if (key_name(a, "rope.scaling.type", key, sizeof key) != QR_OK) return qr_fail(err, "key name too long");
    bool none = false;
    if (qr_gguf_find_kv(g, key)) {
        char *type = NULL;
        if (qr_gguf_get_str(g, key, &type, err) != QR_OK) return QR_ERR;
        none = strcmp(type, "none") == 0;
        bool ok = none || strcmp(type, "linear") == 0;
        if (!ok) {
            int rc = qr_fail(err, "%s: %s = '%s' is not supported (supported: none, linear)",
                             qr_gguf_path(g), key, type);
            free(type);
            return rc;
        }
        free(type);
    }
    float factor = 0.0f;
    if (opt_f32(g, a, "rope.scale_linear", &factor, err) != QR_OK) return QR_ERR;
    if (opt_f32(g, a, "rope.scaling.factor", &factor, err) != QR_OK) return QR_ERR;
    if (!none && factor != 0.0f) {
        if (!(factor > 0.0f) || !isfinite(factor)) {
            return qr_fail(err, "%s: rope scaling factor %g must be positive", qr_gguf_path(g), factor);
        }
        *freq_scale = 1.0f / factor;
    }
    return QR_OK;
}

/* ---- Per-architecture semantics ---------------------------------------------------------- */

static void set_llama_like(qr_descriptor *d) {
    d->act = QR_ACT_SILU;
    d->embd_scale = 1.0f;
    d->attn_scale = 1.0f / sqrtf((float)d->hp.head_dim_k);
}

static int set_gemma3(const qr_gguf *g, qr_descriptor *d, qr_error *err) {
    const qr_hparams *hp = &d->hp;
    d->act = QR_ACT_GELU_TANH;
    d->qk_norm = true;
    d->post_norms = true;
    d->rope_type = QR_ROPE_NEOX;
    d->embd_scale = sqrtf((float)hp->n_embd);
    d->q_prescaled = true;
    /* llama.cpp: the 27B (62 layers) scales by n_embd / n_head, the others by head dim. */
    d->attn_scale = hp->n_layer == 62 ? 1.0f / sqrtf((float)(hp->n_embd / hp->n_head))
                                      : 1.0f / sqrtf((float)hp->head_dim_k);
    if (opt_f32(g, d->arch, "final_logit_softcapping", &d->final_softcap, err) != QR_OK) return QR_ERR;
    if (hp->sliding_window > 0) {
        d->n_swa = hp->sliding_window;
        d->swa_pattern = 6;
        if (opt_u32(g, d->arch, "attention.sliding_window_pattern", &d->swa_pattern, err) != QR_OK) return QR_ERR;
        if (d->swa_pattern == 0) return qr_fail(err, "%s: gemma3.attention.sliding_window_pattern is 0", qr_gguf_path(g));
        d->rope_base_swa = hp->rope_base_swa > 0.0f ? hp->rope_base_swa : 10000.0f;
        d->rope_freq_scale_swa = 1.0f;
    }
    return QR_OK;
}

int qr_descriptor_read(const qr_gguf *g, qr_descriptor *d, qr_error *err) {
    memset(d, 0, sizeof *d);
    if (detect_arch(g, &d->arch, err) != QR_OK) return QR_ERR;
    if (read_hparams(g, d->arch, &d->hp, err) != QR_OK) return QR_ERR;
    const qr_hparams *hp = &d->hp;
    d->norm_eps = hp->rms_eps;
    d->qkv_bias = hp->qkv_bias;
    d->tied_output = hp->tied_output;
    d->rope_freqs = hp->rope_freqs;
    d->output_bias = qr_gguf_find_tensor(g, "output.bias") != NULL;
    d->rope_base = hp->rope_base;
    if (read_rope_scale(g, d->arch, &d->rope_freq_scale, err) != QR_OK) return QR_ERR;
    d->rope_base_swa = d->rope_base;
    d->rope_freq_scale_swa = d->rope_freq_scale;
    switch (d->arch->id) {
    case QR_ARCH_LLAMA:
        set_llama_like(d);
        d->rope_type = QR_ROPE_NORM;
        break;
    case QR_ARCH_MISTRAL:
        set_llama_like(d);
        d->rope_type = QR_ROPE_NORM;
        d->n_swa = hp->sliding_window;
        d->swa_pattern = 1; /* every layer slides */
        break;
    case QR_ARCH_QWEN2:
        set_llama_like(d);
        d->rope_type = QR_ROPE_NEOX;
        break;
    case QR_ARCH_GEMMA3:
        if (set_gemma3(g, d, err) != QR_OK) return QR_ERR;
        break;
    default:
        return qr_fail(err, "%s: architecture %s has no descriptor", qr_gguf_path(g), d->arch->name);
    }
    /* Without a stated pattern every layer is alike: a window given later (--swa,
     * --arch-config) then applies to all of them, as Mistral's does. */
    if (d->swa_pattern == 0) d->swa_pattern = 1;
    if (d->rope_type == QR_ROPE_NORM && d->hp.n_rot % 2 != 0) return qr_fail(err, "n_rot must be even");
    return QR_OK;
}

bool qr_descriptor_layer_is_swa(const qr_descriptor *d, uint32_t il) {
    if (d->n_swa == 0 || d->swa_pattern == 0) return false;
    if (d->swa_pattern == 1) return true;
    return il % d->swa_pattern < d->swa_pattern - 1;
}
