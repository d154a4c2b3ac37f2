/* Architecture descriptors: one table row per architecture that says which tensors its
 * GGUF files hold (names, shapes as functions of the hyper-parameters, which ones are
 * optional) and which `<arch>.*` metadata keys carry those hyper-parameters.
 *
 * The facts come from llama.cpp (src/models/<arch>.cpp load_arch_tensors and
 * load_arch_hparams, the converters in conversion/, gguf-py/gguf/constants.py); see
 * ../shared/MODELS.md sections 0-2. `quarrel synth` writes files from these rows, the
 * model loader checks files against them, and the forward pass will extend qr_arch
 * with compute semantics (norm kind, activation, RoPE type, ...).
 *
 * Shapes are ggml `ne` order: ne[0] is the contiguous (row) length, so a weight that
 * maps n_in to n_out is {n_in, n_out}. */
#ifndef QR_MODEL_ARCH_H
#define QR_MODEL_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"

typedef enum qr_arch_id {
    QR_ARCH_LLAMA = 0,
    QR_ARCH_MISTRAL, /* GGUF arch "llama" plus llama.attention.sliding_window */
    QR_ARCH_QWEN2,
    QR_ARCH_GEMMA3,
    QR_ARCH_COUNT
} qr_arch_id;

/* Hyper-parameters as a file states them (after defaults are applied). */
typedef struct qr_hparams {
    uint32_t n_vocab;
    uint32_t n_ctx;          /* context_length (training context) */
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;
    uint32_t head_dim_k;     /* attention.key_length; default n_embd / n_head */
    uint32_t head_dim_v;     /* attention.value_length; default n_embd / n_head */
    uint32_t n_rot;          /* rope.dimension_count; default head_dim_k */
    float rms_eps;
    float rope_base;
    float rope_base_swa;     /* rope.freq_base_swa (local layers); 0 = not stated */
    uint32_t sliding_window; /* attention.sliding_window; 0 = no sliding window */
    uint32_t swa_pattern;    /* attention.sliding_window_pattern; 0 = not stated */
    bool tied_output;        /* no output.weight: logits use token_embd */
    bool qkv_bias;           /* attn_q/k/v.bias present */
    bool rope_freqs;         /* rope_freqs.weight (Llama 3 RoPE scaling) present */
} qr_hparams;

/* Dimension symbols used in tensor shapes. */
typedef enum qr_dim {
    QR_DIM_ONE = 0,
    QR_DIM_EMBD,      /* n_embd */
    QR_DIM_VOCAB,     /* n_vocab */
    QR_DIM_FF,        /* n_ff */
    QR_DIM_Q,         /* n_head * head_dim_k */
    QR_DIM_K,         /* n_head_kv * head_dim_k */
    QR_DIM_V,         /* n_head_kv * head_dim_v */
    QR_DIM_HEAD_K,    /* head_dim_k (per-head Q/K norms) */
    QR_DIM_ROT_HALF,  /* n_rot / 2 (rope_freqs) */
} qr_dim;

/* What a tensor holds, which decides its storage type and synthetic content. */
typedef enum qr_tensor_kind {
    QR_TENSOR_MATRIX = 0, /* 2-D weight: stored in the model's block type */
    QR_TENSOR_NORM,       /* RMSNorm scale: F32 */
    QR_TENSOR_BIAS,       /* additive bias: F32 */
    QR_TENSOR_ROPE_FREQS, /* RoPE frequency divisors: F32 */
} qr_tensor_kind;

/* When a tensor is present in a file with given hyper-parameters. */
typedef enum qr_presence {
    QR_PRESENT_ALWAYS = 0,
    QR_PRESENT_IF_UNTIED,     /* output.weight: absent when tied_output */
    QR_PRESENT_IF_QKV_BIAS,
    QR_PRESENT_IF_ROPE_FREQS,
    QR_PRESENT_OPTIONAL,      /* accepted by llama.cpp's loader; never written by synth */
} qr_presence;

typedef struct qr_tensor_spec {
    const char *name;     /* "token_embd.weight", or "blk.%u.attn_q.weight" if per_layer */
    bool per_layer;
    qr_tensor_kind kind;
    qr_presence presence;
    uint32_t n_dims;
    qr_dim ne[2];
} qr_tensor_spec;

/* When a metadata key is written (synth) and whether a loader must find it. */
typedef enum qr_kv_presence {
    QR_KV_ALWAYS = 0,
    QR_KV_IF_NONZERO,          /* written only when the field is nonzero */
    QR_KV_IF_HEAD_DIM_CUSTOM,  /* written when head_dim * n_head != n_embd */
} qr_kv_presence;

typedef struct qr_kv_spec {
    const char *suffix;     /* key after "<gguf_name>.", e.g. "attention.head_count" */
    qr_gguf_vtype type;     /* QR_GGUF_UINT32 or QR_GGUF_FLOAT32 */
    size_t field;           /* offsetof(qr_hparams, ...) of a uint32_t or float */
    qr_kv_presence presence;
    bool required;          /* llama.cpp fails to load the model without it */
} qr_kv_spec;

typedef struct qr_arch {
    qr_arch_id id;
    const char *name;       /* quarrel's name: "llama", "mistral", "qwen2", "gemma3" */
    const char *gguf_name;  /* general.architecture and key prefix */
    const qr_tensor_spec *tensors; /* file order: globals before blk, blk, globals after */
    size_t n_tensors;
    const qr_kv_spec *keys;
    size_t n_keys;
    bool head_dim_free;     /* head_dim * n_head may differ from n_embd (llama, gemma3) */
} qr_arch;

const qr_arch *qr_arch_get(qr_arch_id id);
/* By quarrel's name (case-sensitive); NULL when unknown. */
const qr_arch *qr_arch_find(const char *name);
/* "llama|mistral|qwen2|gemma3", for usage and error messages. */
const char *qr_arch_names(void);

/* The value of a dimension symbol. */
int64_t qr_hparams_dim(const qr_hparams *hp, qr_dim d);
/* A key's field as a number (uint32 fields widened). */
double qr_hparams_field(const qr_hparams *hp, const qr_kv_spec *k);
/* Whether a key is written for these hyper-parameters. */
bool qr_kv_present(const qr_kv_spec *k, const qr_hparams *hp);

/* Checks that the hyper-parameters make a consistent model of this architecture:
 * every count positive, n_head divisible by n_head_kv, head dims even, n_rot within
 * head_dim_k, head_dim * n_head == n_embd where the architecture requires it. The
 * message names the offending parameter. */
int qr_hparams_validate(const qr_arch *a, const qr_hparams *hp, qr_error *err);

/* One tensor of a concrete model. */
typedef struct qr_tensor_inst {
    char name[64];
    const qr_tensor_spec *spec;
    int32_t layer;    /* -1 for global tensors */
    uint32_t n_dims;
    int64_t ne[2];
} qr_tensor_inst;

bool qr_tensor_present(const qr_tensor_spec *t, const qr_hparams *hp);
/* The tensors a file of these hyper-parameters holds, in file order. *out is malloc'd
 * (free it); OPTIONAL tensors are left out. */
int qr_arch_tensors(const qr_arch *a, const qr_hparams *hp, qr_tensor_inst **out,
                    size_t *n_out, qr_error *err);

#endif
