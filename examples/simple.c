/* The smallest complete use of the public API: load a model, greedy-decode a prompt's
 * continuation, print it.   usage: simple MODEL PROMPT [N_TOKENS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quarrel.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL PROMPT [N_TOKENS]\n", argv[0]);
        return 2;
    }
    const int n_predict = argc > 3 ? atoi(argv[3]) : 32;
    char err[256];
    qr_model *model = qr_model_load(argv[1], err, sizeof err);
    if (!model) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    qr_ctx_params cp = qr_ctx_default_params();
    qr_ctx *ctx = qr_ctx_create(model, &cp, err, sizeof err);
    qr_sampling_params sp = qr_sampling_default_params();
    sp.temperature = 0.0f; /* greedy */
    qr_sampling *smp = ctx ? qr_sampling_create(model, &sp, err, sizeof err) : NULL;
    if (!ctx || !smp) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }

    /* Tokenize: ask for the count first, then fill. */
    const char *prompt = argv[2];
    int32_t n = qr_model_tokenize(model, prompt, strlen(prompt), true, false, NULL, 0, err, sizeof err);
    qr_token *tokens = malloc(sizeof(qr_token) * (size_t)(n > 0 ? n : 1));
    if (n <= 0 || !tokens) {
        fprintf(stderr, "error: cannot tokenize the prompt\n");
        return 1;
    }
    qr_model_tokenize(model, prompt, strlen(prompt), true, false, tokens, n, err, sizeof err);

    /* Decode the prompt as one batch (positions and sequence 0 by default), then one
     * token at a time. */
    qr_batch batch = {.n_tokens = n, .tokens = tokens};
    printf("%s", prompt);
    for (int i = 0; i < n_predict; i++) {
        if (qr_decode(ctx, &batch, err, sizeof err) != 0) {
            fprintf(stderr, "\nerror: %s\n", err);
            return 1;
        }
        qr_token t = qr_sampling_sample(smp, ctx, -1, err, sizeof err);
        if (t < 0 || qr_model_is_eog(model, t)) break;
        char piece[128];
        int32_t len = qr_model_token_to_piece(model, t, false, piece, sizeof piece);
        fwrite(piece, 1, (size_t)(len < (int32_t)sizeof piece ? len : (int32_t)sizeof piece), stdout);
        fflush(stdout);
        tokens[0] = t;
        batch.n_tokens = 1;
    }
    printf("\n");
    free(tokens);
    qr_sampling_free(smp);
    qr_ctx_free(ctx);
    qr_model_free(model);
    return 0;
}
