/* Single-thread matmul throughput of the CPU backend per weight format, for tuning the
 * kernels: GB/s of weights streamed by one decode row (n_rows = 1) from L2 (a 1 MiB-ish
 * matrix, repeated) and from DRAM (a 512 MiB-ish matrix), and GMAC/s of a prompt batch.
 *   build/bin/cpu_matmul_bench [TYPE ...]   (default: Q4_0 Q8_0 Q4_K Q6_K Q5_0 F16) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "core/timer.h"
#include "gguf/types.h"

static double run(qr_backend *be, qr_type t, const uint8_t *w, int64_t n_in, int64_t n_out, const float *x,
                  int64_t rows, float *y, int reps) {
    qr_error err;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        const double t0 = qr_time_now_s();
        if (be->ops->matmul(be, t, w, n_in, n_out, x, rows, y, &err) != QR_OK) {
            fprintf(stderr, "%s\n", err.msg);
            exit(1);
        }
        const double dt = qr_time_now_s() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

int main(int argc, char **argv) {
    const char *defaults[] = {"Q4_0", "Q8_0", "Q4_K", "Q6_K", "Q5_0", "F16"};
    const int n_types = argc > 1 ? argc - 1 : 6;
    qr_backend *be = NULL;
    qr_error err;
    if (qr_backend_cpu_create(1, &be, &err) != QR_OK) return fprintf(stderr, "%s\n", err.msg), 1;
    qr_rng rng;
    qr_rng_init(&rng, 1);
    const int64_t n_in = 2048, big_out = 131072, small_out = 256, batch = 64;
    float *x = malloc(sizeof(float) * (size_t)(n_in * batch)), *y = malloc(sizeof(float) * (size_t)(big_out * batch));
    qr_rng_fill_normal(&rng, x, n_in * batch, 1.0f);
    printf("| type | L2 GB/s (decode) | DRAM GB/s (decode) | batch-64 GMAC/s |\n| --- | ---: | ---: | ---: |\n");
    for (int i = 0; i < n_types; i++) {
        const char *name = argc > 1 ? argv[i + 1] : defaults[i];
        const int t = qr_type_from_name(name);
        if (t < 0) return fprintf(stderr, "unknown type %s\n", name), 1;
        const size_t row = qr_type_row_size(qr_type_get_traits((uint32_t)t), n_in);
        uint8_t *w = malloc(row * (size_t)big_out);
        for (size_t k = 0; k < row * (size_t)big_out; k++) w[k] = (uint8_t)(qr_rng_next(&rng) >> 58); /* small: finite scales */
        const double l2 = run(be, (qr_type)t, w, n_in, small_out, x, 1, y, 200);
        const double dram = run(be, (qr_type)t, w, n_in, big_out, x, 1, y, 3);
        const double gemm = run(be, (qr_type)t, w, n_in, 4096, x, batch, y, 3);
        printf("| %s | %.1f | %.1f | %.1f |\n", name, row * small_out / l2 / 1e9, row * (double)big_out / dram / 1e9,
               (double)n_in * 4096 * batch / gemm / 1e9);
        free(w);
    }
    free(x);
    free(y);
    qr_backend_destroy(be);
    return 0;
}
