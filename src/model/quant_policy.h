/* Which block type each tensor gets in a quantization mix: llama.cpp's rules
 * (src/llama-quant.cpp, llama_tensor_get_type and friends), reimplemented so that
 * `quarrel quantize` writes the same tensor types as llama-quantize. docs/quantize.md
 * spells the rules out.
 *
 * Some rules depend on the order in which tensors are visited (Q3_K_M's first two attn_v
 * tensors, the "use more bits" layers of Q4_K_M/Q5_K_M counted by occurrence), so the
 * plan also fixes that order: llama.cpp's loader order, i.e. tensors outside "blk.N."
 * first, then by layer number, each group sorted by name. */
#ifndef QR_MODEL_QUANT_POLICY_H
#define QR_MODEL_QUANT_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "gguf/types.h"

/* llama.cpp's llama_ftype numbers: written to general.file_type. */
typedef enum qr_ftype {
    QR_FTYPE_ALL_F32 = 0,
    QR_FTYPE_MOSTLY_F16 = 1,
    QR_FTYPE_MOSTLY_Q4_0 = 2,
    QR_FTYPE_MOSTLY_Q4_1 = 3,
    QR_FTYPE_MOSTLY_Q8_0 = 7,
    QR_FTYPE_MOSTLY_Q5_0 = 8,
    QR_FTYPE_MOSTLY_Q5_1 = 9,
    QR_FTYPE_MOSTLY_Q2_K = 10,
    QR_FTYPE_MOSTLY_Q3_K_S = 11,
    QR_FTYPE_MOSTLY_Q3_K_M = 12,
    QR_FTYPE_MOSTLY_Q3_K_L = 13,
    QR_FTYPE_MOSTLY_Q4_K_S = 14,
    QR_FTYPE_MOSTLY_Q4_K_M = 15,
    QR_FTYPE_MOSTLY_Q5_K_S = 16,
    QR_FTYPE_MOSTLY_Q5_K_M = 17,
    QR_FTYPE_MOSTLY_Q6_K = 18,
    QR_FTYPE_MOSTLY_BF16 = 32,
} qr_ftype;

/* A mix as llama-quantize names it on its command line. */
typedef struct qr_quant_mix {
    const char *name;       /* "Q4_K_M" */
    qr_ftype ftype;
    qr_type default_type;   /* the block type of most 2-D weights */
    const char *summary;
} qr_quant_mix;

int qr_quant_mix_count(void);
const qr_quant_mix *qr_quant_mix_at(int i);
/* Case-insensitive; also accepts llama-quantize's aliases Q3_K, Q4_K, Q5_K (= the _M
 * mixes). NULL when unknown. */
const qr_quant_mix *qr_quant_mix_find(const char *name);

/* The model facts the rules read (llama.cpp's hparams). */
typedef struct qr_quant_model_info {
    char arch[32];      /* general.architecture */
    uint32_t n_layer;   /* <arch>.block_count */
    uint32_t n_head;    /* <arch>.attention.head_count (layer 0 when per-layer) */
    uint32_t n_head_kv; /* <arch>.attention.head_count_kv, default n_head */
    uint32_t n_expert;  /* <arch>.expert_count, default 0 */
    bool is_70b;        /* llama.cpp's LLM_TYPE_70B: bumps attn_v */
    bool is_falcon;
} qr_quant_model_info;

/* Reads the facts above from a file's metadata. Errors name the missing key. */
int qr_quant_model_info_read(const qr_gguf *g, qr_quant_model_info *info, qr_error *err);

/* One tensor as the rules see it. */
typedef struct qr_quant_tensor_desc {
    const char *name;   /* NUL-terminated */
    qr_type type;       /* current type */
    int64_t ne[4];      /* unused dims are 1 */
} qr_quant_tensor_desc;

typedef struct qr_quant_plan_item {
    int64_t index;      /* into the caller's tensor list */
    qr_type type;       /* target type (== current type: copied unchanged) */
    bool fell_back;     /* the mix's type did not fit the row length */
    qr_type wanted;     /* the type before the fallback */
} qr_quant_plan_item;

typedef struct qr_quant_plan {
    qr_quant_plan_item *items; /* in llama.cpp's write order */
    int64_t n;
    int n_fallback;
} qr_quant_plan;

/* Decides every tensor's target type. Fails (naming the tensor) where llama.cpp throws:
 * a row length that no fallback type divides is impossible here, but a malformed
 * "blk.N." name in a MoE model or an unknown fallback is reported. */
int qr_quant_plan_build(const qr_quant_model_info *info, const qr_quant_mix *mix,
                        const qr_quant_tensor_desc *tensors, int64_t n_tensors,
                        qr_quant_plan *plan, qr_error *err);
void qr_quant_plan_free(qr_quant_plan *plan);

/* The same, reading model facts and tensors from an open file. */
int qr_quant_plan_build_gguf(const qr_gguf *g, const qr_quant_mix *mix, qr_quant_plan *plan,
                             qr_error *err);

#endif
