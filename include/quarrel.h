/* quarrel: the public C API. This is the only header an application includes.
 *
 *   char err[256];
 *   qr_model *m = qr_model_load("model.gguf", err, sizeof err);
 *   qr_ctx_params cp = qr_ctx_default_params();
 *   qr_ctx *c = qr_ctx_create(m, &cp, err, sizeof err);
 *   // tokenize, qr_decode a batch of (token, position, sequence) rows,
 *   // read qr_get_logits, pick a token with a qr_sampling, decode it, repeat.
 *
 * Conventions
 *   - Functions that can fail take `char *err, size_t err_size` (err may be NULL) and
 *     write a one-line message naming the file, key, tensor or parameter at fault; they
 *     return NULL or a negative value on failure. Nothing aborts on bad input.
 *   - A qr_model is immutable once loaded and may be shared by several contexts and
 *     threads. A qr_ctx (KV cache, logits, thread pool) and a qr_sampling serve one
 *     thread at a time.
 *   - Results match llama.cpp's CPU backend token for token on greedy decoding
 *     (docs/architecture.md, "The forward pass", explains the numerics).
 * docs/api.md describes every function in more detail. */
#ifndef QUARREL_H
#define QUARREL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t qr_token;
typedef struct qr_model qr_model;
typedef struct qr_ctx qr_ctx;
typedef struct qr_sampling qr_sampling;

/* ---- Model ---------------------------------------------------------------------------- */

/* Maps a GGUF file and checks it: architecture (llama, mistral, qwen2, gemma3), metadata,
 * every tensor's shape and type, the tokenizer. */
qr_model *qr_model_load(const char *path, char *err, size_t err_size);
void qr_model_free(qr_model *m);

/* Overrides of the model's compute semantics (src/engine/api_arch.c, docs/api.md). */
typedef struct qr_model_params {
    const char *arch_config_path; /* JSON object of descriptor fields to override, e.g.
                                     {"n_swa": 4096}; NULL = none. Keys: see
                                     `quarrel inspect --arch-json`; sizes and tensor
                                     presence are read-only */
    int32_t swa_window;           /* sliding window in tokens, applied after the config;
                                     -1 = as the file (and config) say, 0 = none. With no
                                     stated layer pattern every layer slides (Mistral) */
} qr_model_params;

qr_model_params qr_model_default_params(void);
/* qr_model_load with overrides; p == NULL is qr_model_load. A bad config fails with a
 * message naming the file and the key. */
qr_model *qr_model_load_with(const char *path, const qr_model_params *p, char *err, size_t err_size);

/* The resolved compute semantics (every descriptor field) as pretty-printed JSON: writes
 * at most cap bytes including a NUL and returns the full length (without the NUL); -1 on
 * allocation failure. buf = NULL, cap = 0 sizes it. */
int32_t qr_model_describe_json(const qr_model *m, char *buf, int32_t cap);

const char *qr_model_arch(const qr_model *m);   /* "llama", "mistral", "qwen2", "gemma3" */
int32_t qr_model_n_vocab(const qr_model *m);
int32_t qr_model_n_ctx_train(const qr_model *m);
int32_t qr_model_n_embd(const qr_model *m);
int32_t qr_model_n_layer(const qr_model *m);

/* ---- Tokens ----------------------------------------------------------------------------- */

qr_token qr_model_bos(const qr_model *m);       /* -1 when the vocabulary has none */
qr_token qr_model_eos(const qr_model *m);
bool qr_model_add_bos(const qr_model *m);       /* the vocabulary asks for a leading BOS */
bool qr_model_is_eog(const qr_model *m, qr_token t); /* end of generation (eos, eot, ...) */

/* Tokenizes text[0..len) like llama.cpp's llama_tokenize. add_special adds BOS/EOS as the
 * vocabulary asks; parse_special turns control-token texts into single tokens. Writes at
 * most cap ids and returns the full count (call again with a bigger buffer when it
 * exceeds cap), or -1 on error. */
int32_t qr_model_tokenize(const qr_model *m, const char *text, size_t len, bool add_special,
                          bool parse_special, qr_token *out, int32_t cap, char *err, size_t err_size);

/* The bytes of one token (not NUL-terminated, maybe part of a UTF-8 character): writes at
 * most cap bytes and returns the full length; 0 for control tokens unless `special`. */
int32_t qr_model_token_to_piece(const qr_model *m, qr_token t, bool special, char *buf, int32_t cap);

/* ---- Context ------------------------------------------------------------------------------ */

/* Where a context computes. AUTO: CUDA when the library was built with it and a GPU is
 * present, else the CPU. The CUDA backend is close to the CPU's results (relative logit
 * error ~1e-3), not bit-identical: it keeps activations in F32 (docs/cuda.md). */
typedef enum qr_device { QR_DEVICE_AUTO = 0, QR_DEVICE_CPU, QR_DEVICE_CUDA } qr_device;

typedef struct qr_ctx_params {
    int32_t n_ctx;     /* KV cells = largest position + 1; 0 = min(training context, 4096) */
    int32_t n_batch;   /* rows per forward step; larger batches are split (default 512) */
    int32_t n_seq_max; /* sequence ids 0 .. n_seq_max-1 (default 1) */
    int32_t n_threads; /* 0 = one per online CPU */
    bool kv_f32;       /* F32 KV cache instead of llama.cpp's default F16 */
    bool batch_invariant; /* every row summed in one fixed order whatever its batch, so
                             a row's logits never depend on the other rows (servers);
                             default false: prompt batches use llama.cpp's prompt order,
                             which reproduces its logits bit for bit on F32/F16 models */
    qr_device device;  /* default QR_DEVICE_AUTO */
    int32_t n_gpu_layers; /* on the CUDA device: the last n_gpu_layers layers, the output norm
                             and the output matrix run on the GPU, the token embedding and
                             the layers before them on the CPU (models larger than the card).
                             -1 (default) or any value >= the model's layer count: all on
                             the GPU (llama.cpp's -ngl 99 habit); 0: only the output on the
                             GPU. Other negative values are an error. Ignored on the CPU */
} qr_ctx_params;

qr_ctx_params qr_ctx_default_params(void);
qr_ctx *qr_ctx_create(qr_model *m, const qr_ctx_params *p, char *err, size_t err_size);
void qr_ctx_free(qr_ctx *c);
int32_t qr_ctx_n_ctx(const qr_ctx *c);
int32_t qr_ctx_n_threads(const qr_ctx *c);
/* The device the context computes on (never QR_DEVICE_AUTO). */
qr_device qr_ctx_device(const qr_ctx *c);
/* Layers the GPU runs (n_gpu_layers resolved): 0 on the CPU device, the layer count when
 * all are there. */
int32_t qr_ctx_n_gpu_layers(const qr_ctx *c);

/* A batch of rows: row i feeds tokens[i] at position pos[i] of sequence seq_id[i]. A
 * sequence's positions are contiguous from 0: a row's position may be at most the
 * sequence's current length (qr_ctx_seq_len); a smaller one first drops the positions
 * from there on. logits[i] says what row i outputs (QR_OUTPUT_*: 0 nothing, 1 logits, 2
 * only its greedy token; any other nonzero value means logits); logits == NULL asks for
 * the last row's logits only. pos == NULL means each sequence's current length onward;
 * seq_id == NULL means sequence 0. */
enum {
    QR_OUTPUT_NONE = 0,
    QR_OUTPUT_LOGITS = 1, /* qr_get_logits (and qr_get_argmax) */
    QR_OUTPUT_ARGMAX = 2, /* qr_get_argmax only: on the GPU the row's logits never leave the
                             device, one int crosses the bus instead of n_vocab floats */
};
typedef struct qr_batch {
    int32_t n_tokens;
    const qr_token *tokens;
    const int32_t *pos;
    const int32_t *seq_id;
    const int8_t *logits;
} qr_batch;

/* Runs the batch through the model (split into n_batch steps). Returns 0, or -1 with err
 * set: a bad token id, sequence id, position gap, a position past n_ctx, or a stop
 * requested by the activation callback. Each row's result is independent of the other
 * rows in the batch. */
int qr_decode(qr_ctx *c, const qr_batch *b, char *err, size_t err_size);

/* n_vocab logits of row i of the last qr_decode (i = -1: the last row that asked for
 * logits); NULL when that row did not ask. Valid until the next qr_decode. */
const float *qr_get_logits(const qr_ctx *c, int32_t i);

/* The greedy token of row i of the last qr_decode (i = -1: the last row that asked for
 * an output): the first id of the largest logit, the token a greedy qr_sampling without
 * penalties or biases draws. For rows that asked for QR_OUTPUT_LOGITS or QR_OUTPUT_ARGMAX
 * (qr_get_logits is NULL for the latter, on every device). -1 with err set when the row
 * asked for nothing, a logit is NaN or +inf, or every logit is -inf. */
qr_token qr_get_argmax(const qr_ctx *c, int32_t i, char *err, size_t err_size);

/* Positions held for seq_id, and dropping positions >= pos (0 empties the sequence). */
int32_t qr_ctx_seq_len(const qr_ctx *c, int32_t seq_id);
int qr_ctx_seq_truncate(qr_ctx *c, int32_t seq_id, int32_t pos, char *err, size_t err_size);

/* Prefix sharing (servers): empties dst, then gives it positions 0 .. n-1 of src without
 * recomputing them. Full-attention pages are shared with reference counts (a page that
 * either sequence later writes into is copied first); sliding-window cells are copied.
 * Fails (-1, err set, dst emptied) when n exceeds src's length or src's sliding window
 * no longer holds the keys dst's next row needs. */
int qr_ctx_seq_copy(qr_ctx *c, int32_t src, int32_t dst, int32_t n, char *err, size_t err_size);

/* The paged KV cache's occupancy: all sequences draw full-attention pages from one pool. */
typedef struct qr_kv_stats {
    int32_t page_size; /* cells (positions) per page */
    int32_t n_pages;   /* pages in the pool (n_ctx / page_size, rounded up) */
    int32_t n_free;    /* pages no sequence holds */
    int32_t n_shared;  /* pages held by more than one sequence */
} qr_kv_stats;
qr_kv_stats qr_ctx_kv_stats(const qr_ctx *c);

/* Called after every op of the forward pass with its F32 output rows: layer is -1 for
 * the embeddings ("embd"), the final norm ("result_norm") and the logits ("logits");
 * per-layer ops are attn_norm, q, k, v, attn, attn_out, ffn_inp, ffn_norm, ffn_act,
 * ffn_out, l_out. Return nonzero to stop the decode (qr_decode then fails naming the
 * layer and op). NULL removes it. */
typedef int (*qr_activation_cb)(void *user, int32_t layer, const char *op, const float *data,
                                int64_t n_rows, int64_t n_cols);
void qr_ctx_set_activation_callback(qr_ctx *c, qr_activation_cb cb, void *user);

/* ---- Sampling ------------------------------------------------------------------------------- */

/* llama.cpp's default chain: penalties -> top-k -> top-p -> min-p -> temperature -> draw;
 * temperature 0 is greedy (highest logit, lowest id on ties). docs/sampler.md. */
typedef struct qr_sampling_params {
    float temperature;      /* default 0.8; 0 = greedy */
    int32_t top_k;          /* default 40; <= 0 disables */
    float top_p;            /* default 0.95; 1 disables */
    float min_p;            /* default 0.05; 0 disables */
    float repeat_penalty;   /* default 1 (off) */
    float freq_penalty;     /* default 0 */
    float presence_penalty; /* default 0 */
    int32_t penalty_last_n; /* default 64 */
    uint64_t seed;          /* default 0 */
} qr_sampling_params;

qr_sampling_params qr_sampling_default_params(void);
qr_sampling *qr_sampling_create(const qr_model *m, const qr_sampling_params *p, char *err,
                                size_t err_size);
void qr_sampling_free(qr_sampling *s);
/* Draws a token from row i's logits (as qr_get_logits); -1 with err set on failure. */
qr_token qr_sampling_sample(qr_sampling *s, const qr_ctx *c, int32_t i, char *err, size_t err_size);
/* Adds a token to the penalty window (prompt tokens too, to match llama.cpp). */
void qr_sampling_accept(qr_sampling *s, qr_token t);
void qr_sampling_reset(qr_sampling *s);

/* ---- Chat templates (src/engine/api_chat.c) -------------------------------------------------- */

typedef struct qr_chat_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content; /* UTF-8, never NULL */
} qr_chat_message;

/* Copies the model's `tokenizer.chat_template` (Jinja source) into buf (at most cap bytes
 * including a terminating NUL) and returns its full length; -1 when the file has none. */
int32_t qr_model_chat_template(const qr_model *m, char *buf, int32_t cap);

/* Renders a conversation into prompt text. tmpl is a template name ("gemma", "chatml",
 * "llama3", ...; docs/chat-templates.md lists them) or Jinja source to recognise; NULL
 * means the model's own template (an error naming the key when it has none). The leading
 * BOS is not written: tokenize the text with add_special and parse_special. BOS/EOS that a
 * template writes mid-text are the vocabulary's texts. With add_generation_prompt the text
 * ends with the opening of an assistant turn. Writes at most cap bytes including a NUL and
 * returns the full length (call with buf = NULL, cap = 0 to size), or -1 with err set. */
int32_t qr_chat_format(const qr_model *m, const char *tmpl, const qr_chat_message *msgs, int32_t n_msgs,
                       bool add_generation_prompt, char *buf, int32_t cap, char *err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
