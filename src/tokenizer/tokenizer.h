/* Text <-> token ids for a GGUF model's vocabulary, exact against llama.cpp
 * (src/llama-vocab.cpp): SentencePiece ("llama"), byte-level BPE ("gpt2") with the
 * pre-tokenizers named by tokenizer.ggml.pre, and WordPiece ("bert").
 *
 *   qr_tokenizer *tok;
 *   if (qr_tokenizer_load(gguf, &tok, &err) != QR_OK) ...   // keep the gguf open until freed
 *   int32_t *ids; size_t n;
 *   qr_tokenize(tok, text, strlen(text), true, false, &ids, &n, &err);
 *   ...
 *   free(ids);
 *
 * A qr_tokenizer is immutable after loading: any number of threads may use it at once. */
#ifndef QR_TOKENIZER_TOKENIZER_H
#define QR_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "gguf/gguf.h"

typedef struct qr_tokenizer qr_tokenizer;

/* Reads tokenizer.ggml.* from an open GGUF. The tokenizer reads token texts and scores
 * in place from g's mapping (no copies): g must stay open until qr_tokenizer_free.
 * Unknown tokenizer.ggml.model or .pre values fail with a message naming the value and
 * listing the supported ones. */
int qr_tokenizer_load(const qr_gguf *g, qr_tokenizer **out, qr_error *err);
/* Convenience: opens the file and loads; the tokenizer keeps the file mapped and closes
 * it when freed. */
int qr_tokenizer_load_file(const char *path, qr_tokenizer **out, qr_error *err);
void qr_tokenizer_free(qr_tokenizer *t);

/* Tokenizes text[0..len) into a fresh malloc'd array (*ids, *n_ids; free() it).
 * add_special: add BOS/EOS (and BERT's CLS/SEP) as the vocabulary asks.
 * parse_special: control tokens written in the text (e.g. "<|im_start|>") become single
 * tokens; otherwise they are tokenized as plain text. User-defined tokens are always
 * matched. Invalid UTF-8 is accepted (as llama.cpp does: U+FFFD for BPE/WordPiece,
 * byte tokens for SentencePiece). */
int qr_tokenize(const qr_tokenizer *t, const char *text, size_t len, bool add_special,
                bool parse_special, int32_t **ids, size_t *n_ids, qr_error *err);

/* The text of one token (bytes, not necessarily valid UTF-8 on its own), valid while the
 * tokenizer lives. Control/unknown tokens give "" unless `special`. Out-of-range ids
 * give "". */
const char *qr_token_to_piece(const qr_tokenizer *t, int32_t id, bool special, size_t *len);

/* Ids back to text, as llama.cpp's llama_detokenize: remove_special drops a leading BOS
 * / trailing EOS the vocabulary adds; unparse_special renders control tokens; the
 * leading space SentencePiece adds is removed; vocabularies with
 * clean_up_tokenization_spaces (gpt-2, mpt, falcon, starcoder, refact, bert, ...) get
 * llama.cpp's space clean-up. *text is malloc'd and NUL-terminated. */
int qr_detokenize(const qr_tokenizer *t, const int32_t *ids, size_t n_ids, bool remove_special,
                  bool unparse_special, char **text, size_t *len, qr_error *err);

/* Streaming detokenizer: feed ids one at a time as they are generated; each call returns
 * the text that became complete (never splitting a UTF-8 sequence across calls). */
typedef struct qr_detok_stream qr_detok_stream;

qr_detok_stream *qr_detok_stream_new(const qr_tokenizer *t, bool unparse_special);
void qr_detok_stream_free(qr_detok_stream *s);
/* Appends token id; returns the newly complete text (valid until the next call) and its
 * length in *len; NULL only when memory runs out. */
const char *qr_detok_stream_push(qr_detok_stream *s, int32_t id, size_t *len);
/* Returns whatever is held back (an incomplete UTF-8 tail) and resets the stream. */
const char *qr_detok_stream_flush(qr_detok_stream *s, size_t *len);

/* Vocabulary facts. Ids are -1 when the vocabulary has no such token. */
int32_t qr_tokenizer_n_vocab(const qr_tokenizer *t);
int32_t qr_tokenizer_bos(const qr_tokenizer *t);
int32_t qr_tokenizer_eos(const qr_tokenizer *t);
int32_t qr_tokenizer_eot(const qr_tokenizer *t);
int32_t qr_tokenizer_pad(const qr_tokenizer *t);
int32_t qr_tokenizer_unk(const qr_tokenizer *t);
int32_t qr_tokenizer_linefeed(const qr_tokenizer *t);
bool qr_tokenizer_add_bos(const qr_tokenizer *t);
bool qr_tokenizer_add_eos(const qr_tokenizer *t);
/* End of generation: eos, eot, eom and the usual end-of-turn texts (<|im_end|>, ...). */
bool qr_tokenizer_is_eog(const qr_tokenizer *t, int32_t id);
/* Control or unknown token (not rendered by default). */
bool qr_tokenizer_is_control(const qr_tokenizer *t, int32_t id);
/* The token's raw vocabulary text (e.g. "▁Hello", "Ġworld", "<0x0A>"). */
const char *qr_tokenizer_token_text(const qr_tokenizer *t, int32_t id, size_t *len);
/* Token id of an exact vocabulary text, or -1. */
int32_t qr_tokenizer_find(const qr_tokenizer *t, const char *text, size_t len);
/* "llama", "gpt2" or "bert", and the pre-tokenizer name ("" when absent). */
const char *qr_tokenizer_model(const qr_tokenizer *t);
const char *qr_tokenizer_pre(const qr_tokenizer *t);

#endif
