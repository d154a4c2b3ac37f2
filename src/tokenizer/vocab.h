/* The vocabulary of a GGUF model, read from its tokenizer.ggml.* metadata the way
 * llama.cpp's llama_vocab::impl::load does (defaults per tokenizer model, per
 * pre-tokenizer flags, special-token ids, token attributes, end-of-generation set). */
#ifndef QR_TOKENIZER_VOCAB_H
#define QR_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/strmap.h"

typedef enum qr_vocab_type {
    QR_VOCAB_SPM = 1, /* tokenizer.ggml.model = "llama": SentencePiece with byte fallback */
    QR_VOCAB_BPE = 2, /* "gpt2": byte-level BPE */
    QR_VOCAB_WPM = 3, /* "bert": WordPiece */
} qr_vocab_type;

/* Token types as stored in tokenizer.ggml.token_type (llama.h). */
enum {
    QR_TOKEN_TYPE_UNDEFINED = 0,
    QR_TOKEN_TYPE_NORMAL = 1,
    QR_TOKEN_TYPE_UNKNOWN = 2,
    QR_TOKEN_TYPE_CONTROL = 3,
    QR_TOKEN_TYPE_USER_DEFINED = 4,
    QR_TOKEN_TYPE_UNUSED = 5,
    QR_TOKEN_TYPE_BYTE = 6,
};

/* Token attributes (bit set), derived from the type plus load-time fix-ups. */
enum {
    QR_ATTR_UNKNOWN = 1 << 0,
    QR_ATTR_UNUSED = 1 << 1,
    QR_ATTR_NORMAL = 1 << 2,
    QR_ATTR_CONTROL = 1 << 3,
    QR_ATTR_USER_DEFINED = 1 << 4,
    QR_ATTR_BYTE = 1 << 5,
    QR_ATTR_LSTRIP = 1 << 7,
    QR_ATTR_RSTRIP = 1 << 8,
};

#define QR_TOKEN_NULL (-1)

struct qr_pretok;

typedef struct qr_vocab {
    qr_vocab_type type;
    char *model_name; /* tokenizer.ggml.model */
    char *pre_name;   /* tokenizer.ggml.pre, "" when absent */
    int pre_type;     /* index into the pre-tokenizer table (bpe_pretok.c) */

    int32_t n_tokens;
    char *text_arena;    /* every token text, back to back */
    uint32_t *text_off;  /* n_tokens */
    uint32_t *text_len;  /* n_tokens */
    float *scores;       /* n_tokens */
    uint16_t *attr;      /* n_tokens */
    int32_t max_token_len;
    qr_strmap text_to_id;

    /* BPE merges: keyed by the merge string "left right", value = rank; split[rank]
     * is the byte length of `left` (so a lookup can check it split at the same space). */
    char *merge_arena;
    uint32_t *merge_split;
    int32_t n_merges;
    qr_strmap merges;

    int32_t bos, eos, eot, eom, unk, sep, pad, mask;
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    int32_t linefeed;

    bool add_bos, add_eos, add_sep;
    bool add_space_prefix;
    bool remove_extra_whitespaces;
    bool escape_whitespaces;
    bool clean_spaces;
    bool ignore_merges;
    bool norm_lowercase, norm_strip_accents;
    /* SPM: no token holds "▁" right after another character (only at its start or in a
     * run of "▁"), so no merge can cross into a word that starts with "▁": words can be
     * merged one at a time with the same result (see spm.c). */
    bool spm_word_chunks;

    int32_t *eog; /* sorted ids of end-of-generation tokens */
    size_t n_eog;

    /* Control, user-defined and unknown tokens, longest text first: the order in which
     * the special-token splitter tries them. */
    int32_t *special;
    size_t n_special;

    /* token_to_piece cache with special tokens rendered (llama.cpp's
     * cache_token_to_piece): piece i = piece_arena[piece_off[i] .. +piece_len[i]). */
    char *piece_arena;
    uint32_t *piece_off;
    uint32_t *piece_len;
} qr_vocab;

/* Loads the vocabulary. Unknown tokenizer.ggml.model or .pre values fail with a message
 * naming the value and listing the supported ones. */
int qr_vocab_load(const qr_gguf *g, qr_vocab *v, qr_error *err);
void qr_vocab_free(qr_vocab *v);

static inline const char *qr_vocab_text(const qr_vocab *v, int32_t id, size_t *len) {
    *len = v->text_len[id];
    return v->text_arena + v->text_off[id];
}
/* Fills the piece cache (pieces.c); called by qr_vocab_load. */
int qr_vocab_build_pieces(qr_vocab *v, qr_error *err);
/* Token id of an exact text, or QR_TOKEN_NULL. */
static inline int32_t qr_vocab_find(const qr_vocab *v, const char *s, size_t len) {
    return qr_strmap_get(&v->text_to_id, s, len);
}
/* Rank of merging left+right, or -1. */
int32_t qr_vocab_merge_rank(const qr_vocab *v, const char *left, size_t left_len,
                            const char *right, size_t right_len);
/* SPM byte fallback: the <0xXX> token, else the 1-byte token, else unk. */
int32_t qr_vocab_byte_token(const qr_vocab *v, uint8_t byte);
bool qr_vocab_is_eog(const qr_vocab *v, int32_t id);

#endif
