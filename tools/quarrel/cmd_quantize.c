/* quarrel quantize IN.gguf OUT.gguf TYPE [-t THREADS]: llama-quantize's mixes, with the
 * same per-tensor types (src/model/quant_policy.h) and the same reference rounding
 * (src/quant), so the tensor data matches llama-quantize's output byte for byte.
 * Tensors are converted in slabs of rows, so memory stays bounded on large models. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/timer.h"
#include "commands.h"
#include "core/threadpool.h"
#include "gguf/gguf.h"
#include "model/quant_policy.h"
#include "quant/quant.h"

#define QUANTIZATION_VERSION 2           /* GGML_QNT_VERSION */
#define SLAB_ELEMENTS (16 * 1024 * 1024) /* F32 elements converted per slab (64 MiB) */
#define CHUNK_ELEMENTS (32 * 512)        /* elements per parallel work item, as llama.cpp */

typedef struct {
    const char *in_path, *out_path, *type_name;
    int n_threads;
    bool verbose;
} options;

static void print_types(FILE *f) {
    for (int i = 0; i < qr_quant_mix_count(); i++) {
        const qr_quant_mix *m = qr_quant_mix_at(i);
        fprintf(f, "  %-7s %s\n", m->name, m->summary);
    }
    fprintf(f, "  (Q3_K, Q4_K, Q5_K are aliases of the _M mixes)\n");
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: quarrel quantize [options] IN.gguf OUT.gguf TYPE\n\n"
            "Converts a GGUF model to one of llama.cpp's quantization mixes, choosing each\n"
            "tensor's block type by llama-quantize's rules (see docs/quantize.md). Inputs\n"
            "may be F32, F16, BF16 or already quantized (dequantized first).\n\n"
            "options:\n"
            "  -t, --threads N   worker threads (default: all CPUs)\n"
            "  -v, --verbose     print one line per tensor\n"
            "  -h, --help        show this help\n\n"
            "types:\n");
    print_types(f);
}

/* Returns -1 to continue, else the exit code. */
static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->n_threads = qr_threadpool_default_threads();
    const char *pos[3];
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            o->verbose = true;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--threads") == 0) {
            char *end = NULL;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || *end != '\0' || v < 1 || v > 1024) {
                fprintf(stderr, "quarrel quantize: %s needs a thread count in [1, 1024]\n", a);
                return 2;
            }
            o->n_threads = (int)v;
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "quarrel quantize: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (n_pos < 3) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "quarrel quantize: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (n_pos != 3) {
        usage(stderr);
        return 2;
    }
    o->in_path = pos[0];
    o->out_path = pos[1];
    o->type_name = pos[2];
    return -1;
}

/* ---- Progress ------------------------------------------------------------------------- */

typedef struct {
    bool enabled; /* stderr is a terminal */
    double total, done;
    int64_t n_tensors;
} progress;

static void progress_show(progress *p, int64_t i_tensor, const char *name) {
    if (!p->enabled) return;
    const int width = 30;
    double frac = p->total > 0 ? p->done / p->total : 1.0;
    int fill = (int)(frac * width + 0.5);
    fprintf(stderr, "\r[%.*s%*s] %3d%% %4lld/%-4lld %-40.40s", fill,
            "==============================", width - fill, "", (int)(frac * 100 + 0.5),
            (long long)i_tensor + 1, (long long)p->n_tensors, name);
    fflush(stderr);
}

static void progress_end(progress *p) {
    if (p->enabled) fprintf(stderr, "\r%*s\r", 90, "");
}

/* ---- Conversion of one tensor --------------------------------------------------------- */

typedef struct {
    const qr_gguf_tensor *in;
    qr_type out_type;
    int64_t ne0;
    size_t in_row_bytes, out_row_bytes;
    int64_t row0;       /* first row of the current slab */
    float *f32;         /* slab of dequantized rows (NULL when the input is F32) */
    uint8_t *out;       /* slab of converted rows */
    atomic_int failed;
    qr_error err;       /* written only by the thread that set `failed` */
} convert_job;

static void convert_rows(void *ctx, int64_t begin, int64_t end, int thread_id) {
    (void)thread_id;
    convert_job *j = ctx;
    qr_error e;
    for (int64_t r = begin; r < end && !atomic_load(&j->failed); r++) {
        const uint8_t *src = (const uint8_t *)j->in->data + (size_t)(j->row0 + r) * j->in_row_bytes;
        const float *x = (const float *)src;
        int rc = QR_OK;
        if (j->f32) {
            float *row = j->f32 + (size_t)r * (size_t)j->ne0;
            rc = qr_dequantize_row(j->in->type, src, row, j->ne0, &e);
            x = row;
        }
        if (rc == QR_OK) {
            rc = qr_quantize_row(j->out_type, x, j->out + (size_t)r * j->out_row_bytes, j->ne0, &e);
        }
        int expected = 0;
        if (rc != QR_OK && atomic_compare_exchange_strong(&j->failed, &expected, 1)) j->err = e;
    }
}

/* Converts one tensor slab by slab and streams it to the writer. */
static int convert_tensor(const qr_gguf_tensor *t, const char *name, qr_type out_type,
                          qr_threadpool *pool, qr_gguf_writer *w, progress *pg, int64_t i_tensor,
                          qr_error *err) {
    convert_job j = {.in = t, .out_type = out_type, .ne0 = t->ne[0]};
    if (j.ne0 <= 0) return qr_fail(err, "tensor '%s': empty rows (ne[0] = %lld)", name, (long long)j.ne0);
    j.in_row_bytes = qr_type_row_size(qr_type_get_traits((uint32_t)t->type), j.ne0);
    j.out_row_bytes = qr_type_row_size(qr_type_get_traits((uint32_t)out_type), j.ne0);
    const int64_t n_rows = t->n_elements / j.ne0;
    const int64_t slab_rows = j.ne0 >= SLAB_ELEMENTS ? 1 : SLAB_ELEMENTS / j.ne0;
    const int64_t cap = slab_rows < n_rows ? slab_rows : n_rows;
    /* F32 rows are read in place when aligned (files with general.alignment < 4 exist). */
    const bool need_f32 = t->type != QR_TYPE_F32 || (uintptr_t)t->data % sizeof(float) != 0 ||
                          j.in_row_bytes % sizeof(float) != 0;
    if (need_f32) j.f32 = malloc((size_t)cap * (size_t)j.ne0 * sizeof(float));
    j.out = malloc((size_t)cap * j.out_row_bytes);
    int rc = QR_OK;
    if (!j.out || (need_f32 && !j.f32)) {
        rc = qr_fail(err, "tensor '%s': out of memory for a %lld-row slab", name, (long long)cap);
    }
    const int64_t grain = j.ne0 >= CHUNK_ELEMENTS ? 1 : CHUNK_ELEMENTS / j.ne0;
    for (j.row0 = 0; rc == QR_OK && j.row0 < n_rows; j.row0 += cap) {
        const int64_t rows = n_rows - j.row0 < cap ? n_rows - j.row0 : cap;
        atomic_init(&j.failed, 0);
        qr_threadpool_parallel_for(pool, rows, grain, convert_rows, &j);
        if (atomic_load(&j.failed)) {
            rc = qr_fail(err, "tensor '%s': %s", name, j.err.msg);
        } else {
            rc = qr_gguf_writer_write_data(w, j.out, (size_t)rows * j.out_row_bytes, err);
        }
        pg->done += (double)rows * (double)j.ne0;
        progress_show(pg, i_tensor, name);
    }
    free(j.f32);
    free(j.out);
    return rc;
}

/* ---- The whole file ------------------------------------------------------------------- */

/* llama-quantize copies every key, drops the split keys, and re-adds
 * general.quantization_version and general.file_type at the end. */
static int write_metadata(const qr_gguf *in, const qr_quant_mix *mix, qr_gguf_writer *w,
                          qr_error *err) {
    static const char *const SKIP[] = {"general.quantization_version", "general.file_type",
                                       "split.no", "split.count", "split.tensors.count"};
    for (int64_t i = 0; i < qr_gguf_n_kv(in); i++) {
        const qr_gguf_kv *kv = qr_gguf_kv_at(in, i);
        bool skip = false;
        for (size_t k = 0; k < sizeof SKIP / sizeof SKIP[0]; k++) skip |= qr_gguf_str_eq(kv->key, SKIP[k]);
        if (skip) continue;
        int rc = qr_gguf_str_eq(kv->key, "general.alignment")
                     ? qr_gguf_writer_set_alignment(w, qr_gguf_alignment(in), err)
                     : qr_gguf_writer_copy_kv(w, kv, err);
        if (rc != QR_OK) return QR_ERR;
    }
    if (qr_gguf_writer_add_u32(w, "general.quantization_version", QUANTIZATION_VERSION, err) != QR_OK) {
        return QR_ERR;
    }
    return qr_gguf_writer_add_u32(w, "general.file_type", (uint32_t)mix->ftype, err);
}

/* ggml_n_dims: llama-quantize writes tensors without their trailing size-1 dimensions. */
static uint32_t effective_dims(const qr_gguf_tensor *t) {
    for (int i = QR_GGUF_MAX_DIMS - 1; i >= 1; i--) {
        if (t->ne[i] > 1) return (uint32_t)i + 1;
    }
    return 1;
}

static char *tensor_name(const qr_gguf_tensor *t) { return strndup(t->name.ptr, (size_t)t->name.len); }

static int add_tensor_infos(const qr_gguf *in, const qr_quant_plan *plan, qr_gguf_writer *w,
                            qr_error *err) {
    for (int64_t i = 0; i < plan->n; i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(in, plan->items[i].index);
        char *name = tensor_name(t);
        if (!name) return qr_fail(err, "out of memory");
        int rc = qr_gguf_writer_add_tensor(w, name, plan->items[i].type, effective_dims(t), t->ne, err);
        free(name);
        if (rc != QR_OK) return QR_ERR;
    }
    return QR_OK;
}

static void report_fallbacks(const qr_gguf *in, const qr_quant_plan *plan) {
    for (int64_t i = 0; i < plan->n; i++) {
        const qr_quant_plan_item *it = &plan->items[i];
        if (!it->fell_back) continue;
        const qr_gguf_tensor *t = qr_gguf_tensor_at(in, it->index);
        fprintf(stderr, "quarrel quantize: warning: %.*s: rows of %lld are not a multiple of the %s "
                "block; using %s\n", (int)t->name.len, t->name.ptr, (long long)t->ne[0],
                qr_type_name(it->wanted), qr_type_name(it->type));
    }
}

typedef struct {
    double bytes_in, bytes_out;
    int64_t n_converted;
} totals;

static int write_tensors(const qr_gguf *in, const qr_quant_plan *plan, qr_threadpool *pool,
                         qr_gguf_writer *w, const options *o, totals *tot, qr_error *err) {
    progress pg = {.enabled = isatty(STDERR_FILENO) == 1, .n_tensors = plan->n};
    for (int64_t i = 0; i < plan->n; i++) pg.total += (double)qr_gguf_tensor_at(in, plan->items[i].index)->n_elements;
    bool warned_requant = false;
    int rc = QR_OK;
    for (int64_t i = 0; rc == QR_OK && i < plan->n; i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(in, plan->items[i].index);
        const qr_type out_type = plan->items[i].type;
        char *name = tensor_name(t);
        if (!name) return qr_fail(err, "out of memory");
        if (o->verbose) {
            progress_end(&pg);
            fprintf(stderr, "[%4lld/%4lld] %-36s %-6s -> %s\n", (long long)i + 1, (long long)plan->n,
                    name, qr_type_name(t->type), qr_type_name(out_type));
        }
        if (out_type == t->type) {
            rc = qr_gguf_writer_write_data(w, t->data, (size_t)t->n_bytes, err);
            pg.done += (double)t->n_elements;
            progress_show(&pg, i, name);
        } else {
            if (qr_type_get_traits((uint32_t)t->type)->is_quantized && !warned_requant) {
                fprintf(stderr, "quarrel quantize: warning: requantizing %s tensors (e.g. %s): quality "
                        "is lower than quantizing from F32/F16/BF16\n", qr_type_name(t->type), name);
                warned_requant = true;
            }
            rc = convert_tensor(t, name, out_type, pool, w, &pg, i, err);
            tot->n_converted++;
        }
        tot->bytes_in += (double)t->n_bytes;
        tot->bytes_out += (double)qr_type_row_size(qr_type_get_traits((uint32_t)out_type), t->ne[0]) *
                          (double)(t->n_elements / t->ne[0]);
        free(name);
    }
    progress_end(&pg);
    return rc;
}

/* Only one part of a split model would be converted: refuse instead. */
static int check_not_split(const qr_gguf *in, qr_error *err) {
    const qr_gguf_kv *kv = qr_gguf_find_kv(in, "split.count");
    uint32_t n = 1;
    if (kv && qr_gguf_get_u32(in, "split.count", &n, err) != QR_OK) return QR_ERR;
    if (n > 1) {
        return qr_fail(err, "%s: part of a model split into %u files; merge it first "
                       "(llama-gguf-split --merge)", qr_gguf_path(in), n);
    }
    return QR_OK;
}

/* Writing over the input would destroy the mapping being read. */
static int check_distinct(const char *in, const char *out, qr_error *err) {
    struct stat si, so;
    if (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
        return qr_fail(err, "%s: the output is the input file", out);
    }
    return QR_OK;
}

static int quantize_file(const options *o, const qr_quant_mix *mix, qr_error *err) {
    qr_gguf *in = NULL;
    qr_gguf_writer *w = NULL;
    qr_threadpool *pool = NULL;
    qr_quant_plan plan = {0};
    totals tot = {0};
    const double t0 = qr_time_now_s();
    int rc = check_distinct(o->in_path, o->out_path, err);
    if (rc == QR_OK) rc = qr_gguf_open(o->in_path, &in, err);
    if (rc == QR_OK) rc = check_not_split(in, err);
    if (rc == QR_OK) rc = qr_quant_plan_build_gguf(in, mix, &plan, err);
    if (rc == QR_OK) rc = qr_threadpool_create(o->n_threads, &pool, err);
    if (rc == QR_OK) rc = qr_gguf_writer_create(o->out_path, &w, err);
    if (rc == QR_OK) {
        report_fallbacks(in, &plan);
        rc = write_metadata(in, mix, w, err);
    }
    if (rc == QR_OK) rc = add_tensor_infos(in, &plan, w, err);
    if (rc == QR_OK) rc = write_tensors(in, &plan, pool, w, o, &tot, err);
    if (rc == QR_OK) {
        rc = qr_gguf_writer_finish(w, err); /* frees w, removes the file on failure */
        w = NULL;
    }
    if (w) qr_gguf_writer_abort(w); /* removes the partial output */
    if (rc == QR_OK) {
        const double mib = 1024.0 * 1024.0;
        fprintf(stderr, "quarrel quantize: wrote %s as %s: %lld tensors (%lld converted), "
                "%.2f MiB -> %.2f MiB, %d threads, %.2f s\n", o->out_path, mix->name,
                (long long)plan.n, (long long)tot.n_converted, tot.bytes_in / mib,
                tot.bytes_out / mib, o->n_threads, qr_time_now_s() - t0);
    }
    qr_quant_plan_free(&plan);
    qr_threadpool_destroy(pool);
    qr_gguf_close(in);
    return rc;
}

int cmd_quantize(int argc, char **argv) {
    options o;
    int code = parse_args(argc, argv, &o);
    if (code >= 0) return code;
    const qr_quant_mix *mix = qr_quant_mix_find(o.type_name);
    if (!mix) {
        fprintf(stderr, "quarrel quantize: unknown type '%s'; valid types:\n", o.type_name);
        print_types(stderr);
        return 1;
    }
    qr_error err = {{0}};
    if (quantize_file(&o, mix, &err) != QR_OK) {
        fprintf(stderr, "quarrel quantize: %s\n", err.msg);
        return 1;
    }
    return 0;
}
