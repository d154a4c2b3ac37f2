/* The vocabulary of a GGUF model, read from its tokenizer.ggml.* metadata the way
 * llama.cpp's llama_vocab::impl::load does (defaults per tokenizer model, per
 * pre-tokenizer flags, special-token ids, token attributes, end-of-generation set). */
#ifndef QR_TOKENIZER_VOCAB_H
#define QR_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "tokenizer/strmap.h"
#include "tokenizer/strtab.h"

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

/* Token attributes (bit set), derived from the type plus load-time fix-ups: llama.cpp's
 * attributes that matter here, packed into one byte a token. */
enum {
    QR_ATTR_UNKNOWN = 1 << 0,
    QR_ATTR_UNUSED = 1 << 1,
    QR_ATTR_NORMAL = 1 << 2,
    QR_ATTR_CONTROL = 1 << 3,
    QR_ATTR_USER_DEFINED = 1 << 4,
    QR_ATTR_BYTE = 1 << 5,
    QR_ATTR_LSTRIP = 1 << 6,
    QR_ATTR_RSTRIP = 1 << 7,
};

/* Longest token text the vocabulary takes (bounds the piece renderer's scratch). */
#define QR_VOCAB_MAX_TOKEN_LEN 65535u

#define QR_TOKEN_NULL (-1)

struct qr_pretok;

typedef struct qr_vocab {
    qr_vocab_type type;
    char *model_name; /* tokenizer.ggml.model */
    char *pre_name;   /* tokenizer.ggml.pre, "" when absent */
    int pre_type;     /* index into the pre-tokenizer table (bpe_pretok.c) */

    /* Texts, scores and types are read from the GGUF mapping, which must outlive the
     * vocabulary: its pages are resident anyway, copies would count twice. */
    int32_t n_tokens;
    qr_strtab texts;
    const uint8_t *scores; /* tokenizer.ggml.scores in the file (unaligned), or NULL: all 0 */
    bool scores_int;       /* stored as int32, not float32 */
    uint8_t *attr;         /* n_tokens */
    int32_t max_token_len;
    qr_strmap text_to_id;

    /* BPE merges "left right", keyed by their text, value = rank. */
    qr_strtab merge_texts;
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
     * cache_token_to_piece), holding only the pieces that differ from their token's text
     * (pieces.c): piece_ref[i] is 0 when token i's piece is its text, else the offset in
     * piece_arena of its piece's length (one byte below 255, else 255 and four bytes),
     * which the piece's bytes follow. */
    uint32_t *piece_ref;
    char *piece_arena;
} qr_vocab;

/* Loads the vocabulary, which keeps pointers into g's mapping: g must stay open until
 * qr_vocab_free. Unknown tokenizer.ggml.model or .pre values fail with a message naming
 * the value and listing the supported ones. */
int qr_vocab_load(const qr_gguf *g, qr_vocab *v, qr_error *err);
void qr_vocab_free(qr_vocab *v);

static inline const char *qr_vocab_text(const qr_vocab *v, int32_t id, size_t *len) {
    return qr_strtab_get(&v->texts, (uint32_t)id, len);
}
static inline float qr_vocab_score(const qr_vocab *v, int32_t id) {
    if (!v->scores) return 0.0f;
    if (v->scores_int) {
        int32_t x;
        memcpy(&x, v->scores + 4 * (size_t)id, 4);
        return (float)x;
    }
    float f;
    memcpy(&f, v->scores + 4 * (size_t)id, 4);
    return f;
}
/* Fills the piece cache (pieces.c); called by qr_vocab_load. */
int qr_vocab_build_pieces(qr_vocab *v, qr_error *err);
/* The piece of token id with special tokens rendered (0 <= id < n_tokens). Both places
 * are read and one is picked without a branch: whether a token's piece is its text is as
 * good as random (half of Gemma 3's tokens), and a mispredicted branch cost more than the
 * lookup itself. piece_arena[0] is a readable dummy for the tokens without a piece. */
static inline const char *qr_vocab_piece(const qr_vocab *v, int32_t id, size_t *len) {
    const uint32_t r = v->piece_ref[id];
    size_t tlen;
    const char *t = qr_vocab_text(v, id, &tlen);
    const uint8_t *p = (const uint8_t *)v->piece_arena + r;
    size_t plen = p[0];
    const char *piece = (const char *)p + 1;
    if (plen == 255) { /* rare: a long piece */
        uint32_t n;
        memcpy(&n, p + 1, 4);
        plen = n;
        piece = (const char *)p + 5;
    }
    const uintptr_t own = (uintptr_t)0 - (uintptr_t)(r != 0); /* all ones or zero: no branch */
    *len = (plen & own) | (tlen & ~own);
    return (const char *)(((uintptr_t)piece & own) | ((uintptr_t)t & ~own));
}
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
