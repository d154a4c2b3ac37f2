/* Reference generator (not part of the build): greedy decoding with llama.cpp's library,
 * printing every step's full logits as hex floats, so quarrel's engine can be compared
 * with llama.cpp bit for bit. Used by tests/data/engine/make_reference.py to write
 * llamacpp-reference.json; build it against a llama.cpp checkout:
 *   gcc -O2 -o llamacpp_ref llamacpp_ref.c -I$LLAMA/include -I$LLAMA/ggml/include \
 *       -L$LLAMA/build/bin -lllama -lggml -lggml-base -lm -Wl,-rpath,$LLAMA/build/bin
 * usage: llamacpp_ref MODEL N_GEN N_THREADS TOKEN...
 *   env DUMP=NAME prints the named graph tensors instead (DUMP=ALL lists the names);
 *   env NOFA=1 turns flash attention off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"
static const char *dump_name;
static bool cb(struct ggml_tensor *t, bool ask, void *ud) {
    (void)ud;
    if (!dump_name) return false;
    if (ask) { if (!strcmp(dump_name, "ALL")) { printf("NAME %s op %s\n", t->name, ggml_op_desc(t)); return false; } return strcmp(t->name, dump_name) == 0; }
    if (strcmp(t->name, dump_name) != 0) return true;
    int64_t n = ggml_nelements(t);
    float *buf = malloc(n * 4);
    if (t->type == GGML_TYPE_F32) ggml_backend_tensor_get(t, buf, 0, n * 4);
    else { printf("DUMP %s type %d\n", t->name, t->type); free(buf); return true; }
    printf("DUMP %s@%s ne %lld %lld %lld:", t->name, ggml_op_name(t->op), (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2]);
    for (int64_t i = 0; i < n; i++) printf(" %a", (double)buf[i]);
    printf("\n");
    free(buf);
    return true;
}
int main(int argc, char **argv) {
    const char *path = argv[1]; int ngen = atoi(argv[2]); int nth = atoi(argv[3]);
    dump_name = getenv("DUMP");
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(path, mp);
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 2048; cp.n_batch = 2048; cp.n_ubatch = 512; cp.n_threads = nth; cp.n_threads_batch = nth;
    if (getenv("NOFA")) cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.cb_eval = cb; cp.cb_eval_user_data = NULL;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    int n = argc - 4; llama_token *toks = malloc(sizeof(llama_token) * (n + ngen + 1));
    for (int i = 0; i < n; i++) toks[i] = atoi(argv[4 + i]);
    struct llama_batch b = llama_batch_get_one(toks, n);
    if (llama_decode(ctx, b)) { fprintf(stderr, "decode failed\n"); return 1; }
    for (int s = 0; s < ngen; s++) {
        float *l = llama_get_logits_ith(ctx, -1);
        int best = 0; for (int i = 1; i < nv; i++) if (l[i] > l[best]) best = i;
        double mx = l[best], sum = 0; for (int i = 0; i < nv; i++) sum += exp(l[i] - mx);
        printf("STEP %d %d LOGITS", s, best);
        for (int i = 0; i < nv; i++) printf(" %a", (double)l[i]);
        printf("\n");
        toks[n + s] = best;
        b = llama_batch_get_one(&toks[n + s], 1);
        if (llama_decode(ctx, b)) { fprintf(stderr, "decode failed\n"); return 1; }
    }
    return 0;
}
