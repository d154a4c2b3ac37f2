/* Chat templates: turn a conversation (role, content pairs) into the prompt text a chat
 * model was trained on.
 *
 * A GGUF carries its template as Jinja source in `tokenizer.chat_template`. We do not run
 * Jinja. Instead qr_chat_template_detect() recognises the template family from distinctive
 * substrings (the approach of llama.cpp's llm_chat_detect_template) and qr_chat_apply()
 * renders that family in C. The rendering is byte-identical to the real Jinja template
 * rendered the way Hugging Face does (trim_blocks, lstrip_blocks), with two conventions:
 *
 *   - The leading BOS is NOT part of the text: templates that start with `bos_token`
 *     render without it, and the tokenizer adds BOS (tokenizer.ggml.add_bos_token) when it
 *     encodes the prompt. BOS/EOS tokens a template writes elsewhere (Llama 2 writes BOS
 *     before every [INST]; Mistral and Zephyr write EOS after turns) are rendered as the
 *     bos_text / eos_text the caller passes, so the tokenizer must parse special tokens.
 *   - Where a template raises an exception (roles that do not alternate, an unsupported
 *     role) qr_chat_apply() returns QR_ERR with the template's reason; the one deliberate
 *     exception is a system message for Gemma 1/2, which those templates reject and we
 *     merge into the first user turn the way Gemma 3's template does.
 * docs/chat-templates.md lists every family, its detection cues and its known limits. */
#ifndef QR_TOKENIZER_CHAT_TEMPLATE_H
#define QR_TOKENIZER_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

typedef struct qr_chat_msg {
    const char *role;    /* "system", "user", "assistant" (some families accept others) */
    const char *content; /* UTF-8, may be empty, never NULL */
} qr_chat_msg;

typedef enum qr_chat_family {
    QR_CHAT_CHATML = 0,        /* Qwen2/2.5, SmolLM2, Hermes, ... <|im_start|>role\n...<|im_end|>\n */
    QR_CHAT_LLAMA2,            /* Meta Llama 2 chat: <s>[INST] <<SYS>>..<</SYS>> .. [/INST] */
    QR_CHAT_LLAMA3,            /* Llama 3: <|start_header_id|>role<|end_header_id|>\n\n..<|eot_id|> */
    QR_CHAT_LLAMA31,           /* Llama 3.1/3.2/3.3: llama3 + "Cutting Knowledge Date" system turn */
    QR_CHAT_MISTRAL_V1,        /* " [INST] sys\n\nuser [/INST] assistant</s>" */
    QR_CHAT_MISTRAL_V3,        /* "[INST] user[/INST] assistant</s>", system before the last user */
    QR_CHAT_MISTRAL_V3_TEKKEN, /* "[INST]user[/INST]assistant</s>", system before the last user */
    QR_CHAT_MISTRAL_V7,        /* "[SYSTEM_PROMPT] sys[/SYSTEM_PROMPT][INST] user[/INST] a</s>" */
    QR_CHAT_MISTRAL_V7_TEKKEN, /* v7 without the spaces */
    QR_CHAT_GEMMA,             /* Gemma 1/2/3: <start_of_turn>user\n..<end_of_turn>\n, "model" */
    QR_CHAT_PHI3,              /* Phi-3/3.5: <|role|>\n..<|end|>\n */
    QR_CHAT_PHI3_LEGACY,       /* first Phi-3-mini/medium: no system, <|assistant|> after each user */
    QR_CHAT_ZEPHYR,            /* Zephyr, TinyLlama-chat: <|role|>\n..</s>\n */
    QR_CHAT_FAMILY_COUNT
} qr_chat_family;

/* Flags for behaviour that varies between releases of one family. */
enum {
    QR_CHAT_EOS_IF_NO_PROMPT = 1u << 0,  /* phi3: write eos_text when add_generation_prompt is false */
    QR_CHAT_SKIP_EMPTY_SYSTEM = 1u << 1, /* phi3.5: drop empty system turns and unknown roles */
    QR_CHAT_ALWAYS_PROMPT = 1u << 2,     /* llama3: the template appends the assistant header always */
};

#define QR_CHAT_DEFAULT_SYSTEM_MAX 1024

typedef struct qr_chat_style {
    qr_chat_family family;
    unsigned flags;
    /* ChatML only: the system turn the template inserts when the conversation has none
     * (Qwen2.5: "You are Qwen, created by Alibaba Cloud. ..."); empty for none. */
    char default_system[QR_CHAT_DEFAULT_SYSTEM_MAX];
    /* Llama 3.1 only: the "Today Date:" value, e.g. "26 Jul 2024". Empty means today's
     * local date, formatted "%d %b %Y" (Llama 3.2/3.3 call strftime_now for it). */
    char date[32];
} qr_chat_style;

/* Recognises the template family of a Jinja chat template (or of a bare style name, as
 * llama.cpp also accepts). Fails with a message listing the supported names when the
 * template is not recognised. */
int qr_chat_template_detect(const char *jinja_src, qr_chat_style *out, qr_error *err);

/* The style for a name given on the command line (`--chat-template NAME`). Names are the
 * family names of qr_chat_template_name() plus presets: "qwen2", "qwen2.5", "smollm2"
 * (ChatML with that model's default system prompt), "llama3.2" (llama3.1 with today's
 * date), "phi3.5". Fails with a message listing the supported names. */
int qr_chat_template_from_name(const char *name, qr_chat_style *out, qr_error *err);

/* Canonical name of a family ("chatml", "gemma", ...); "unknown" when out of range. */
const char *qr_chat_template_name(qr_chat_family family);

/* Writes the supported names, separated by ", ", into buf (always NUL-terminated). */
void qr_chat_template_list(char *buf, size_t size);

/* Renders the conversation. bos_text / eos_text are the texts of the model's BOS and EOS
 * tokens (e.g. "<s>", "</s>"); they may be NULL for families that never write them, and
 * qr_chat_apply fails naming the missing one otherwise. With add_generation_prompt the text
 * ends with the opening of an assistant turn. On success *out is a NUL-terminated string
 * the caller frees with free(). */
int qr_chat_apply(const qr_chat_style *style, const qr_chat_msg *msgs, size_t n_msgs,
                  bool add_generation_prompt, const char *bos_text, const char *eos_text,
                  char **out, qr_error *err);

/* Plain-argument entry points for ctypes (the Python reference test): roles and contents
 * as parallel arrays, the style by name or detected from Jinja source (one of the two may
 * be NULL; the name wins). */
int qr_chat_apply_simple(const char *name, const char *jinja_src, const char *const *roles,
                         const char *const *contents, size_t n_msgs, int add_generation_prompt,
                         const char *bos_text, const char *eos_text, const char *date,
                         char **out, char *err_msg, size_t err_size);
/* Detects the family of jinja_src and writes its canonical name into name_out. */
int qr_chat_detect_simple(const char *jinja_src, char *name_out, size_t name_size,
                          char *err_msg, size_t err_size);
/* free() for strings returned by qr_chat_apply_simple (ctypes cannot call libc's free
 * portably on every platform). */
void qr_chat_free(char *s);

#endif
