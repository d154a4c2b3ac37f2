/* quarrel chat -m MODEL [options]: an interactive conversation through the model's chat
 * template, built only on the public API (include/quarrel.h).
 *
 * Each turn renders the WHOLE conversation with the template and tokenizes it, then
 * compares those tokens with the ones the KV cache already holds: only the tokens after
 * the common prefix are decoded. Normally the prefix is everything the previous turn left
 * in the cache (its prompt and the reply), so a turn costs only its new text; when the
 * rendering of the past changed (a template that trims the reply, a reply that
 * re-tokenizes differently, a reply cut by -n) the cache is rewound to the common prefix
 * with qr_ctx_seq_truncate. Comparing tokens rather than text is what makes the reuse
 * exact: the model sees the same ids a fresh run of the whole conversation would. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/timer.h"
#include "cli_parse.h"
#include "commands.h"
#include "quarrel.h"

#define CMD "chat"

typedef struct chat_opts {
    const char *model, *system, *tmpl;
    int32_t n_ctx, n_threads, n_predict;
    qr_sampling_params sp;
    qr_model_params mp;
    bool verbose, no_cache, kv_f32, batch_invariant;
    qr_device device;
    int32_t n_gpu_layers;
} chat_opts;

typedef struct tokens {
    qr_token *v;
    int32_t n, cap;
} tokens;

typedef struct chat_state {
    qr_model *m;
    qr_ctx *c;
    qr_sampling *s;
    const char *tmpl;          /* template name or source; NULL = the model's own */
    qr_chat_message *msgs;     /* contents are owned (malloc'd) */
    int32_t n_msgs, cap_msgs;
    tokens cached;             /* exactly what sequence 0 of the KV cache holds */
    tokens prompt;             /* the rendered conversation, tokenized */
    char *reply;
    size_t reply_len, reply_cap;
    int turn;
} chat_state;

typedef struct turn_stats {
    int32_t reused, decoded, generated;
    double t_prompt, t_gen;
    bool hit_limit;
} turn_stats;

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel chat -m MODEL [options]\n"
            "\n"
            "Chats with a model through its chat template. Each line read from stdin is one user\n"
            "message; the reply streams to stdout. The conversation stays in the KV cache, so a\n"
            "turn decodes only its new tokens. Ctrl-D (end of input) ends the chat.\n"
            "\n"
            "  -m, --model FILE        GGUF model (llama, mistral, qwen2, gemma3)\n"
            "  --system TEXT           a system message opening the conversation\n"
            "  --chat-template NAME    template name (gemma, chatml, llama3, ...; see\n"
            "                          docs/chat-templates.md) instead of the model's\n"
            "                          tokenizer.chat_template (gemma3 models without one: gemma)\n"
            "  -c, --ctx-size N        context size (default: min(training context, 4096))\n"
            "  -t, --threads N         threads (default: all CPUs)\n"
            "  -n, --n-predict N       most tokens per reply (default -1 = until end of turn)\n"
            CLI_SAMPLING_HELP
            CLI_MODEL_HELP
            CLI_DEVICE_HELP
            CLI_NGL_HELP
            "  --kv-f32                F32 KV cache instead of F16\n"
            "  --batch-invariant       sum every row in the decode order (see docs/api.md)\n"
            "  --no-cache              re-decode the whole conversation every turn (for tests)\n"
            "  -v, --verbose           per-turn statistics on stderr (tokens reused/decoded)\n"
            "  -h, --help              show this help\n"
            "\n"
            "Exit codes: 0 ok, 1 error (bad model or template, context full), 2 usage.\n");
}

/* ---- Arguments --------------------------------------------------------------------------- */

static int parse_value(chat_opts *o, const char *a, const char *v) {
    if (cli_is(a, "-m", "--model")) o->model = v;
    else if (cli_is(a, "--system", NULL)) o->system = v;
    else if (cli_is(a, "--chat-template", NULL)) o->tmpl = v;
    else if (cli_is(a, "-c", "--ctx-size")) return cli_parse_i32(CMD, a, v, 0, 1 << 24, &o->n_ctx);
    else if (cli_is(a, "-t", "--threads")) return cli_parse_i32(CMD, a, v, 1, 1024, &o->n_threads);
    else if (cli_is(a, "-n", "--n-predict")) return cli_parse_i32(CMD, a, v, -1, 1 << 30, &o->n_predict);
    else if (cli_is(a, "--device", NULL)) return cli_parse_device(CMD, a, v, &o->device);
    else if (cli_is_gpu_layers(a)) return cli_parse_gpu_layers(CMD, a, v, &o->n_gpu_layers);
    else {
        int rc = cli_parse_model(CMD, a, v, &o->mp);
        return rc != 2 ? rc : cli_parse_sampling(CMD, a, v, &o->sp);
    }
    return 0;
}

static bool parse_flag(chat_opts *o, const char *a) {
    if (cli_is(a, "-v", "--verbose")) o->verbose = true;
    else if (cli_is(a, "--no-cache", NULL)) o->no_cache = true;
    else if (cli_is(a, "--kv-f32", NULL)) o->kv_f32 = true;
    else if (cli_is(a, "--batch-invariant", NULL)) o->batch_invariant = true;
    else return false;
    return true;
}

/* Returns 0 ok, 1 bad value, 2 usage error, 3 help shown. */
static int parse_args(int argc, char **argv, chat_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is(a, "-h", "--help")) {
            usage(stdout);
            return 3;
        }
        if (parse_flag(o, a)) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "quarrel chat: %s '%s' (see quarrel chat --help)\n",
                    a[0] == '-' ? "option needs a value or is unknown:" : "unexpected argument", a);
            return 2;
        }
        int rc = parse_value(o, a, argv[++i]);
        if (rc == 2) {
            fprintf(stderr, "quarrel chat: unknown option '%s' (see quarrel chat --help)\n", a);
            return 2;
        }
        if (rc) return 1;
    }
    if (!o->model) {
        fprintf(stderr, "quarrel chat: -m MODEL is required (see quarrel chat --help)\n");
        return 2;
    }
    return 0;
}

/* ---- Small helpers ------------------------------------------------------------------------- */

static int fail(const char *msg) {
    fprintf(stderr, "quarrel chat: %s\n", msg);
    return 1;
}

static int tokens_reserve(tokens *t, int32_t n) {
    if (n <= t->cap) return 0;
    int32_t cap = t->cap ? t->cap : 256;
    while (cap < n) cap *= 2;
    qr_token *v = realloc(t->v, (size_t)cap * sizeof *v);
    if (!v) return fail("out of memory");
    t->v = v;
    t->cap = cap;
    return 0;
}

static int tokens_push(tokens *t, qr_token x) {
    if (tokens_reserve(t, t->n + 1)) return 1;
    t->v[t->n++] = x;
    return 0;
}

static int reply_append(chat_state *st, const char *p, size_t n) {
    if (st->reply_len + n + 1 > st->reply_cap) {
        size_t cap = st->reply_cap ? st->reply_cap : 256;
        while (cap < st->reply_len + n + 1) cap *= 2;
        char *r = realloc(st->reply, cap);
        if (!r) return fail("out of memory");
        st->reply = r;
        st->reply_cap = cap;
    }
    memcpy(st->reply + st->reply_len, p, n);
    st->reply_len += n;
    st->reply[st->reply_len] = '\0';
    return 0;
}

static int add_message(chat_state *st, const char *role, const char *content) {
    if (st->n_msgs == st->cap_msgs) {
        int32_t cap = st->cap_msgs ? 2 * st->cap_msgs : 16;
        qr_chat_message *v = realloc(st->msgs, (size_t)cap * sizeof *v);
        if (!v) return fail("out of memory");
        st->msgs = v;
        st->cap_msgs = cap;
    }
    char *copy = strdup(content);
    if (!copy) return fail("out of memory");
    st->msgs[st->n_msgs++] = (qr_chat_message){role, copy};
    return 0;
}

/* ---- Setup ------------------------------------------------------------------------------- */

/* The model's own template, else `gemma` for gemma3 files (Gemma 3 270M ships without
 * tokenizer.chat_template), else the user must name one. A trial render surfaces an
 * unknown template before the first line is read. */
static int choose_template(chat_state *st, const chat_opts *o) {
    char err[1024];
    if (o->tmpl) {
        st->tmpl = o->tmpl;
    } else if (qr_model_chat_template(st->m, NULL, 0) >= 0) {
        st->tmpl = NULL;
    } else if (strcmp(qr_model_arch(st->m), "gemma3") == 0) {
        st->tmpl = "gemma";
    } else {
        fprintf(stderr,
                "quarrel chat: %s has no chat template (no tokenizer.chat_template key); "
                "pass --chat-template NAME (e.g. chatml, llama3, gemma; see docs/chat-templates.md)\n",
                o->model);
        return 1;
    }
    const qr_chat_message probe = {"user", "hi"};
    if (qr_chat_format(st->m, st->tmpl, &probe, 1, true, NULL, 0, err, sizeof err) < 0) return fail(err);
    return 0;
}

static int setup(chat_state *st, const chat_opts *o) {
    char err[1024];
    st->m = qr_model_load_with(o->model, &o->mp, err, sizeof err);
    if (!st->m) return fail(err);
    if (choose_template(st, o)) return 1;
    qr_ctx_params cp = qr_ctx_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->n_threads;
    cp.kv_f32 = o->kv_f32;
    cp.batch_invariant = o->batch_invariant;
    cp.device = o->device;
    cp.n_gpu_layers = o->n_gpu_layers;
    st->c = qr_ctx_create(st->m, &cp, err, sizeof err);
    if (!st->c) return fail(err);
    st->s = qr_sampling_create(st->m, &o->sp, err, sizeof err);
    if (!st->s) return fail(err);
    if (o->system && add_message(st, "system", o->system)) return 1;
    return 0;
}

static void teardown(chat_state *st) {
    for (int32_t i = 0; i < st->n_msgs; i++) free((char *)st->msgs[i].content);
    free(st->msgs);
    free(st->cached.v);
    free(st->prompt.v);
    free(st->reply);
    qr_sampling_free(st->s);
    qr_ctx_free(st->c);
    qr_model_free(st->m);
}

/* ---- One turn ------------------------------------------------------------------------------ */

/* Renders the conversation with a generation prompt and tokenizes it (BOS as the
 * vocabulary asks; special-token texts such as <start_of_turn> become their ids). */
static int render_prompt(chat_state *st) {
    char err[1024];
    int32_t len = qr_chat_format(st->m, st->tmpl, st->msgs, st->n_msgs, true, NULL, 0, err, sizeof err);
    if (len < 0) return fail(err);
    char *text = malloc((size_t)len + 1);
    if (!text) return fail("out of memory");
    qr_chat_format(st->m, st->tmpl, st->msgs, st->n_msgs, true, text, len + 1, err, sizeof err);
    int rc = 1;
    int32_t n = qr_model_tokenize(st->m, text, (size_t)len, true, true, NULL, 0, err, sizeof err);
    if (n < 0) {
        fail(err);
    } else if (!tokens_reserve(&st->prompt, n > 0 ? n : 1)) {
        st->prompt.n = qr_model_tokenize(st->m, text, (size_t)len, true, true, st->prompt.v, n, err, sizeof err);
        rc = 0;
    }
    free(text);
    return rc;
}

static int context_full(const chat_state *st, int32_t need) {
    fprintf(stderr,
            "quarrel chat: context full: the conversation needs %d tokens but the context holds %d; "
            "start a new chat or raise -c\n",
            need, qr_ctx_n_ctx(st->c));
    return 1;
}

/* Brings the KV cache to the prompt: keeps the common prefix, decodes the rest. */
static int sync_cache(chat_state *st, const chat_opts *o, turn_stats *ts) {
    char err[1024];
    const tokens *p = &st->prompt;
    if (p->n < 1) return fail("the rendered conversation tokenizes to no tokens");
    if (p->n >= qr_ctx_n_ctx(st->c)) return context_full(st, p->n + 1);
    int32_t common = 0;
    if (!o->no_cache) {
        while (common < st->cached.n && common < p->n && st->cached.v[common] == p->v[common]) common++;
    }
    if (common == p->n) common--; /* the last prompt token must be decoded for its logits */
    if (common < qr_ctx_seq_len(st->c, 0) && qr_ctx_seq_truncate(st->c, 0, common, err, sizeof err)) return fail(err);
    st->cached.n = common;
    ts->reused = common;
    ts->decoded = p->n - common;
    qr_batch b = {.n_tokens = ts->decoded, .tokens = p->v + common};
    if (qr_decode(st->c, &b, err, sizeof err)) return fail(err);
    if (tokens_reserve(&st->cached, p->n)) return 1;
    memcpy(st->cached.v + common, p->v + common, (size_t)ts->decoded * sizeof *p->v);
    st->cached.n = p->n;
    return 0;
}

/* Writes a token's text to stdout as it comes and keeps it for the conversation. */
static int emit(chat_state *st, qr_token t) {
    char small[256];
    char *buf = small;
    int32_t n = qr_model_token_to_piece(st->m, t, false, small, sizeof small);
    if (n > (int32_t)sizeof small) {
        buf = malloc((size_t)n);
        if (!buf) return fail("out of memory");
        qr_model_token_to_piece(st->m, t, false, buf, n);
    }
    fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
    int rc = reply_append(st, buf, (size_t)n);
    if (buf != small) free(buf);
    return rc;
}

/* Samples until an end-of-generation token (not decoded: the next turn's rendering
 * brings the template's own end-of-turn text) or the -n limit. Every token shown is in
 * the cache, so the next turn finds the whole reply there. */
static int generate(chat_state *st, const chat_opts *o, turn_stats *ts) {
    char err[1024];
    st->reply_len = 0;
    if (reply_append(st, "", 0)) return 1;
    while (o->n_predict < 0 || ts->generated < o->n_predict) {
        qr_token t = qr_sampling_sample(st->s, st->c, -1, err, sizeof err);
        if (t < 0) return fail(err);
        if (qr_model_is_eog(st->m, t)) return 0;
        if (emit(st, t)) return 1;
        qr_sampling_accept(st->s, t);
        ts->generated++;
        if (st->cached.n >= qr_ctx_n_ctx(st->c)) {
            fputc('\n', stdout);
            return context_full(st, st->cached.n + 1);
        }
        /* Decoded even when -n stops the reply here, so the cache holds the whole reply. */
        qr_batch b = {.n_tokens = 1, .tokens = &t};
        if (qr_decode(st->c, &b, err, sizeof err)) return fail(err);
        if (tokens_push(&st->cached, t)) return 1;
    }
    ts->hit_limit = true;
    return 0;
}

static int run_turn(chat_state *st, const chat_opts *o, const char *line) {
    turn_stats ts = {0};
    st->turn++;
    if (add_message(st, "user", line) || render_prompt(st)) return 1;
    double t0 = qr_time_now_s();
    if (sync_cache(st, o, &ts)) return 1;
    ts.t_prompt = qr_time_now_s() - t0;
    /* The penalty window sees the conversation so far, as llama.cpp's does. */
    qr_sampling_reset(st->s);
    for (int32_t i = 0; i < st->prompt.n; i++) qr_sampling_accept(st->s, st->prompt.v[i]);
    t0 = qr_time_now_s();
    if (generate(st, o, &ts)) return 1;
    ts.t_gen = qr_time_now_s() - t0;
    fputc('\n', stdout);
    fflush(stdout);
    if (add_message(st, "assistant", st->reply)) return 1;
    if (o->verbose) {
        fprintf(stderr,
                "quarrel chat: turn %d: conversation %d tokens, reused %d, decoded %d (%.1f ms), "
                "generated %d (%.2f t/s, %s), reply %zu bytes, cache %d/%d\n",
                st->turn, st->prompt.n, ts.reused, ts.decoded, ts.t_prompt * 1e3, ts.generated,
                ts.t_gen > 0 ? ts.generated / ts.t_gen : 0.0, ts.hit_limit ? "-n limit" : "end of turn",
                st->reply_len, st->cached.n, qr_ctx_n_ctx(st->c));
    }
    return 0;
}

/* ---- The loop --------------------------------------------------------------------------------- */

static bool blank(const char *s) {
    for (; *s; s++) {
        if (*s != ' ' && *s != '\t') return false;
    }
    return true;
}

static int chat_loop(chat_state *st, const chat_opts *o) {
    const bool tty = isatty(STDIN_FILENO);
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    if (tty) fprintf(stderr, "quarrel chat: one message per line; Ctrl-D to quit\n");
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        errno = 0;
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) {
            if (errno) rc = fail(strerror(errno));
            if (tty) fputc('\n', stdout);
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (blank(line)) continue;
        if ((rc = run_turn(st, o, line)) != 0) break;
    }
    free(line);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    chat_opts o = {.n_predict = -1, .sp = qr_sampling_default_params(), .mp = qr_model_default_params(),
                   .n_gpu_layers = -1};
    int rc = parse_args(argc, argv, &o);
    if (rc) return rc == 3 ? 0 : rc;
    chat_state st = {0};
    rc = setup(&st, &o);
    if (!rc) rc = chat_loop(&st, &o);
    teardown(&st);
    return rc;
}
