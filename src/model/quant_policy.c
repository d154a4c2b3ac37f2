/* llama.cpp's per-tensor type selection (src/llama-quant.cpp at commit 3f545bec):
 * tensor_allows_quantization, tensor_get_category, llama_tensor_get_type_impl for the
 * non-IQ mixes, tensor_type_fallback, and the loader's tensor order. */
#include "model/quant_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

/* ---- Mixes ---------------------------------------------------------------------------- */

static const qr_quant_mix MIXES[] = {
    {"Q4_0", QR_FTYPE_MOSTLY_Q4_0, QR_TYPE_Q4_0, "4.5 bpw, 32-element blocks"},
    {"Q4_1", QR_FTYPE_MOSTLY_Q4_1, QR_TYPE_Q4_1, "5.0 bpw, 32-element blocks with min"},
    {"Q5_0", QR_FTYPE_MOSTLY_Q5_0, QR_TYPE_Q5_0, "5.5 bpw, 32-element blocks"},
    {"Q5_1", QR_FTYPE_MOSTLY_Q5_1, QR_TYPE_Q5_1, "6.0 bpw, 32-element blocks with min"},
    {"Q8_0", QR_FTYPE_MOSTLY_Q8_0, QR_TYPE_Q8_0, "8.5 bpw"},
    {"Q2_K", QR_FTYPE_MOSTLY_Q2_K, QR_TYPE_Q2_K, "Q2_K with Q3_K/Q4_K attn_v, ffn_down, attn_output"},
    {"Q3_K_S", QR_FTYPE_MOSTLY_Q3_K_S, QR_TYPE_Q3_K, "Q3_K everywhere but the output"},
    {"Q3_K_M", QR_FTYPE_MOSTLY_Q3_K_M, QR_TYPE_Q3_K, "Q3_K with Q4_K/Q5_K attn_v, ffn_down, attn_output"},
    {"Q3_K_L", QR_FTYPE_MOSTLY_Q3_K_L, QR_TYPE_Q3_K, "Q3_K with Q5_K attn_v, ffn_down, attn_output"},
    {"Q4_K_S", QR_FTYPE_MOSTLY_Q4_K_S, QR_TYPE_Q4_K, "Q4_K with Q5_K in the first layers"},
    {"Q4_K_M", QR_FTYPE_MOSTLY_Q4_K_M, QR_TYPE_Q4_K, "Q4_K with Q6_K in some attn_v/ffn_down"},
    {"Q5_K_S", QR_FTYPE_MOSTLY_Q5_K_S, QR_TYPE_Q5_K, "Q5_K everywhere but the output"},
    {"Q5_K_M", QR_FTYPE_MOSTLY_Q5_K_M, QR_TYPE_Q5_K, "Q5_K with Q6_K in some attn_v/ffn_down"},
    {"Q6_K", QR_FTYPE_MOSTLY_Q6_K, QR_TYPE_Q6_K, "6.56 bpw"},
    {"F16", QR_FTYPE_MOSTLY_F16, QR_TYPE_F16, "IEEE half for every 2-D weight"},
    {"BF16", QR_FTYPE_MOSTLY_BF16, QR_TYPE_BF16, "bfloat16 for every 2-D weight"},
    {"F32", QR_FTYPE_ALL_F32, QR_TYPE_F32, "float32 for every 2-D weight"},
};
#define N_MIXES ((int)(sizeof MIXES / sizeof MIXES[0]))

int qr_quant_mix_count(void) { return N_MIXES; }

const qr_quant_mix *qr_quant_mix_at(int i) { return i >= 0 && i < N_MIXES ? &MIXES[i] : NULL; }

const qr_quant_mix *qr_quant_mix_find(const char *name) {
    static const struct { const char *alias, *mix; } ALIASES[] = {
        {"Q3_K", "Q3_K_M"}, {"Q4_K", "Q4_K_M"}, {"Q5_K", "Q5_K_M"}};
    for (size_t i = 0; i < sizeof ALIASES / sizeof ALIASES[0]; i++) {
        if (strcasecmp(name, ALIASES[i].alias) == 0) name = ALIASES[i].mix;
    }
    for (int i = 0; i < N_MIXES; i++) {
        if (strcasecmp(name, MIXES[i].name) == 0) return &MIXES[i];
    }
    return NULL;
}

/* ---- Model facts ---------------------------------------------------------------------- */

/* A count that may be a scalar or a per-layer array (llama.cpp get_key_or_arr); the
 * rules only read layer 0. Absent: *out = dflt. */
static int read_count(const qr_gguf *g, const char *key, uint32_t dflt, uint32_t *out,
                      qr_error *err) {
    const qr_gguf_kv *kv = qr_gguf_find_kv(g, key);
    *out = dflt;
    if (!kv) return QR_OK;
    if (kv->value.type != QR_GGUF_ARRAY) return qr_gguf_get_u32(g, key, out, err);
    qr_gguf_value v;
    if (kv->value.v.arr.count == 0 || qr_gguf_array_get(&kv->value, 0, &v) != QR_OK) {
        return qr_fail(err, "%s: key '%s' is an empty or unreadable array", qr_gguf_path(g), key);
    }
    if (v.type == QR_GGUF_INT8 || v.type == QR_GGUF_INT16 || v.type == QR_GGUF_INT32 ||
        v.type == QR_GGUF_INT64) {
        if (v.v.i64 < 0 || v.v.i64 > UINT32_MAX) {
            return qr_fail(err, "%s: key '%s'[0] = %lld is out of range", qr_gguf_path(g), key,
                           (long long)v.v.i64);
        }
        *out = (uint32_t)v.v.i64;
    } else if (v.type == QR_GGUF_UINT8 || v.type == QR_GGUF_UINT16 || v.type == QR_GGUF_UINT32 ||
               v.type == QR_GGUF_UINT64) {
        if (v.v.u64 > UINT32_MAX) {
            return qr_fail(err, "%s: key '%s'[0] is out of range", qr_gguf_path(g), key);
        }
        *out = (uint32_t)v.v.u64;
    } else {
        return qr_fail(err, "%s: key '%s' is an array of %s, expected integers", qr_gguf_path(g),
                       key, qr_gguf_vtype_name(v.type));
    }
    return QR_OK;
}

int qr_quant_model_info_read(const qr_gguf *g, qr_quant_model_info *info, qr_error *err) {
    memset(info, 0, sizeof *info);
    char *arch = NULL;
    if (qr_gguf_get_str(g, "general.architecture", &arch, err) != QR_OK) return QR_ERR;
    if (strlen(arch) >= sizeof info->arch) {
        free(arch);
        return qr_fail(err, "%s: general.architecture is too long", qr_gguf_path(g));
    }
    strcpy(info->arch, arch);
    free(arch);

    char key[96];
    snprintf(key, sizeof key, "%s.block_count", info->arch);
    if (qr_gguf_get_u32(g, key, &info->n_layer, err) != QR_OK) return QR_ERR;
    if (info->n_layer == 0) return qr_fail(err, "%s: %s is 0", qr_gguf_path(g), key);
    snprintf(key, sizeof key, "%s.attention.head_count", info->arch);
    if (read_count(g, key, 0, &info->n_head, err) != QR_OK) return QR_ERR;
    snprintf(key, sizeof key, "%s.attention.head_count_kv", info->arch);
    if (read_count(g, key, info->n_head, &info->n_head_kv, err) != QR_OK) return QR_ERR;
    snprintf(key, sizeof key, "%s.expert_count", info->arch);
    if (read_count(g, key, 0, &info->n_expert, err) != QR_OK) return QR_ERR;

    /* llama.cpp's model-size detection matters only for LLM_TYPE_70B
     * (src/models/llama.cpp, qwen2.cpp load_arch_hparams). */
    const bool is_llama = strcmp(info->arch, "llama") == 0;
    const bool is_qwen2 = strcmp(info->arch, "qwen2") == 0;
    info->is_70b = (is_llama && info->n_expert != 8 && info->n_layer == 80 &&
                    info->n_head != info->n_head_kv) ||
                   (is_qwen2 && info->n_layer == 80);
    info->is_falcon = strcmp(info->arch, "falcon") == 0;
    if (!is_llama && !is_qwen2 && strcmp(info->arch, "gemma3") != 0 &&
        strcmp(info->arch, "gemma2") != 0 && strcmp(info->arch, "mistral3") != 0) {
        QR_LOG_WARN("quant", "architecture '%s' is not one quarrel validates; applying the "
                    "generic llama.cpp rules", info->arch);
    }
    return QR_OK;
}

/* ---- Tensor classification ------------------------------------------------------------ */

typedef enum {
    CAT_OUTPUT,
    CAT_TOKEN_EMBD,
    CAT_ATTN_QKV,
    CAT_ATTN_KV_B,
    CAT_ATTN_V,
    CAT_ATTN_K,
    CAT_ATTN_Q,
    CAT_ATTN_OUTPUT,
    CAT_FFN_UP,
    CAT_FFN_GATE,
    CAT_FFN_DOWN,
    CAT_OTHER,
} category;

static bool contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static category tensor_category(const char *name) {
    if (strcmp(name, "output.weight") == 0) return CAT_OUTPUT;
    if (strcmp(name, "token_embd.weight") == 0 || strcmp(name, "per_layer_token_embd.weight") == 0) {
        return CAT_TOKEN_EMBD;
    }
    /* Substring tests in llama.cpp's order: "ffn_up" also matches ffn_up_exps etc. */
    static const struct { const char *sub; category cat; } TABLE[] = {
        {"attn_qkv.weight", CAT_ATTN_QKV},   {"attn_kv_b.weight", CAT_ATTN_KV_B},
        {"attn_v.weight", CAT_ATTN_V},       {"attn_k.weight", CAT_ATTN_K},
        {"attn_q.weight", CAT_ATTN_Q},       {"attn_output.weight", CAT_ATTN_OUTPUT},
        {"ffn_up", CAT_FFN_UP},              {"ffn_gate", CAT_FFN_GATE},
        {"ffn_down", CAT_FFN_DOWN},
    };
    for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; i++) {
        if (contains(name, TABLE[i].sub)) return TABLE[i].cat;
    }
    return CAT_OTHER;
}

/* attn_v-like tensors are the most sensitive to quantization. */
static bool category_is_attn_v(category c) {
    return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

/* ggml_n_dims: trailing dimensions of size 1 do not count. */
static int n_dims(const int64_t ne[4]) {
    for (int i = 3; i >= 1; i--) {
        if (ne[i] > 1) return i + 1;
    }
    return 1;
}

/* Only weights of 2 or more dimensions are quantized, minus norms and a list of small or
 * special tensors (tensor_allows_quantization). */
static bool allows_quantization(const qr_quant_tensor_desc *t) {
    if (n_dims(t->ne) < 2) return false;
    const char *name = t->name;
    if (!ends_with(name, "weight")) return false;
    static const char *const NEVER_CONTAINS[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
        "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
        "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight",
        "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
        "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
        "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
        "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
        ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd",
        ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
    };
    for (size_t i = 0; i < sizeof NEVER_CONTAINS / sizeof NEVER_CONTAINS[0]; i++) {
        if (contains(name, NEVER_CONTAINS[i])) return false;
    }
    return strcmp(name, "position_embd.weight") != 0 && strcmp(name, "token_types.weight") != 0;
}

/* ---- Type selection ------------------------------------------------------------------- */

typedef struct {
    const qr_quant_model_info *info;
    qr_ftype ftype;
    int n_attention_wv, i_attention_wv;
    int n_ffn_down, i_ffn_down;
    int n_ffn_gate, i_ffn_gate;
    int n_ffn_up, i_ffn_up;
    bool has_tied_embeddings;
} policy_state;

/* The first and last eighth of the layers plus every third layer in between. */
static bool use_more_bits(int i_layer, int n_layers) {
    return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

static uint32_t n_gqa(const qr_quant_model_info *info) {
    return info->n_head_kv == 0 ? 0 : info->n_head / info->n_head_kv;
}

static int block_size(qr_type t) { return qr_type_get_traits((uint32_t)t)->block_size; }

/* The layer a per-layer rule should use: the occurrence counter, except in MoE models,
 * whose expert tensors are not consecutive, where it is parsed from "blk.N.". */
static int layer_of(const policy_state *st, int counter, int n_layer, const char *name,
                    int *i_layer, qr_error *err) {
    *i_layer = counter;
    if (st->info->n_expert > 1) {
        int il;
        if (sscanf(name, "blk.%d.", &il) != 1) {
            return qr_fail(err, "tensor '%s': cannot determine its layer (expected blk.N.)", name);
        }
        if (il < 0 || il >= n_layer) {
            return qr_fail(err, "tensor '%s': layer %d is not in [0, %d)", name, il, n_layer);
        }
        *i_layer = il;
    }
    return QR_OK;
}

static qr_type attn_v_type(policy_state *st, qr_type t) {
    const qr_ftype f = st->ftype;
    if (f == QR_FTYPE_MOSTLY_Q2_K) {
        t = n_gqa(st->info) >= 4 ? QR_TYPE_Q4_K : QR_TYPE_Q3_K;
    } else if (f == QR_FTYPE_MOSTLY_Q3_K_M) {
        t = st->i_attention_wv < 2 ? QR_TYPE_Q5_K : QR_TYPE_Q4_K;
    } else if (f == QR_FTYPE_MOSTLY_Q3_K_L) {
        t = QR_TYPE_Q5_K;
    } else if ((f == QR_FTYPE_MOSTLY_Q4_K_M || f == QR_FTYPE_MOSTLY_Q5_K_M) &&
               use_more_bits(st->i_attention_wv, st->n_attention_wv)) {
        t = QR_TYPE_Q6_K;
    } else if (f == QR_FTYPE_MOSTLY_Q4_K_S && st->i_attention_wv < 4) {
        t = QR_TYPE_Q5_K;
    }
    /* 70B models share one attn_v among 8 heads: it is 8x smaller than attn_q, so more
     * bits there cost little. */
    if (st->info->is_70b && (t == QR_TYPE_Q3_K || t == QR_TYPE_Q4_K)) t = QR_TYPE_Q5_K;
    if (st->info->n_expert == 8) t = QR_TYPE_Q8_0;
    ++st->i_attention_wv;
    return t;
}

static int ffn_down_type(policy_state *st, const char *name, qr_type *t, qr_error *err) {
    int il;
    const int n = st->n_ffn_down;
    if (layer_of(st, st->i_ffn_down, n, name, &il, err) != QR_OK) return QR_ERR;
    const qr_ftype f = st->ftype;
    const bool falcon = st->info->is_falcon;
    if (f == QR_FTYPE_MOSTLY_Q2_K) {
        *t = QR_TYPE_Q3_K;
    } else if (f == QR_FTYPE_MOSTLY_Q3_K_M) {
        *t = il < n / 16                              ? QR_TYPE_Q5_K
             : !falcon || use_more_bits(il, n)        ? QR_TYPE_Q4_K
                                                      : QR_TYPE_Q3_K;
    } else if (f == QR_FTYPE_MOSTLY_Q3_K_L) {
        *t = falcon ? QR_TYPE_Q4_K : QR_TYPE_Q5_K;
    } else if (f == QR_FTYPE_MOSTLY_Q4_K_M) {
        if (falcon) {
            *t = il < n / 16 ? QR_TYPE_Q6_K : use_more_bits(il, n) ? QR_TYPE_Q5_K : QR_TYPE_Q4_K;
        } else if (use_more_bits(il, n)) {
            *t = QR_TYPE_Q6_K;
        }
    } else if (f == QR_FTYPE_MOSTLY_Q5_K_M && use_more_bits(il, n)) {
        *t = QR_TYPE_Q6_K;
    } else if (f == QR_FTYPE_MOSTLY_Q4_K_S && !falcon && il < n / 8) {
        *t = QR_TYPE_Q5_K;
    }
    ++st->i_ffn_down;
    return QR_OK;
}

static qr_type attn_output_type(const policy_state *st, qr_type t) {
    const qr_ftype f = st->ftype;
    if (st->info->is_falcon) return f == QR_FTYPE_MOSTLY_Q3_K_L ? QR_TYPE_Q4_K : t;
    if (st->info->n_expert == 8) {
        if (f == QR_FTYPE_MOSTLY_Q2_K || f == QR_FTYPE_MOSTLY_Q3_K_S || f == QR_FTYPE_MOSTLY_Q3_K_M ||
            f == QR_FTYPE_MOSTLY_Q4_K_S || f == QR_FTYPE_MOSTLY_Q4_K_M) {
            t = QR_TYPE_Q5_K;
        }
        return t;
    }
    if (f == QR_FTYPE_MOSTLY_Q2_K) return QR_TYPE_Q3_K;
    if (f == QR_FTYPE_MOSTLY_Q3_K_M) return QR_TYPE_Q4_K;
    if (f == QR_FTYPE_MOSTLY_Q3_K_L) return QR_TYPE_Q5_K;
    return t;
}

/* llama_tensor_get_type_impl restricted to the mixes quarrel offers. (llama.cpp's separate
 * attn_qkv branch is unreachable there: attn_qkv is attn_v-like and handled first.) */
static int mix_type(policy_state *st, const qr_quant_tensor_desc *t, category cat, qr_type *type,
                    qr_error *err) {
    int il;
    if (cat == CAT_OUTPUT || (st->has_tied_embeddings && cat == CAT_TOKEN_EMBD)) {
        /* The output matrix (or the embeddings standing in for it) gets Q6_K unless the
         * mix is Q8_0, or Q8_0 when its rows do not fit the mix's blocks. */
        if (st->info->is_falcon || t->ne[0] % block_size(*type) != 0) {
            *type = QR_TYPE_Q8_0;
        } else if (*type != QR_TYPE_Q8_0) {
            *type = QR_TYPE_Q6_K;
        }
    } else if (cat == CAT_TOKEN_EMBD) {
        /* unchanged for the non-IQ mixes */
    } else if (category_is_attn_v(cat)) {
        *type = attn_v_type(st, *type);
    } else if (cat == CAT_ATTN_K) {
        if (st->info->n_expert == 8) *type = QR_TYPE_Q8_0;
    } else if (cat == CAT_FFN_DOWN) {
        return ffn_down_type(st, t->name, type, err);
    } else if (cat == CAT_ATTN_OUTPUT) {
        *type = attn_output_type(st, *type);
    } else if (cat == CAT_FFN_GATE) {
        /* No non-IQ rule; the layer lookup still validates MoE names as llama.cpp does. */
        if (layer_of(st, st->i_ffn_gate, st->n_ffn_gate, t->name, &il, err) != QR_OK) return QR_ERR;
        ++st->i_ffn_gate;
    } else if (cat == CAT_FFN_UP) {
        if (layer_of(st, st->i_ffn_up, st->n_ffn_up, t->name, &il, err) != QR_OK) return QR_ERR;
        ++st->i_ffn_up;
    }
    return QR_OK;
}

/* A type whose block does not divide the row length falls back to a 32-element format,
 * and to F16 when even that does not fit (tensor_type_fallback). */
static int fallback_type(const qr_quant_tensor_desc *t, qr_type wanted, qr_type *out, qr_error *err) {
    const int64_t ncols = t->ne[0];
    *out = wanted;
    if (ncols % block_size(wanted) == 0) return QR_OK;
    switch (wanted) {
    case QR_TYPE_Q2_K:
    case QR_TYPE_Q3_K: *out = QR_TYPE_Q4_0; break;
    case QR_TYPE_Q4_K: *out = QR_TYPE_Q5_0; break;
    case QR_TYPE_Q5_K: *out = QR_TYPE_Q5_1; break;
    case QR_TYPE_Q6_K: *out = QR_TYPE_Q8_0; break;
    case QR_TYPE_IQ4_XS: *out = QR_TYPE_IQ4_NL; break;
    default:
        return qr_fail(err, "tensor '%s': rows of %lld elements do not fit %s blocks of %d, and "
                       "llama.cpp defines no fallback for %s", t->name, (long long)ncols,
                       qr_type_name(wanted), block_size(wanted), qr_type_name(wanted));
    }
    if (ncols % block_size(*out) != 0) *out = QR_TYPE_F16;
    return QR_OK;
}

/* ---- Plan ------------------------------------------------------------------------------ */

/* The layer number sscanf("blk.%d.") would read, or -1. */
static long loader_layer(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) return -1;
    char *end;
    long v = strtol(name + 4, &end, 10);
    return end == name + 4 ? -1 : v;
}

typedef struct {
    const qr_quant_tensor_desc *tensors;
} sort_ctx;

static int compare_loader_order(const void *a, const void *b, void *arg) {
    const sort_ctx *c = arg;
    const char *na = c->tensors[((const qr_quant_plan_item *)a)->index].name;
    const char *nb = c->tensors[((const qr_quant_plan_item *)b)->index].name;
    long la = loader_layer(na), lb = loader_layer(nb);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(na, nb);
}

static void init_state(policy_state *st, const qr_quant_model_info *info, qr_ftype ftype,
                       const qr_quant_tensor_desc *tensors, int64_t n) {
    memset(st, 0, sizeof *st);
    st->info = info;
    st->ftype = ftype;
    st->has_tied_embeddings = true;
    for (int64_t i = 0; i < n; i++) {
        category c = tensor_category(tensors[i].name);
        if (category_is_attn_v(c)) st->n_attention_wv++;
        if (c == CAT_OUTPUT) st->has_tied_embeddings = false;
    }
    st->n_ffn_down = st->n_ffn_gate = st->n_ffn_up = (int)info->n_layer;
}

static int plan_one(policy_state *st, const qr_quant_mix *mix, const qr_quant_tensor_desc *t,
                    qr_quant_plan_item *item, qr_error *err) {
    item->type = item->wanted = t->type;
    item->fell_back = false;
    if (!allows_quantization(t)) return QR_OK;
    qr_type type = mix->default_type;
    /* F16/BF16/F32 mixes apply to every quantizable tensor; only block formats get the
     * per-tensor rules and the row-length fallback. */
    if (qr_type_get_traits((uint32_t)type)->is_quantized) {
        if (mix_type(st, t, tensor_category(t->name), &type, err) != QR_OK) return QR_ERR;
        item->wanted = type;
        if (fallback_type(t, item->wanted, &type, err) != QR_OK) return QR_ERR;
        item->fell_back = type != item->wanted;
    } else {
        item->wanted = type;
    }
    item->type = type;
    return QR_OK;
}

int qr_quant_plan_build(const qr_quant_model_info *info, const qr_quant_mix *mix,
                        const qr_quant_tensor_desc *tensors, int64_t n_tensors,
                        qr_quant_plan *plan, qr_error *err) {
    memset(plan, 0, sizeof *plan);
    plan->items = calloc(n_tensors > 0 ? (size_t)n_tensors : 1, sizeof *plan->items);
    if (!plan->items) return qr_fail(err, "quantization plan: out of memory");
    plan->n = n_tensors;
    for (int64_t i = 0; i < n_tensors; i++) plan->items[i].index = i;
    sort_ctx sc = {tensors};
    qsort_r(plan->items, (size_t)n_tensors, sizeof *plan->items, compare_loader_order, &sc);

    policy_state st;
    init_state(&st, info, mix->ftype, tensors, n_tensors);
    for (int64_t i = 0; i < n_tensors; i++) {
        qr_quant_plan_item *it = &plan->items[i];
        if (plan_one(&st, mix, &tensors[it->index], it, err) != QR_OK) {
            qr_quant_plan_free(plan);
            return QR_ERR;
        }
        plan->n_fallback += it->fell_back;
    }
    return QR_OK;
}

void qr_quant_plan_free(qr_quant_plan *plan) {
    free(plan->items);
    memset(plan, 0, sizeof *plan);
}

int qr_quant_plan_build_gguf(const qr_gguf *g, const qr_quant_mix *mix, qr_quant_plan *plan,
                             qr_error *err) {
    memset(plan, 0, sizeof *plan);
    qr_quant_model_info info;
    if (qr_quant_model_info_read(g, &info, err) != QR_OK) return QR_ERR;
    const int64_t n = qr_gguf_n_tensors(g);
    qr_quant_tensor_desc *descs = calloc(n > 0 ? (size_t)n : 1, sizeof *descs);
    char **names = calloc(n > 0 ? (size_t)n : 1, sizeof *names);
    int rc = descs && names ? QR_OK : qr_fail(err, "quantization plan: out of memory");
    for (int64_t i = 0; rc == QR_OK && i < n; i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        names[i] = strndup(t->name.ptr, (size_t)t->name.len);
        if (!names[i]) {
            rc = qr_fail(err, "quantization plan: out of memory");
            break;
        }
        descs[i].name = names[i];
        descs[i].type = t->type;
        for (int d = 0; d < 4; d++) descs[i].ne[d] = t->ne[d];
    }
    if (rc == QR_OK) rc = qr_quant_plan_build(&info, mix, descs, n, plan, err);
    for (int64_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(descs);
    return rc;
}
