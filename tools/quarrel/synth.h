/* `quarrel synth`: the pieces behind cmd_synth.c. docs/synth.md describes the command. */
#ifndef QR_TOOLS_SYNTH_H
#define QR_TOOLS_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "model/arch.h"

/* synth_shapes.c: the named shapes. n_vocab 0 means "the vocabulary file's size". */
int synth_shape_get(const qr_arch *arch, const char *shape, qr_hparams *hp, qr_error *err);
const char *synth_shape_names(void);

/* synth_vocab.c: copies every tokenizer.* key of `vocab`, padding tokens, scores and
 * token_type with UNUSED tokens up to n_vocab entries. */
int synth_vocab_n_tokens(const qr_gguf *vocab, uint64_t *n, qr_error *err);
int synth_vocab_write(qr_gguf_writer *w, const qr_gguf *vocab, uint64_t n_vocab, qr_error *err);

/* synth_types.c: the storage type of every tensor for a --type argument, which is a block
 * type name (every 2-D weight in that type, "pure") or a llama-quantize mix name. */
typedef struct synth_type_choice {
    qr_type *types;     /* one per tensor, malloc'd */
    uint32_t ftype;     /* general.file_type */
    int n_fallback;     /* tensors whose row length forced another type */
} synth_type_choice;

int synth_types_choose(const char *type_arg, const qr_arch *arch, const qr_hparams *hp,
                       const qr_tensor_inst *t, size_t n, synth_type_choice *out, qr_error *err);
void synth_types_free(synth_type_choice *c);

/* synth_data.c: generates and writes one tensor's data (the writer must be positioned
 * at that tensor). Matrices and biases: row r of tensor `index` is drawn from RNG
 * stream (seed, index, r), N(0, std^2); norms are 1.0; rope_freqs follows Llama 3. */
typedef struct synth_gen {
    uint64_t seed;
    float std;
    int n_threads;
} synth_gen;

int synth_write_tensor(qr_gguf_writer *w, const synth_gen *g, const qr_hparams *hp,
                       const qr_tensor_inst *t, size_t index, qr_type type, qr_error *err);

#endif
