/* quarrel bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 5] [-o md|json]: prompt
 * processing and generation throughput, measured the way llama.cpp's llama-bench does so
 * the two tables read side by side.
 *
 *   ppN: N random tokens decoded as one prompt from an empty cache (logits of the last
 *        row only); t/s = N / time.
 *   tgN: N random tokens decoded one at a time from an empty cache, logits every step;
 *        t/s = N / time.
 * Each test runs once untimed (warm-up: the prompt, or one generated token) and then REPS
 * times; the table shows mean +/- sample standard deviation of the per-run rates.
 *
 * Besides llama-bench's columns: the load time, the peak RSS after all runs, the read
 * bandwidth measured at the end (a large buffer streamed by the same number of threads;
 * its memory is not part of the peak RSS shown) and each result as a fraction of the
 * bandwidth roofline: bandwidth / (bytes one step reads), with one step = one token for
 * tg (all weights, one embedding row, the KV cache at the run's mean length) and one
 * batch of up to n_batch tokens for pp. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_memory.h"
#include "cli_parse.h"
#include "commands.h"
#include "core/rng.h"
#include "core/threadpool.h"
#include "core/timer.h"
#include "quarrel.h"

#define CMD "bench"
#define MAX_LIST 16
#define MAX_REPS 100

typedef struct int_list {
    int32_t v[MAX_LIST];
    int n;
} int_list;

typedef struct bench_opts {
    const char *model;
    int_list prompt, gen, threads;
    int32_t reps, n_batch, bandwidth_mb, n_gpu_layers;
    bool json, warmup, batch_invariant, kv_f32;
} bench_opts;

typedef struct bench_result {
    int32_t n_prompt, n_gen, n_threads;
    double mean, stddev, samples[MAX_REPS];
    int n_samples;
    double roofline; /* tokens/s the bandwidth allows; 0 before it is known */
} bench_result;

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel bench -m MODEL [options]\n"
            "\n"
            "Measures prompt processing (ppN) and generation (tgN) throughput like llama-bench.\n"
            "\n"
            "  -m, --model FILE        GGUF model\n"
            "  -p, --n-prompt LIST     prompt lengths, comma-separated (default 512; 0 = none)\n"
            "  -n, --n-gen LIST        generation lengths (default 128; 0 = none)\n"
            "  -t, --threads LIST      thread counts (default: all CPUs)\n"
            "  -r, --repetitions N     timed runs per test (default 5)\n"
            "  -b, --batch-size N      rows per forward step (default 512)\n"
            "  -o, --output md|json    a Markdown table (default) or a JSON array\n"
            "  --no-warmup             skip the untimed warm-up run\n"
            "  --batch-invariant       the server's summation order (every row as decoded alone)\n"
            "  --kv-f32                F32 KV cache instead of F16\n"
            CLI_NGL_HELP
            "  --bandwidth-mb N        buffer streamed to measure read bandwidth (default 1024;\n"
            "                          0 = skip the measurement and the roofline columns)\n"
            "  -h, --help              show this help\n"
            "\n"
            "Exit codes: 0 ok, 1 error (bad model, a failed decode), 2 usage.\n");
}

static int parse_list(const char *flag, const char *s, int32_t lo, int_list *out) {
    out->n = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (out->n == MAX_LIST) {
            fprintf(stderr, "quarrel bench: %s takes at most %d values\n", flag, MAX_LIST);
            return 1;
        }
        if (cli_parse_i32(CMD, flag, tok, lo, 1 << 20, &out->v[out->n])) return 1;
        out->n++;
    }
    if (out->n == 0) {
        fprintf(stderr, "quarrel bench: %s needs at least one value\n", flag);
        return 1;
    }
    return 0;
}

static int parse_value(bench_opts *o, const char *a, const char *v) {
    if (cli_is(a, "-m", "--model")) o->model = v;
    else if (cli_is(a, "-p", "--n-prompt")) return parse_list(a, v, 0, &o->prompt);
    else if (cli_is(a, "-n", "--n-gen")) return parse_list(a, v, 0, &o->gen);
    else if (cli_is(a, "-t", "--threads")) return parse_list(a, v, 1, &o->threads);
    else if (cli_is(a, "-r", "--repetitions")) return cli_parse_i32(CMD, a, v, 1, MAX_REPS, &o->reps);
    else if (cli_is(a, "-b", "--batch-size")) return cli_parse_i32(CMD, a, v, 1, 1 << 16, &o->n_batch);
    else if (cli_is(a, "--bandwidth-mb", NULL)) return cli_parse_i32(CMD, a, v, 0, 1 << 20, &o->bandwidth_mb);
    else if (cli_is_gpu_layers(a)) return cli_parse_gpu_layers(CMD, a, v, &o->n_gpu_layers);
    else if (cli_is(a, "-o", "--output")) {
        if (strcmp(v, "md") != 0 && strcmp(v, "json") != 0) {
            fprintf(stderr, "quarrel bench: -o must be md or json, got '%s'\n", v);
            return 1;
        }
        o->json = strcmp(v, "json") == 0;
    } else return 2;
    return 0;
}

/* Returns 0 ok, 1 bad value, 2 usage error, 3 help shown. */
static int parse_args(int argc, char **argv, bench_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is(a, "-h", "--help")) return usage(stdout), 3;
        if (cli_is(a, "--no-warmup", NULL)) o->warmup = false;
        else if (cli_is(a, "--batch-invariant", NULL)) o->batch_invariant = true;
        else if (cli_is(a, "--kv-f32", NULL)) o->kv_f32 = true;
        else if (i + 1 >= argc) {
            fprintf(stderr, "quarrel bench: %s '%s' (see quarrel bench --help)\n",
                    a[0] == '-' ? "option needs a value or is unknown:" : "unexpected argument", a);
            return 2;
        } else {
            const int rc = parse_value(o, a, argv[++i]);
            if (rc == 2) {
                fprintf(stderr, "quarrel bench: unknown option '%s' (see quarrel bench --help)\n", a);
                return 2;
            }
            if (rc) return 1;
        }
    }
    if (!o->model) {
        fprintf(stderr, "quarrel bench: -m MODEL is required (see quarrel bench --help)\n");
        return 2;
    }
    return 0;
}

/* ---- Running the tests ----------------------------------------------------------------------- */

static int decode_tokens(qr_ctx *c, const qr_token *toks, int32_t n, bool one_by_one) {
    char err[1024];
    if (qr_ctx_seq_truncate(c, 0, 0, err, sizeof err)) return fprintf(stderr, "quarrel bench: %s\n", err), 1;
    const int32_t step = one_by_one ? 1 : n;
    for (int32_t i = 0; i < n; i += step) {
        qr_batch b = {.n_tokens = step, .tokens = toks + i};
        if (qr_decode(c, &b, err, sizeof err)) return fprintf(stderr, "quarrel bench: %s\n", err), 1;
    }
    return 0;
}

static void random_tokens(qr_token *t, int32_t n, int32_t n_vocab, uint64_t seed) {
    qr_rng rng;
    qr_rng_init(&rng, seed);
    for (int32_t i = 0; i < n; i++) t[i] = (qr_token)(qr_rng_next(&rng) % (uint64_t)n_vocab);
}

static void stats(bench_result *r) {
    double sum = 0.0, sq = 0.0;
    for (int i = 0; i < r->n_samples; i++) sum += r->samples[i];
    r->mean = sum / r->n_samples;
    for (int i = 0; i < r->n_samples; i++) sq += (r->samples[i] - r->mean) * (r->samples[i] - r->mean);
    r->stddev = r->n_samples > 1 ? sqrt(sq / (r->n_samples - 1)) : 0.0;
}

static int run_test(qr_model *m, const bench_opts *o, bench_result *r) {
    char err[1024];
    qr_ctx_params cp = qr_ctx_default_params();
    cp.n_ctx = r->n_prompt + r->n_gen;
    cp.n_batch = o->n_batch;
    cp.n_threads = r->n_threads;
    cp.kv_f32 = o->kv_f32;
    cp.batch_invariant = o->batch_invariant;
    cp.n_gpu_layers = o->n_gpu_layers;
    qr_ctx *c = qr_ctx_create(m, &cp, err, sizeof err);
    if (!c) return fprintf(stderr, "quarrel bench: %s\n", err), 1;
    const int32_t n = r->n_prompt + r->n_gen;
    qr_token *toks = malloc((size_t)n * sizeof *toks);
    int rc = toks ? 0 : (fprintf(stderr, "quarrel bench: out of memory\n"), 1);
    const bool gen = r->n_gen > 0;
    if (!rc && o->warmup) {
        random_tokens(toks, n, qr_model_n_vocab(m), 42);
        rc = decode_tokens(c, toks, gen ? 1 : r->n_prompt, gen);
    }
    for (int rep = 0; rep < o->reps && !rc; rep++) {
        random_tokens(toks, n, qr_model_n_vocab(m), 1000u + (uint64_t)rep);
        const double t0 = qr_time_now_s();
        rc = gen ? decode_tokens(c, toks, r->n_gen, true) : decode_tokens(c, toks, r->n_prompt, false);
        const double dt = qr_time_now_s() - t0;
        r->samples[r->n_samples++] = (gen ? r->n_gen : r->n_prompt) / dt;
    }
    if (!rc) stats(r);
    free(toks);
    qr_ctx_free(c);
    return rc;
}

/* ---- Reporting -------------------------------------------------------------------------------- */

static void roofline(bench_result *r, const bench_model_bytes *mb, int32_t n_batch, double bw) {
    if (bw <= 0.0) return;
    if (r->n_gen > 0) {
        const double kv = (double)mb->kv_bytes_per_pos * (r->n_gen - 1) / 2.0;
        r->roofline = bw / ((double)mb->per_token_bytes + kv);
    } else {
        const int32_t rows = r->n_prompt < n_batch ? r->n_prompt : n_batch;
        r->roofline = bw * rows / (double)mb->per_token_bytes;
    }
}

static void test_name(const bench_result *r, char *buf, size_t cap) {
    if (r->n_gen > 0) snprintf(buf, cap, "tg%d", r->n_gen);
    else snprintf(buf, cap, "pp%d", r->n_prompt);
}

static void print_md(const bench_opts *o, const bench_model_bytes *mb, const char *arch, const bench_result *rs,
                     int n, double load_s, uint64_t rss, double bw) {
    printf("| model | size | params | backend | threads | test | t/s | roofline t/s | of roofline |\n");
    printf("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for (int i = 0; i < n; i++) {
        char name[32];
        test_name(&rs[i], name, sizeof name);
        char size[32], params[32];
        if (mb->file_bytes >= (1u << 30)) snprintf(size, sizeof size, "%.2f GiB", mb->file_bytes / 1073741824.0);
        else snprintf(size, sizeof size, "%.2f MiB", mb->file_bytes / 1048576.0);
        if (mb->n_params >= 1000000000u) snprintf(params, sizeof params, "%.2f B", mb->n_params / 1e9);
        else snprintf(params, sizeof params, "%.2f M", mb->n_params / 1e6);
        printf("| %s %s | %s | %s | cpu | %d | %s | %.2f ± %.2f |", arch, mb->type_name, size, params,
               rs[i].n_threads, name, rs[i].mean, rs[i].stddev);
        if (rs[i].roofline > 0) printf(" %.1f | %.0f%% |\n", rs[i].roofline, 100.0 * rs[i].mean / rs[i].roofline);
        else printf(" - | - |\n");
    }
    printf("\nload %.2f s; peak RSS %.1f MiB (model file %.1f MiB); read bandwidth %.1f GB/s (%d thread%s, %d MiB)%s\n",
           load_s, rss / 1048576.0, mb->file_bytes / 1048576.0, bw / 1e9, o->threads.v[o->threads.n - 1],
           o->threads.v[o->threads.n - 1] == 1 ? "" : "s", o->bandwidth_mb, o->batch_invariant ? "; batch-invariant" : "");
}

static void print_json(const bench_opts *o, const bench_model_bytes *mb, const char *arch, const bench_result *rs,
                       int n, double load_s, uint64_t rss, double bw) {
    printf("[\n");
    for (int i = 0; i < n; i++) {
        const bench_result *r = &rs[i];
        printf("  {\"engine\": \"quarrel\", \"model_filename\": \"%s\", \"arch\": \"%s\", \"model_type\": \"%s\", "
               "\"model_size\": %llu, \"model_n_params\": %llu, \"n_threads\": %d, \"n_prompt\": %d, \"n_gen\": %d, "
               "\"n_batch\": %d, \"batch_invariant\": %s, \"avg_ts\": %.4f, \"stddev_ts\": %.4f, \"samples_ts\": [",
               o->model, arch, mb->type_name, (unsigned long long)mb->file_bytes, (unsigned long long)mb->n_params,
               r->n_threads, r->n_prompt, r->n_gen, o->n_batch, o->batch_invariant ? "true" : "false", r->mean,
               r->stddev);
        for (int k = 0; k < r->n_samples; k++) printf("%s%.4f", k ? ", " : "", r->samples[k]);
        printf("], \"load_time_s\": %.4f, \"peak_rss_bytes\": %llu, \"read_bandwidth_gbs\": %.3f, "
               "\"bytes_per_token\": %llu, \"kv_cache_bytes\": %llu, \"roofline_ts\": %.4f, \"roofline_fraction\": %.4f}%s\n",
               load_s, (unsigned long long)rss, bw / 1e9, (unsigned long long)mb->per_token_bytes,
               (unsigned long long)(mb->kv_bytes_per_pos * (uint64_t)(r->n_prompt + r->n_gen) * (o->kv_f32 ? 2u : 1u)), r->roofline,
               r->roofline > 0 ? r->mean / r->roofline : 0.0, i + 1 < n ? "," : "");
    }
    printf("]\n");
}

int cmd_bench(int argc, char **argv) {
    bench_opts o = {.reps = 5, .n_batch = 512, .bandwidth_mb = 1024, .n_gpu_layers = -1, .warmup = true};
    o.prompt = (int_list){.v = {512}, .n = 1};
    o.gen = (int_list){.v = {128}, .n = 1};
    o.threads = (int_list){.v = {qr_threadpool_default_threads()}, .n = 1};
    const int prc = parse_args(argc, argv, &o);
    if (prc) return prc == 3 ? 0 : prc;
    bench_model_bytes mb;
    if (bench_model_bytes_read(o.model, &mb)) return 1;
    char err[1024];
    const double t0 = qr_time_now_s();
    qr_model *m = qr_model_load(o.model, err, sizeof err);
    if (!m) return fprintf(stderr, "quarrel bench: %s\n", err), 1;
    const double load_s = qr_time_now_s() - t0;
    bench_result *rs = calloc((size_t)(o.threads.n * (o.prompt.n + o.gen.n)), sizeof *rs);
    if (!rs) {
        qr_model_free(m);
        return fprintf(stderr, "quarrel bench: out of memory\n"), 1;
    }
    int n = 0, rc = 0;
    for (int t = 0; t < o.threads.n && !rc; t++) {
        for (int i = 0; i < o.prompt.n + o.gen.n && !rc; i++) {
            const bool gen = i >= o.prompt.n;
            const int32_t len = gen ? o.gen.v[i - o.prompt.n] : o.prompt.v[i];
            if (len == 0) continue;
            bench_result *r = &rs[n];
            *r = (bench_result){.n_prompt = gen ? 0 : len, .n_gen = gen ? len : 0, .n_threads = o.threads.v[t]};
            rc = run_test(m, &o, r);
            if (!rc) n++;
        }
    }
    const uint64_t rss = bench_peak_rss();
    double bw = 0.0;
    if (!rc && o.bandwidth_mb > 0) {
        bw = bench_read_bandwidth(o.threads.v[o.threads.n - 1], (uint64_t)o.bandwidth_mb << 20, 5);
        for (int i = 0; i < n; i++) roofline(&rs[i], &mb, o.n_batch, bw);
    }
    if (!rc) {
        if (o.json) print_json(&o, &mb, qr_model_arch(m), rs, n, load_s, rss, bw);
        else print_md(&o, &mb, qr_model_arch(m), rs, n, load_s, rss, bw);
    }
    free(rs);
    qr_model_free(m);
    return rc;
}
