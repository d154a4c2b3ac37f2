#include "model/arch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define HP(f) offsetof(qr_hparams, f)

/* ---- Tensor tables (llama.cpp src/models/<arch>.cpp load_arch_tensors) ---------------- */

#define T_GLOBAL(n, kind, pres, nd, d0, d1) {n, false, kind, pres, nd, {d0, d1}}
#define T_LAYER(n, kind, pres, nd, d0, d1) {n, true, kind, pres, nd, {d0, d1}}
#define MAT(n, d0, d1) T_LAYER("blk.%u." n ".weight", QR_TENSOR_MATRIX, QR_PRESENT_ALWAYS, 2, d0, d1)
#define NORM(n, d0) T_LAYER("blk.%u." n ".weight", QR_TENSOR_NORM, QR_PRESENT_ALWAYS, 1, d0, QR_DIM_ONE)
#define BIAS(n, pres, d0) T_LAYER("blk.%u." n ".bias", QR_TENSOR_BIAS, pres, 1, d0, QR_DIM_ONE)

#define TOKEN_EMBD T_GLOBAL("token_embd.weight", QR_TENSOR_MATRIX, QR_PRESENT_ALWAYS, 2, QR_DIM_EMBD, QR_DIM_VOCAB)
#define OUTPUT_NORM T_GLOBAL("output_norm.weight", QR_TENSOR_NORM, QR_PRESENT_ALWAYS, 1, QR_DIM_EMBD, QR_DIM_ONE)
#define OUTPUT T_GLOBAL("output.weight", QR_TENSOR_MATRIX, QR_PRESENT_IF_UNTIED, 2, QR_DIM_EMBD, QR_DIM_VOCAB)

/* llama and mistral: q/k/v, attn_output and FFN biases are all optional in llama.cpp's
 * loader; synth writes q/k/v biases only when asked (qkv_bias). rope_freqs is the Llama 3
 * frequency-divisor tensor, shared by all layers. */
static const qr_tensor_spec LLAMA_TENSORS[] = {
    TOKEN_EMBD,
    T_GLOBAL("rope_freqs.weight", QR_TENSOR_ROPE_FREQS, QR_PRESENT_IF_ROPE_FREQS, 1, QR_DIM_ROT_HALF, QR_DIM_ONE),
    NORM("attn_norm", QR_DIM_EMBD),
    MAT("attn_q", QR_DIM_EMBD, QR_DIM_Q),
    BIAS("attn_q", QR_PRESENT_IF_QKV_BIAS, QR_DIM_Q),
    MAT("attn_k", QR_DIM_EMBD, QR_DIM_K),
    BIAS("attn_k", QR_PRESENT_IF_QKV_BIAS, QR_DIM_K),
    MAT("attn_v", QR_DIM_EMBD, QR_DIM_V),
    BIAS("attn_v", QR_PRESENT_IF_QKV_BIAS, QR_DIM_V),
    MAT("attn_output", QR_DIM_Q, QR_DIM_EMBD),
    BIAS("attn_output", QR_PRESENT_OPTIONAL, QR_DIM_EMBD),
    NORM("ffn_norm", QR_DIM_EMBD),
    MAT("ffn_gate", QR_DIM_EMBD, QR_DIM_FF),
    BIAS("ffn_gate", QR_PRESENT_OPTIONAL, QR_DIM_FF),
    MAT("ffn_up", QR_DIM_EMBD, QR_DIM_FF),
    BIAS("ffn_up", QR_PRESENT_OPTIONAL, QR_DIM_FF),
    MAT("ffn_down", QR_DIM_FF, QR_DIM_EMBD),
    BIAS("ffn_down", QR_PRESENT_OPTIONAL, QR_DIM_EMBD),
    OUTPUT_NORM,
    OUTPUT,
};

/* qwen2: Qwen2 checkpoints carry q/k/v biases (the loader calls them optional); no
 * attn_output bias; an optional output.bias. */
static const qr_tensor_spec QWEN2_TENSORS[] = {
    TOKEN_EMBD,
    NORM("attn_norm", QR_DIM_EMBD),
    MAT("attn_q", QR_DIM_EMBD, QR_DIM_Q),
    BIAS("attn_q", QR_PRESENT_IF_QKV_BIAS, QR_DIM_Q),
    MAT("attn_k", QR_DIM_EMBD, QR_DIM_K),
    BIAS("attn_k", QR_PRESENT_IF_QKV_BIAS, QR_DIM_K),
    MAT("attn_v", QR_DIM_EMBD, QR_DIM_V),
    BIAS("attn_v", QR_PRESENT_IF_QKV_BIAS, QR_DIM_V),
    MAT("attn_output", QR_DIM_Q, QR_DIM_EMBD),
    NORM("ffn_norm", QR_DIM_EMBD),
    MAT("ffn_gate", QR_DIM_EMBD, QR_DIM_FF),
    MAT("ffn_up", QR_DIM_EMBD, QR_DIM_FF),
    MAT("ffn_down", QR_DIM_FF, QR_DIM_EMBD),
    OUTPUT_NORM,
    OUTPUT,
    T_GLOBAL("output.bias", QR_TENSOR_BIAS, QR_PRESENT_OPTIONAL, 1, QR_DIM_VOCAB, QR_DIM_ONE),
};

/* gemma3: per-head Q/K norms and post-attention/post-FFN norms; no biases. Every norm
 * is stored with Gemma's +1 folded in (conversion/gemma.py), so 1.0 is identity. */
static const qr_tensor_spec GEMMA3_TENSORS[] = {
    TOKEN_EMBD,
    NORM("attn_norm", QR_DIM_EMBD),
    MAT("attn_q", QR_DIM_EMBD, QR_DIM_Q),
    MAT("attn_k", QR_DIM_EMBD, QR_DIM_K),
    MAT("attn_v", QR_DIM_EMBD, QR_DIM_V),
    NORM("attn_q_norm", QR_DIM_HEAD_K),
    NORM("attn_k_norm", QR_DIM_HEAD_K),
    MAT("attn_output", QR_DIM_Q, QR_DIM_EMBD),
    NORM("post_attention_norm", QR_DIM_EMBD),
    NORM("ffn_norm", QR_DIM_EMBD),
    MAT("ffn_gate", QR_DIM_EMBD, QR_DIM_FF),
    MAT("ffn_up", QR_DIM_EMBD, QR_DIM_FF),
    MAT("ffn_down", QR_DIM_FF, QR_DIM_EMBD),
    NORM("post_ffw_norm", QR_DIM_EMBD),
    OUTPUT_NORM,
    OUTPUT,
};

/* ---- Metadata tables (what llama.cpp's converters write; src/llama-model.cpp reads) ---- */

#define K_U32(s, f, pres, req) {s, QR_GGUF_UINT32, HP(f), pres, req}
#define K_F32(s, f, pres, req) {s, QR_GGUF_FLOAT32, HP(f), pres, req}

#define COMMON_KEYS                                                                 \
    K_U32("context_length", n_ctx, QR_KV_ALWAYS, true),                             \
    K_U32("embedding_length", n_embd, QR_KV_ALWAYS, true),                          \
    K_U32("block_count", n_layer, QR_KV_ALWAYS, true),                              \
    K_U32("feed_forward_length", n_ff, QR_KV_ALWAYS, false),                        \
    K_U32("attention.head_count", n_head, QR_KV_ALWAYS, false),                     \
    K_U32("attention.head_count_kv", n_head_kv, QR_KV_ALWAYS, false),               \
    K_F32("rope.freq_base", rope_base, QR_KV_ALWAYS, false),                        \
    K_F32("attention.layer_norm_rms_epsilon", rms_eps, QR_KV_ALWAYS, true)

/* conversion/llama.py adds vocab_size and rope.dimension_count; base.py adds
 * key_length/value_length only when the checkpoint states a head_dim. */
#define LLAMA_KEYS                                                                  \
    COMMON_KEYS,                                                                    \
    K_U32("vocab_size", n_vocab, QR_KV_ALWAYS, false),                              \
    K_U32("rope.dimension_count", n_rot, QR_KV_ALWAYS, false),                      \
    K_U32("attention.key_length", head_dim_k, QR_KV_IF_HEAD_DIM_CUSTOM, false),     \
    K_U32("attention.value_length", head_dim_v, QR_KV_IF_HEAD_DIM_CUSTOM, false)

static const qr_kv_spec LLAMA_KEYS_TABLE[] = {LLAMA_KEYS};

/* llama.cpp neither writes nor reads the window for arch llama (MODELS.md section 2);
 * quarrel's engine reads it to run Mistral 7B v0.1 the way the checkpoint was trained. */
static const qr_kv_spec MISTRAL_KEYS_TABLE[] = {
    LLAMA_KEYS,
    K_U32("attention.sliding_window", sliding_window, QR_KV_ALWAYS, false),
};

static const qr_kv_spec QWEN2_KEYS_TABLE[] = {COMMON_KEYS};

/* conversion/gemma.py Gemma3Model: key/value_length always; sliding_window unless the
 * pattern is 1; rope.freq_base_swa from base.py (newer converters). The pattern key is
 * not written by the converter (llama.cpp defaults to 6); synth writes it only when set. */
static const qr_kv_spec GEMMA3_KEYS_TABLE[] = {
    COMMON_KEYS,
    K_U32("attention.key_length", head_dim_k, QR_KV_ALWAYS, false),
    K_U32("attention.value_length", head_dim_v, QR_KV_ALWAYS, false),
    K_U32("attention.sliding_window", sliding_window, QR_KV_IF_NONZERO, false),
    K_U32("attention.sliding_window_pattern", swa_pattern, QR_KV_IF_NONZERO, false),
    K_F32("rope.freq_base_swa", rope_base_swa, QR_KV_IF_NONZERO, false),
};

/* ---- The architecture rows -------------------------------------------------------------- */

static const qr_arch ARCHS[QR_ARCH_COUNT] = {
    [QR_ARCH_LLAMA] = {QR_ARCH_LLAMA, "llama", "llama", LLAMA_TENSORS, N_OF(LLAMA_TENSORS),
                       LLAMA_KEYS_TABLE, N_OF(LLAMA_KEYS_TABLE), true},
    [QR_ARCH_MISTRAL] = {QR_ARCH_MISTRAL, "mistral", "llama", LLAMA_TENSORS, N_OF(LLAMA_TENSORS),
                         MISTRAL_KEYS_TABLE, N_OF(MISTRAL_KEYS_TABLE), true},
    [QR_ARCH_QWEN2] = {QR_ARCH_QWEN2, "qwen2", "qwen2", QWEN2_TENSORS, N_OF(QWEN2_TENSORS),
                       QWEN2_KEYS_TABLE, N_OF(QWEN2_KEYS_TABLE), false},
    [QR_ARCH_GEMMA3] = {QR_ARCH_GEMMA3, "gemma3", "gemma3", GEMMA3_TENSORS, N_OF(GEMMA3_TENSORS),
                        GEMMA3_KEYS_TABLE, N_OF(GEMMA3_KEYS_TABLE), true},
};

const qr_arch *qr_arch_get(qr_arch_id id) {
    if ((int)id < 0 || id >= QR_ARCH_COUNT) return NULL;
    return &ARCHS[id];
}

const qr_arch *qr_arch_find(const char *name) {
    for (int i = 0; i < QR_ARCH_COUNT; i++) {
        if (strcmp(ARCHS[i].name, name) == 0) return &ARCHS[i];
    }
    return NULL;
}

const char *qr_arch_names(void) { return "llama|mistral|qwen2|gemma3"; }

/* ---- Evaluating the tables --------------------------------------------------------------- */

int64_t qr_hparams_dim(const qr_hparams *hp, qr_dim d) {
    switch (d) {
    case QR_DIM_ONE: return 1;
    case QR_DIM_EMBD: return hp->n_embd;
    case QR_DIM_VOCAB: return hp->n_vocab;
    case QR_DIM_FF: return hp->n_ff;
    case QR_DIM_Q: return (int64_t)hp->n_head * hp->head_dim_k;
    case QR_DIM_K: return (int64_t)hp->n_head_kv * hp->head_dim_k;
    case QR_DIM_V: return (int64_t)hp->n_head_kv * hp->head_dim_v;
    case QR_DIM_HEAD_K: return hp->head_dim_k;
    case QR_DIM_ROT_HALF: return hp->n_rot / 2;
    }
    return 0;
}

double qr_hparams_field(const qr_hparams *hp, const qr_kv_spec *k) {
    const char *p = (const char *)hp + k->field;
    if (k->type == QR_GGUF_FLOAT32) {
        float f;
        memcpy(&f, p, sizeof f);
        return f;
    }
    uint32_t u;
    memcpy(&u, p, sizeof u);
    return u;
}

static bool head_dim_custom(const qr_hparams *hp) {
    return (uint64_t)hp->head_dim_k * hp->n_head != hp->n_embd ||
           (uint64_t)hp->head_dim_v * hp->n_head != hp->n_embd;
}

bool qr_kv_present(const qr_kv_spec *k, const qr_hparams *hp) {
    switch (k->presence) {
    case QR_KV_ALWAYS: return true;
    case QR_KV_IF_NONZERO: return qr_hparams_field(hp, k) != 0.0;
    case QR_KV_IF_HEAD_DIM_CUSTOM: return head_dim_custom(hp);
    }
    return false;
}

bool qr_tensor_present(const qr_tensor_spec *t, const qr_hparams *hp) {
    switch (t->presence) {
    case QR_PRESENT_ALWAYS: return true;
    case QR_PRESENT_IF_UNTIED: return !hp->tied_output;
    case QR_PRESENT_IF_QKV_BIAS: return hp->qkv_bias;
    case QR_PRESENT_IF_ROPE_FREQS: return hp->rope_freqs;
    case QR_PRESENT_OPTIONAL: return false;
    }
    return false;
}

static int check_positive(const char *what, uint32_t v, qr_error *err) {
    if (v == 0) return qr_fail(err, "%s must be positive", what);
    return QR_OK;
}

int qr_hparams_validate(const qr_arch *a, const qr_hparams *hp, qr_error *err) {
    const struct { const char *name; uint32_t v; } counts[] = {
        {"n_vocab", hp->n_vocab}, {"n_ctx", hp->n_ctx}, {"n_embd", hp->n_embd},
        {"n_layer", hp->n_layer}, {"n_head", hp->n_head}, {"n_head_kv", hp->n_head_kv},
        {"n_ff", hp->n_ff}, {"head_dim_k", hp->head_dim_k}, {"head_dim_v", hp->head_dim_v},
        {"n_rot", hp->n_rot},
    };
    for (size_t i = 0; i < N_OF(counts); i++) {
        if (check_positive(counts[i].name, counts[i].v, err) != QR_OK) return QR_ERR;
    }
    if (hp->n_head % hp->n_head_kv != 0) {
        return qr_fail(err, "n_head (%u) is not a multiple of n_head_kv (%u)", hp->n_head, hp->n_head_kv);
    }
    if (hp->n_rot % 2 != 0 || hp->n_rot > hp->head_dim_k) {
        return qr_fail(err, "n_rot (%u) must be even and at most head_dim_k (%u)", hp->n_rot, hp->head_dim_k);
    }
    if (!(hp->rms_eps > 0.0f)) return qr_fail(err, "rms_eps must be positive");
    if (!(hp->rope_base > 0.0f)) return qr_fail(err, "rope_base must be positive");
    if (!a->head_dim_free && head_dim_custom(hp)) {
        return qr_fail(err, "%s needs n_embd (%u) = n_head (%u) x head_dim (%u/%u)", a->name,
                       hp->n_embd, hp->n_head, hp->head_dim_k, hp->head_dim_v);
    }
    /* llama.cpp's llama and qwen2 graphs rotate the whole head (they throw otherwise). */
    if (a->id != QR_ARCH_GEMMA3 && hp->n_rot != hp->head_dim_k) {
        return qr_fail(err, "%s needs n_rot (%u) = head_dim_k (%u)", a->name, hp->n_rot, hp->head_dim_k);
    }
    if (hp->rope_freqs && a->id != QR_ARCH_LLAMA && a->id != QR_ARCH_MISTRAL) {
        return qr_fail(err, "rope_freqs.weight is only defined for llama here, not %s", a->name);
    }
    return QR_OK;
}

static int make_inst(const qr_tensor_spec *t, const qr_hparams *hp, int32_t layer,
                     qr_tensor_inst *out, qr_error *err) {
    int n = t->per_layer ? snprintf(out->name, sizeof out->name, t->name, (unsigned)layer)
                         : snprintf(out->name, sizeof out->name, "%s", t->name);
    if (n < 0 || (size_t)n >= sizeof out->name) return qr_fail(err, "tensor name '%s' too long", t->name);
    out->spec = t;
    out->layer = layer;
    out->n_dims = t->n_dims;
    out->ne[0] = qr_hparams_dim(hp, t->ne[0]);
    out->ne[1] = t->n_dims > 1 ? qr_hparams_dim(hp, t->ne[1]) : 1;
    return QR_OK;
}

/* Globals listed before the first per-layer row come first, then every layer's rows,
 * then the remaining globals: the order llama.cpp's converters produce. */
int qr_arch_tensors(const qr_arch *a, const qr_hparams *hp, qr_tensor_inst **out,
                    size_t *n_out, qr_error *err) {
    size_t n_global = 0, n_layer_rows = 0;
    for (size_t i = 0; i < a->n_tensors; i++) {
        if (!qr_tensor_present(&a->tensors[i], hp)) continue;
        if (a->tensors[i].per_layer) n_layer_rows++; else n_global++;
    }
    size_t total = n_global + n_layer_rows * hp->n_layer;
    qr_tensor_inst *v = calloc(total ? total : 1, sizeof *v);
    if (!v) return qr_fail(err, "out of memory listing %zu tensors", total);
    size_t k = 0;
    bool layers_done = false;
    for (size_t i = 0; i < a->n_tensors; i++) {
        const qr_tensor_spec *t = &a->tensors[i];
        if (t->per_layer) {
            if (layers_done) continue;
            layers_done = true;
            for (uint32_t l = 0; l < hp->n_layer; l++) {
                for (size_t j = i; j < a->n_tensors; j++) {
                    const qr_tensor_spec *tl = &a->tensors[j];
                    if (!tl->per_layer || !qr_tensor_present(tl, hp)) continue;
                    if (make_inst(tl, hp, (int32_t)l, &v[k++], err) != QR_OK) goto fail;
                }
            }
            continue;
        }
        if (!qr_tensor_present(t, hp)) continue;
        if (make_inst(t, hp, -1, &v[k++], err) != QR_OK) goto fail;
    }
    *out = v;
    *n_out = k;
    return QR_OK;
fail:
    free(v);
    return QR_ERR;
}
