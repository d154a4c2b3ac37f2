/* Tensor data of synthetic models, generated and written a chunk of rows at a time, in
 * the tensor's storage type, so that memory stays at a few MiB whatever the model size.
 *
 * Every row has its own RNG stream (seed, tensor index, row): the values do not depend
 * on the chunking, on the number of threads, or on the storage type (an F32 and a Q4_0
 * file of one seed hold the same weights before rounding). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "quant/quant.h"
#include "synth.h"

#define CHUNK_FLOATS (1 << 20) /* values generated per chunk: 4 MiB of F32 */
#define MAX_THREADS 64

/* Llama 3.1's rope_scaling (config.json rope_type "llama3"), as conversion/llama.py
 * turns it into rope_freqs.weight. */
#define LLAMA3_FACTOR 8.0
#define LLAMA3_LOW_FREQ_FACTOR 1.0
#define LLAMA3_HIGH_FREQ_FACTOR 4.0
#define LLAMA3_OLD_CONTEXT 8192.0

typedef struct row_job {
    const synth_gen *gen;
    size_t tensor_index;
    qr_type type;
    int64_t ncols;
    size_t row_bytes;
    int64_t row0, n_rows;  /* absolute first row and count of this job */
    float *f32;            /* scratch, n_rows * ncols (unused for F32 output) */
    uint8_t *out;          /* n_rows * row_bytes */
    int rc;
    qr_error err;
} row_job;

static void *run_rows(void *arg) {
    row_job *j = arg;
    j->rc = QR_OK;
    for (int64_t r = 0; r < j->n_rows; r++) {
        qr_rng rng;
        qr_rng_init_stream(&rng, j->gen->seed, j->tensor_index, (uint64_t)(j->row0 + r));
        uint8_t *dst = j->out + (size_t)r * j->row_bytes;
        float *src = j->type == QR_TYPE_F32 ? (float *)dst : j->f32 + r * j->ncols;
        qr_rng_fill_normal(&rng, src, j->ncols, j->gen->std);
        if (j->type != QR_TYPE_F32 &&
            qr_quantize_row(j->type, src, dst, j->ncols, &j->err) != QR_OK) {
            j->rc = QR_ERR;
            return NULL;
        }
    }
    return NULL;
}

/* Fills rows [row0, row0 + n_rows) into out, split over up to n_threads threads. */
static int gen_rows(const synth_gen *g, size_t index, qr_type type, int64_t ncols, size_t row_bytes,
                    int64_t row0, int64_t n_rows, float *f32, uint8_t *out, qr_error *err) {
    int nt = g->n_threads < 1 ? 1 : (g->n_threads > MAX_THREADS ? MAX_THREADS : g->n_threads);
    if (nt > n_rows) nt = (int)n_rows;
    row_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    int64_t per = (n_rows + nt - 1) / nt;
    for (int t = 0; t < nt; t++) {
        int64_t a = t * per, b = a + per < n_rows ? a + per : n_rows;
        jobs[t] = (row_job){g, index, type, ncols, row_bytes, row0 + a, b - a,
                            f32 ? f32 + a * ncols : NULL, out + (size_t)a * row_bytes, QR_OK, {{0}}};
        /* the last slice runs on this thread; a failed spawn also runs here */
        if (t < nt - 1 && pthread_create(&tids[t], NULL, run_rows, &jobs[t]) == 0) {
            started[t] = true;
        } else {
            run_rows(&jobs[t]);
        }
    }
    int rc = QR_OK;
    for (int t = 0; t < nt; t++) {
        if (started[t]) pthread_join(tids[t], NULL);
        if (jobs[t].rc != QR_OK && rc == QR_OK) {
            *err = jobs[t].err;
            rc = QR_ERR;
        }
    }
    return rc;
}

static int write_random(qr_gguf_writer *w, const synth_gen *g, const qr_tensor_inst *t, size_t index,
                        qr_type type, qr_error *err) {
    const qr_type_traits *tr = qr_type_get_traits((uint32_t)type);
    const int64_t ncols = t->ne[0], nrows = t->ne[1];
    const size_t row_bytes = qr_type_row_size(tr, ncols);
    int64_t chunk = CHUNK_FLOATS / ncols;
    if (chunk < 1) chunk = 1;
    if (chunk > nrows) chunk = nrows;
    float *f32 = type == QR_TYPE_F32 ? NULL : malloc((size_t)chunk * (size_t)ncols * sizeof(float));
    uint8_t *out = malloc((size_t)chunk * row_bytes);
    int rc = QR_OK;
    if (!out || (type != QR_TYPE_F32 && !f32)) rc = qr_fail(err, "out of memory generating '%s'", t->name);
    for (int64_t r = 0; rc == QR_OK && r < nrows; r += chunk) {
        int64_t n = nrows - r < chunk ? nrows - r : chunk;
        rc = gen_rows(g, index, type, ncols, row_bytes, r, n, f32, out, err);
        if (rc == QR_OK) rc = qr_gguf_writer_write_data(w, out, (size_t)n * row_bytes, err);
    }
    free(f32);
    free(out);
    if (rc != QR_OK) qr_fail_prefix(err, "tensor '%s': ", t->name);
    return rc;
}

static void llama3_rope_freqs(const qr_hparams *hp, float *dst, int64_t n) {
    const double low_wavelen = LLAMA3_OLD_CONTEXT / LLAMA3_LOW_FREQ_FACTOR;
    const double high_wavelen = LLAMA3_OLD_CONTEXT / LLAMA3_HIGH_FREQ_FACTOR;
    for (int64_t i = 0; i < n; i++) {
        /* the converter computes the frequencies in float32 */
        float freq = 1.0f / powf(hp->rope_base, (float)(2 * i) / (float)hp->n_rot);
        double wavelen = 2.0 * M_PI / (double)freq;
        double f;
        if (wavelen < high_wavelen) {
            f = 1.0;
        } else if (wavelen > low_wavelen) {
            f = LLAMA3_FACTOR;
        } else {
            double smooth = (LLAMA3_OLD_CONTEXT / wavelen - LLAMA3_LOW_FREQ_FACTOR) /
                            (LLAMA3_HIGH_FREQ_FACTOR - LLAMA3_LOW_FREQ_FACTOR);
            f = 1.0 / ((1.0 - smooth) / LLAMA3_FACTOR + smooth);
        }
        dst[i] = (float)f;
    }
}

/* Norms, biases and rope_freqs: one F32 row, small enough to build at once. */
static int write_vector(qr_gguf_writer *w, const synth_gen *g, const qr_hparams *hp,
                        const qr_tensor_inst *t, size_t index, qr_error *err) {
    int64_t n = t->ne[0] * t->ne[1];
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return qr_fail(err, "out of memory generating '%s'", t->name);
    switch (t->spec->kind) {
    case QR_TENSOR_NORM:
        for (int64_t i = 0; i < n; i++) v[i] = 1.0f;
        break;
    case QR_TENSOR_ROPE_FREQS:
        llama3_rope_freqs(hp, v, n);
        break;
    default: {
        qr_rng rng;
        qr_rng_init_stream(&rng, g->seed, index, 0);
        qr_rng_fill_normal(&rng, v, n, g->std);
    }
    }
    int rc = qr_gguf_writer_write_data(w, v, (size_t)n * sizeof *v, err);
    free(v);
    return rc;
}

int synth_write_tensor(qr_gguf_writer *w, const synth_gen *g, const qr_hparams *hp,
                       const qr_tensor_inst *t, size_t index, qr_type type, qr_error *err) {
    if (t->spec->kind == QR_TENSOR_MATRIX) return write_random(w, g, t, index, type, err);
    if (type != QR_TYPE_F32) return qr_fail(err, "tensor '%s': 1-D tensors are stored as F32", t->name);
    return write_vector(w, g, hp, t, index, err);
}
