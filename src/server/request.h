/* Parsing and validating the JSON bodies of /v1/completions and /v1/chat/completions
 * into a qs_request. Every refusal is an OpenAI-shaped error naming the field (param). */
#ifndef QS_REQUEST_H
#define QS_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "server/api_error.h"
#include "server/params.h"

typedef enum qs_kind { QS_COMPLETION, QS_CHAT } qs_kind;

typedef struct qs_limits {
    int32_t max_tokens;        /* largest max_tokens a request may ask for */
    int32_t default_max_tokens_chat;
    int32_t n_vocab;           /* token ids in prompts and logit_bias must be below it */
} qs_limits;

typedef struct qs_request {
    qs_kind kind;
    qs_params params;
    /* Completions: the prompt as text, or as token ids (prompt_ids != NULL). */
    char *prompt_text;
    qr_token *prompt_ids;
    int32_t n_prompt_ids;
    /* Chat: the messages (strings owned by the request). */
    qr_chat_message *messages;
    int32_t n_messages;
} qs_request;

/* 0, or -1 with e filled (status 400). */
int qs_request_parse(const char *body, size_t len, qs_kind kind, const qs_limits *lim, qs_request *out,
                     qs_api_error *e);
void qs_request_free(qs_request *r);

#endif
