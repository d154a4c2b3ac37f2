/* Compute semantics of a model, read from its GGUF metadata: everything the forward pass
 * needs to know about an architecture, as values rather than name tests. One descriptor
 * per loaded model; the forward pass reads it and never looks at the architecture name.
 *
 * The facts (defaults, which architecture has which block) follow llama.cpp at commit
 * 3f545bec; ../shared/MODELS.md sections 1-2 list them with their sources. */
#ifndef QR_MODEL_DESCRIPTOR_H
#define QR_MODEL_DESCRIPTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "model/arch.h"

typedef enum qr_activation {
    QR_ACT_SILU = 0,  /* down(SiLU(gate x) * up x): llama, mistral, qwen2 */
    QR_ACT_GELU_TANH, /* down(GELU_tanh(gate x) * up x), GELU through ggml's F16 table: gemma3 */
} qr_activation;

typedef enum qr_rope_type {
    QR_ROPE_NORM = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): llama */
    QR_ROPE_NEOX,     /* rotate halves (x[i], x[i + n_rot/2]): qwen2, gemma3 */
} qr_rope_type;

typedef struct qr_descriptor {
    const qr_arch *arch;
    qr_hparams hp;            /* sizes as the file states them, defaults applied */

    float norm_eps;           /* RMSNorm epsilon */
    qr_activation act;
    bool qkv_bias;            /* attn_q/k/v.bias present */
    bool qk_norm;             /* per-head RMSNorm of Q and K before RoPE (gemma3) */
    bool post_norms;          /* RMSNorm after attention and after the FFN (gemma3) */
    float embd_scale;         /* token embeddings multiplied by this; 1 = none */

    qr_rope_type rope_type;
    float rope_base;          /* global (full-attention) layers */
    float rope_freq_scale;    /* 1/linear factor, global layers; 1 = unscaled */
    float rope_base_swa;      /* sliding-window layers */
    float rope_freq_scale_swa;
    bool rope_freqs;          /* Llama 3 rope_freqs.weight divides each frequency */

    uint32_t n_swa;           /* sliding window in tokens; 0 = no sliding window */
    uint32_t swa_pattern;     /* P: layer il is local iff il % P < P - 1; 1 = all local */

    bool q_prescaled;         /* Q multiplied by attn_scale before attention (gemma3),
                                 else scores multiplied by attn_scale */
    float attn_scale;
    float attn_softcap;       /* 0 = none */
    float final_softcap;      /* 0 = none */
    bool tied_output;         /* no output.weight: logits use token_embd */
    bool output_bias;         /* output.bias present (qwen2) */
} qr_descriptor;

/* Reads general.architecture and the `<arch>.*` keys. Unsupported architectures, missing
 * required keys (e.g. attention.layer_norm_rms_epsilon), wrongly typed keys and
 * unsupported options (YaRN, per-layer head counts) fail with a message naming the file
 * and the key. The g is only read during the call. */
int qr_descriptor_read(const qr_gguf *g, qr_descriptor *d, qr_error *err);

/* True when layer il uses sliding-window attention. */
bool qr_descriptor_layer_is_swa(const qr_descriptor *d, uint32_t il);

/* ---- Resolved descriptor as JSON, and overrides (src/model/descriptor_json.c) ------------ */

/* Writes every field of d (and the sizes of d->hp) as a pretty-printed JSON object into a
 * malloc'd, NUL-terminated *out (free it). Feeding it back to qr_descriptor_apply_json
 * changes nothing. */
int qr_descriptor_to_json(const qr_descriptor *d, char **out, qr_error *err);

/* Overrides the fields named in the JSON object `json` (e.g. {"n_swa": 4096}). Fields
 * that describe tensor presence or sizes (arch, n_embd, n_layer, n_head, qkv_bias,
 * tied_output, ...) must match the file and are accepted only with their current value.
 * An unknown key, a wrong type or an out-of-range value fails naming the key and
 * source_name (a file name, for messages) and leaves d unchanged. */
int qr_descriptor_apply_json(qr_descriptor *d, const char *json, const char *source_name, qr_error *err);

/* Reads the file at path and applies it as qr_descriptor_apply_json. */
int qr_descriptor_apply_json_file(qr_descriptor *d, const char *path, qr_error *err);

/* Sets the sliding window (0 = none). A descriptor whose layers are all alike
 * (swa_pattern 1: llama, mistral, qwen2) then slides on every layer. */
int qr_descriptor_set_swa(qr_descriptor *d, int64_t n_swa, qr_error *err);

#endif
