/* quarrel synth: writes a random-weight model of a given architecture and shape, in any
 * block type, streaming (docs/synth.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "gguf/gguf.h"
#include "synth.h"

#define DEFAULT_VOCAB_REL "tokenizer-vectors/ggml-vocab-llama-spm.gguf"
#define DEFAULT_SEED 1234
#define DEFAULT_STD 0.02f
#define QUANTIZATION_VERSION 2 /* ggml's GGML_QNT_VERSION */

/* A dimension flag: set only when given on the command line. */
typedef struct opt_u32 {
    bool set;
    uint32_t v;
} opt_u32;

typedef struct opt_f32 {
    bool set;
    float v;
} opt_f32;

typedef struct synth_args {
    const char *arch, *shape, *type, *out, *vocab, *name;
    opt_u32 dim, layers, heads, kv_heads, ffn, n_vocab, ctx, head_dim, window, swa_pattern;
    opt_f32 eps, rope_base, rope_base_swa;
    int tied;      /* -1 unset, 0 untied, 1 tied */
    int qkv_bias;  /* -1 unset */
    int rope_freqs;/* -1 unset */
    uint64_t seed;
    float std;
    int threads;
} synth_args;

static void usage(FILE *f) {
    fprintf(f,
        "usage: quarrel synth --arch ARCH [--shape SHAPE] --type TYPE -o OUT.gguf [options]\n"
        "\n"
        "Writes a model with random weights, the metadata and tensor names of ARCH, and the\n"
        "tokenizer of a vocabulary file, padded with unused tokens to the model's vocabulary.\n"
        "\n"
        "  --arch ARCH         llama | mistral | qwen2 | gemma3\n"
        "  --shape SHAPE       tiny | 1b | 8b (default tiny); the flags below override it\n"
        "  --type TYPE         F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K\n"
        "                      (every 2-D weight in that type), or a llama-quantize mix such\n"
        "                      as Q4_K_M, Q3_K_S, Q5_K_M (mix:NAME forces the mix reading)\n"
        "  -o, --output PATH   the GGUF file to write (removed again on failure)\n"
        "  --vocab FILE.gguf   tokenizer source (default $QUARREL_SHARED or ../shared:\n"
        "                      " DEFAULT_VOCAB_REL "); --vocab N sets the size\n"
        "  --n-vocab N         vocabulary size (default: the shape's, or the file's size)\n"
        "  --dim N --layers N --heads N --kv-heads N --ffn N --ctx N --head-dim N\n"
        "  --eps X --rope-base X --rope-base-swa X (gemma3)\n"
        "  --window W          sliding window (mistral: default 4096; gemma3: 0 = none)\n"
        "  --swa-pattern P     gemma3: every P-th layer is global (written only when given)\n"
        "  --tied | --untied   output.weight absent (logits use token_embd) or present\n"
        "  --qkv-bias | --no-qkv-bias       q/k/v biases (default on for qwen2)\n"
        "  --rope-freqs | --no-rope-freqs   Llama 3 rope_freqs.weight (default on for llama 8b)\n"
        "  --seed N            RNG seed (default %d); same seed, same bytes\n"
        "  --std S             standard deviation of weights and biases (default %.2f)\n"
        "  --name NAME         general.name (default synth-ARCH-SHAPE)\n"
        "  -j, --threads N     generation threads (default 1; output does not depend on it)\n",
        DEFAULT_SEED, (double)DEFAULT_STD);
}

static int parse_u64(const char *flag, const char *s, uint64_t max, uint64_t *out) {
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) goto bad;
    *out = v;
    return QR_OK;
bad:
    fprintf(stderr, "quarrel synth: %s expects an integer in [0, %llu], got '%s'\n", flag,
            (unsigned long long)max, s ? s : "");
    return QR_ERR;
}

static int parse_opt_u32(const char *flag, const char *s, opt_u32 *o) {
    uint64_t v;
    if (parse_u64(flag, s, UINT32_MAX, &v) != QR_OK) return QR_ERR;
    o->set = true;
    o->v = (uint32_t)v;
    return QR_OK;
}

static int parse_opt_f32(const char *flag, const char *s, opt_f32 *o) {
    char *end;
    errno = 0;
    float v = s ? strtof(s, &end) : 0.0f;
    if (!s || !*s || errno || *end) {
        fprintf(stderr, "quarrel synth: %s expects a number, got '%s'\n", flag, s ? s : "");
        return QR_ERR;
    }
    o->set = true;
    o->v = v;
    return QR_OK;
}

static bool all_digits(const char *s) {
    if (!*s) return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
    }
    return true;
}

/* Flags without a value; returns 1 when `a` was one. */
static int parse_switch(const char *a, synth_args *o) {
    static const struct { const char *flag; size_t off; int val; } SW[] = {
        {"--tied", offsetof(synth_args, tied), 1}, {"--untied", offsetof(synth_args, tied), 0},
        {"--qkv-bias", offsetof(synth_args, qkv_bias), 1}, {"--no-qkv-bias", offsetof(synth_args, qkv_bias), 0},
        {"--rope-freqs", offsetof(synth_args, rope_freqs), 1},
        {"--no-rope-freqs", offsetof(synth_args, rope_freqs), 0},
    };
    for (size_t i = 0; i < sizeof SW / sizeof SW[0]; i++) {
        if (strcmp(a, SW[i].flag) == 0) {
            *(int *)((char *)o + SW[i].off) = SW[i].val;
            return 1;
        }
    }
    return 0;
}

/* One "--flag VALUE" pair; returns QR_OK, QR_ERR, or 1 when the flag is unknown. */
static int parse_valued(const char *a, const char *v, synth_args *o) {
    static const struct { const char *flag; size_t off; } U32[] = {
        {"--dim", offsetof(synth_args, dim)}, {"--layers", offsetof(synth_args, layers)},
        {"--heads", offsetof(synth_args, heads)}, {"--kv-heads", offsetof(synth_args, kv_heads)},
        {"--ffn", offsetof(synth_args, ffn)}, {"--n-vocab", offsetof(synth_args, n_vocab)},
        {"--ctx", offsetof(synth_args, ctx)}, {"--head-dim", offsetof(synth_args, head_dim)},
        {"--window", offsetof(synth_args, window)}, {"--swa-pattern", offsetof(synth_args, swa_pattern)},
    };
    static const struct { const char *flag; size_t off; } F32[] = {
        {"--eps", offsetof(synth_args, eps)}, {"--rope-base", offsetof(synth_args, rope_base)},
        {"--rope-base-swa", offsetof(synth_args, rope_base_swa)},
    };
    for (size_t i = 0; i < sizeof U32 / sizeof U32[0]; i++) {
        if (strcmp(a, U32[i].flag) == 0) return parse_opt_u32(a, v, (opt_u32 *)((char *)o + U32[i].off));
    }
    for (size_t i = 0; i < sizeof F32 / sizeof F32[0]; i++) {
        if (strcmp(a, F32[i].flag) == 0) return parse_opt_f32(a, v, (opt_f32 *)((char *)o + F32[i].off));
    }
    if (!strcmp(a, "--arch")) o->arch = v;
    else if (!strcmp(a, "--shape")) o->shape = v;
    else if (!strcmp(a, "--type") || !strcmp(a, "-t")) o->type = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--output")) o->out = v;
    else if (!strcmp(a, "--name")) o->name = v;
    else if (!strcmp(a, "--vocab")) {
        /* --vocab takes a file, or a number (the size) as the explicit-dims form */
        if (v && all_digits(v)) return parse_opt_u32(a, v, &o->n_vocab);
        o->vocab = v;
    } else if (!strcmp(a, "--seed")) return parse_u64(a, v, UINT64_MAX, &o->seed);
    else if (!strcmp(a, "--std")) {
        opt_f32 s = {false, 0};
        if (parse_opt_f32(a, v, &s) != QR_OK) return QR_ERR;
        o->std = s.v;
    } else if (!strcmp(a, "-j") || !strcmp(a, "--threads")) {
        uint64_t n;
        if (parse_u64(a, v, 64, &n) != QR_OK) return QR_ERR;
        o->threads = (int)n;
    } else return 1;
    return QR_OK;
}

/* Returns 0 to go on, or the exit code (0 for --help). */
static int parse_args(int argc, char **argv, synth_args *o, bool *help) {
    memset(o, 0, sizeof *o);
    o->tied = o->qkv_bias = o->rope_freqs = -1;
    o->seed = DEFAULT_SEED;
    o->std = DEFAULT_STD;
    o->threads = 1;
    o->shape = "tiny";
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            *help = true;
            return 0;
        }
        if (parse_switch(a, o)) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "quarrel synth: %s needs a value (or is unknown); see --help\n", a);
            return 2;
        }
        int rc = parse_valued(a, argv[i + 1], o);
        if (rc == 1) {
            fprintf(stderr, "quarrel synth: unknown option '%s'; see --help\n", a);
            return 2;
        }
        if (rc != QR_OK) return 2;
        i++;
    }
    if (!o->arch || !o->type || !o->out) {
        fprintf(stderr, "quarrel synth: --arch, --type and -o are required; see --help\n");
        return 2;
    }
    return 0;
}

/* ---- Hyper-parameters ------------------------------------------------------------------ */

static void apply_u32(const opt_u32 *o, uint32_t *dst) {
    if (o->set) *dst = o->v;
}

static int apply_overrides(const qr_arch *arch, const synth_args *a, qr_hparams *hp, qr_error *err) {
    apply_u32(&a->dim, &hp->n_embd);
    apply_u32(&a->layers, &hp->n_layer);
    apply_u32(&a->heads, &hp->n_head);
    apply_u32(&a->kv_heads, &hp->n_head_kv);
    apply_u32(&a->ffn, &hp->n_ff);
    apply_u32(&a->n_vocab, &hp->n_vocab);
    apply_u32(&a->ctx, &hp->n_ctx);
    if (a->eps.set) hp->rms_eps = a->eps.v;
    if (a->rope_base.set) hp->rope_base = a->rope_base.v;
    if (a->heads.set && a->heads.v == 0) return qr_fail(err, "--heads must be positive");
    if (a->head_dim.set) {
        hp->head_dim_k = hp->head_dim_v = a->head_dim.v;
    } else if (arch->id != QR_ARCH_GEMMA3 && (a->dim.set || a->heads.set)) {
        /* llama/mistral/qwen2 derive the head size; gemma3 keeps its stated one */
        if (hp->n_embd % hp->n_head != 0) {
            return qr_fail(err, "--dim %u is not divisible by --heads %u (or give --head-dim)",
                           hp->n_embd, hp->n_head);
        }
        hp->head_dim_k = hp->head_dim_v = hp->n_embd / hp->n_head;
    }
    hp->n_rot = hp->head_dim_k;
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0) {
        return qr_fail(err, "--heads %u is not a multiple of --kv-heads %u", hp->n_head, hp->n_head_kv);
    }
    if (a->tied >= 0) hp->tied_output = a->tied == 1;
    return QR_OK;
}

static int apply_arch_options(const qr_arch *arch, const synth_args *a, qr_hparams *hp, qr_error *err) {
    const bool swa_arch = arch->id == QR_ARCH_MISTRAL || arch->id == QR_ARCH_GEMMA3;
    if (a->window.set) {
        if (!swa_arch) return qr_fail(err, "--window: %s has no sliding window (use --arch mistral)", arch->name);
        if (arch->id == QR_ARCH_MISTRAL && a->window.v == 0) return qr_fail(err, "--window must be positive for mistral");
        hp->sliding_window = a->window.v;
    }
    if (a->swa_pattern.set || a->rope_base_swa.set) {
        if (arch->id != QR_ARCH_GEMMA3) {
            return qr_fail(err, "--swa-pattern and --rope-base-swa apply to gemma3 only");
        }
        if (a->swa_pattern.set) hp->swa_pattern = a->swa_pattern.v;
        if (a->rope_base_swa.set) hp->rope_base_swa = a->rope_base_swa.v;
    }
    if (a->qkv_bias >= 0) {
        if (arch->id == QR_ARCH_GEMMA3 && a->qkv_bias) return qr_fail(err, "--qkv-bias: gemma3 has no biases");
        hp->qkv_bias = a->qkv_bias == 1;
    }
    if (a->rope_freqs >= 0) hp->rope_freqs = a->rope_freqs == 1;
    return QR_OK;
}

/* ---- Vocabulary file -------------------------------------------------------------------- */

static bool file_exists(const char *p) { return access(p, R_OK) == 0; }

/* $QUARREL_SHARED, then ../shared from the working directory, then the shared folder
 * beside the source tree of this binary (<repo>/<build>/bin/quarrel -> <repo>/../shared). */
static int default_vocab(char *buf, size_t n) {
    const char *env = getenv("QUARREL_SHARED");
    if (env && *env) {
        snprintf(buf, n, "%s/%s", env, DEFAULT_VOCAB_REL);
        if (file_exists(buf)) return QR_OK;
    }
    snprintf(buf, n, "../shared/%s", DEFAULT_VOCAB_REL);
    if (file_exists(buf)) return QR_OK;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(buf, n, "%s/../../../shared/%s", exe, DEFAULT_VOCAB_REL);
        if (file_exists(buf)) return QR_OK;
    }
    return QR_ERR;
}

static int open_vocab(const synth_args *a, qr_gguf **g, qr_error *err) {
    char path[8192];
    if (a->vocab) {
        snprintf(path, sizeof path, "%s", a->vocab);
    } else if (default_vocab(path, sizeof path) != QR_OK) {
        return qr_fail(err, "no vocabulary file: pass --vocab FILE.gguf (the default "
                       "$QUARREL_SHARED/%s or ../shared/%s was not found)", DEFAULT_VOCAB_REL,
                       DEFAULT_VOCAB_REL);
    }
    if (qr_gguf_open(path, g, err) != QR_OK) return qr_fail_prefix(err, "--vocab: ");
    return QR_OK;
}

/* ---- Writing ---------------------------------------------------------------------------- */

static int write_arch_keys(qr_gguf_writer *w, const qr_arch *arch, const qr_hparams *hp, qr_error *err) {
    for (size_t i = 0; i < arch->n_keys; i++) {
        const qr_kv_spec *k = &arch->keys[i];
        if (!qr_kv_present(k, hp)) continue;
        char key[128];
        snprintf(key, sizeof key, "%s.%s", arch->gguf_name, k->suffix);
        double v = qr_hparams_field(hp, k);
        int rc = k->type == QR_GGUF_FLOAT32 ? qr_gguf_writer_add_f32(w, key, (float)v, err)
                                            : qr_gguf_writer_add_u32(w, key, (uint32_t)v, err);
        if (rc != QR_OK) return QR_ERR;
    }
    return QR_OK;
}

typedef struct synth_model {
    const qr_arch *arch;
    qr_hparams hp;
    qr_tensor_inst *tensors;
    size_t n_tensors;
    synth_type_choice types;
    const char *name;
} synth_model;

static int write_file(const char *out, const synth_model *m, const qr_gguf *vocab, const synth_gen *gen,
                      uint64_t *bytes, qr_error *err) {
    qr_gguf_writer *w;
    if (qr_gguf_writer_create(out, &w, err) != QR_OK) return QR_ERR;
    int rc = qr_gguf_writer_add_str(w, "general.architecture", m->arch->gguf_name, err);
    if (rc == QR_OK) rc = qr_gguf_writer_add_str(w, "general.name", m->name, err);
    if (rc == QR_OK) rc = write_arch_keys(w, m->arch, &m->hp, err);
    if (rc == QR_OK) rc = synth_vocab_write(w, vocab, m->hp.n_vocab, err);
    if (rc == QR_OK) rc = qr_gguf_writer_add_u32(w, "general.quantization_version", QUANTIZATION_VERSION, err);
    if (rc == QR_OK) rc = qr_gguf_writer_add_u32(w, "general.file_type", m->types.ftype, err);
    *bytes = 0;
    for (size_t i = 0; rc == QR_OK && i < m->n_tensors; i++) {
        const qr_tensor_inst *t = &m->tensors[i];
        rc = qr_gguf_writer_add_tensor(w, t->name, m->types.types[i], t->n_dims, t->ne, err);
        *bytes += qr_type_row_size(qr_type_get_traits(m->types.types[i]), t->ne[0]) * (uint64_t)t->ne[1];
    }
    for (size_t i = 0; rc == QR_OK && i < m->n_tensors; i++) {
        rc = synth_write_tensor(w, gen, &m->hp, &m->tensors[i], i, m->types.types[i], err);
    }
    if (rc != QR_OK) {
        qr_gguf_writer_abort(w);
        return QR_ERR;
    }
    return qr_gguf_writer_finish(w, err);
}

static int build_model(const synth_args *a, const qr_gguf *vocab, synth_model *m, char *name_buf,
                       size_t name_n, qr_error *err) {
    memset(m, 0, sizeof *m);
    m->arch = qr_arch_find(a->arch);
    if (!m->arch) return qr_fail(err, "unknown --arch '%s' (expected %s)", a->arch, qr_arch_names());
    if (synth_shape_get(m->arch, a->shape, &m->hp, err) != QR_OK) return QR_ERR;
    if (apply_overrides(m->arch, a, &m->hp, err) != QR_OK) return QR_ERR;
    if (apply_arch_options(m->arch, a, &m->hp, err) != QR_OK) return QR_ERR;
    uint64_t n_tokens;
    if (synth_vocab_n_tokens(vocab, &n_tokens, err) != QR_OK) return QR_ERR;
    if (m->hp.n_vocab == 0) {
        if (n_tokens > UINT32_MAX) return qr_fail(err, "the vocabulary is too large");
        m->hp.n_vocab = (uint32_t)n_tokens;
    }
    if (m->hp.n_vocab < n_tokens) {
        return qr_fail(err, "the model's vocabulary (%u) is smaller than the %llu tokens of %s; "
                       "raise --n-vocab or use another --vocab", m->hp.n_vocab,
                       (unsigned long long)n_tokens, qr_gguf_path(vocab));
    }
    if (qr_hparams_validate(m->arch, &m->hp, err) != QR_OK) return qr_fail_prefix(err, "invalid model: ");
    if (qr_arch_tensors(m->arch, &m->hp, &m->tensors, &m->n_tensors, err) != QR_OK) return QR_ERR;
    if (synth_types_choose(a->type, m->arch, &m->hp, m->tensors, m->n_tensors, &m->types, err) != QR_OK) {
        return QR_ERR;
    }
    if (a->name) {
        m->name = a->name;
    } else {
        snprintf(name_buf, name_n, "synth-%s-%s", m->arch->name, a->shape);
        m->name = name_buf;
    }
    return QR_OK;
}

int cmd_synth(int argc, char **argv) {
    synth_args a;
    bool help;
    int rc = parse_args(argc, argv, &a, &help);
    if (help) {
        usage(stdout);
        return 0;
    }
    if (rc != 0) return rc;
    if (!(a.std >= 0.0f)) {
        fprintf(stderr, "quarrel synth: --std must be >= 0\n");
        return 2;
    }
    qr_error err = {{0}};
    qr_gguf *vocab = NULL;
    synth_model m = {0};
    char name[128];
    uint64_t bytes = 0;
    rc = open_vocab(&a, &vocab, &err);
    if (rc == QR_OK) rc = build_model(&a, vocab, &m, name, sizeof name, &err);
    if (rc == QR_OK) {
        synth_gen gen = {a.seed, a.std, a.threads};
        rc = write_file(a.out, &m, vocab, &gen, &bytes, &err);
    }
    if (rc == QR_OK) {
        printf("wrote %s: %s (GGUF arch %s), %zu tensors, %u layers, n_embd %u, vocab %u, type %s, "
               "%.1f MiB of tensor data\n", a.out, m.arch->name, m.arch->gguf_name, m.n_tensors,
               m.hp.n_layer, m.hp.n_embd, m.hp.n_vocab, a.type, (double)bytes / (1024.0 * 1024.0));
        if (m.types.n_fallback > 0) {
            fprintf(stderr, "quarrel synth: %d tensor(s) used a fallback type (row length not a "
                    "multiple of the block size)\n", m.types.n_fallback);
        }
    } else {
        fprintf(stderr, "quarrel synth: %s\n", err.msg);
    }
    synth_types_free(&m.types);
    free(m.tensors);
    if (vocab) qr_gguf_close(vocab);
    return rc == QR_OK ? 0 : 1;
}
