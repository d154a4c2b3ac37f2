/* A loaded model: the mapped GGUF file, its descriptor, its tokenizer and every weight
 * bound by name as a view into the mapping (weights stay in their block format).
 *
 * Binding checks each tensor the architecture table lists (src/model/arch.h) for
 * presence, dimensions and type class (matrices: any supported block type; norms,
 * biases, rope_freqs: F32), so the forward pass can trust every shape. */
#ifndef QR_MODEL_MODEL_H
#define QR_MODEL_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "model/descriptor.h"
#include "tokenizer/tokenizer.h"

/* A weight: data == NULL when the (optional) tensor is absent. ne0 is the row length. */
typedef struct qr_weight {
    qr_type type;
    int64_t ne0, ne1;
    const void *data;
} qr_weight;

typedef struct qr_layer_weights {
    qr_weight attn_norm;
    qr_weight wq, wk, wv, wo;
    qr_weight bq, bk, bv, bo;
    qr_weight q_norm, k_norm;         /* gemma3 */
    qr_weight post_attn_norm;         /* gemma3 */
    qr_weight ffn_norm;
    qr_weight ffn_gate, ffn_up, ffn_down;
    qr_weight b_gate, b_up, b_down;   /* llama: optional */
    qr_weight post_ffw_norm;          /* gemma3 */
} qr_layer_weights;

typedef struct qr_model {
    qr_gguf *gguf;
    qr_descriptor desc;
    qr_tokenizer *tok;
    qr_weight tok_embd, output_norm, output, output_bias, rope_freqs;
    qr_layer_weights *layers; /* desc.hp.n_layer */
} qr_model;

/* Opens path, reads the descriptor, binds the weights and loads the tokenizer. On error
 * *out is NULL and err names the file and the tensor or key at fault. */
int qr_model_open(const char *path, qr_model **out, qr_error *err);
void qr_model_close(qr_model *m);

#endif
