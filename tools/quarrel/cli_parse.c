/* Strict option-value parsing for the CLI (see cli_parse.h). */
#include "cli_parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_i32(const char *cmd, const char *flag, const char *s, int32_t lo, int32_t hi, int32_t *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "quarrel %s: invalid value '%s' for %s (expected an integer in %d..%d)\n", cmd, s, flag, lo, hi);
        return 1;
    }
    *out = (int32_t)v;
    return 0;
}

int cli_parse_f32(const char *cmd, const char *flag, const char *s, float lo, float hi, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "quarrel %s: invalid value '%s' for %s (expected a number in %g..%g)\n", cmd, s, flag,
                (double)lo, (double)hi);
        return 1;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        fprintf(stderr, "quarrel %s: invalid value '%s' for %s (expected a non-negative integer)\n", cmd, s, flag);
        return 1;
    }
    *out = v;
    return 0;
}

bool cli_is(const char *a, const char *short_name, const char *long_name) {
    return strcmp(a, short_name) == 0 || (long_name && strcmp(a, long_name) == 0);
}

int cli_parse_sampling(const char *cmd, const char *a, const char *v, qr_sampling_params *sp) {
    if (cli_is(a, "--temp", NULL)) return cli_parse_f32(cmd, a, v, 0.0f, 1e6f, &sp->temperature);
    if (cli_is(a, "--top-k", NULL)) return cli_parse_i32(cmd, a, v, 0, 1 << 30, &sp->top_k);
    if (cli_is(a, "--top-p", NULL)) return cli_parse_f32(cmd, a, v, 1e-9f, 1.0f, &sp->top_p);
    if (cli_is(a, "--min-p", NULL)) return cli_parse_f32(cmd, a, v, 0.0f, 1.0f, &sp->min_p);
    if (cli_is(a, "--repeat-penalty", NULL)) return cli_parse_f32(cmd, a, v, 1e-6f, 1e6f, &sp->repeat_penalty);
    if (cli_is(a, "--repeat-last-n", NULL)) return cli_parse_i32(cmd, a, v, 0, 1 << 20, &sp->penalty_last_n);
    if (cli_is(a, "--seed", NULL)) return cli_parse_u64(cmd, a, v, &sp->seed);
    return 2;
}

int cli_parse_model(const char *cmd, const char *a, const char *v, qr_model_params *mp) {
    if (cli_is(a, "--arch-config", NULL)) {
        mp->arch_config_path = v;
        return 0;
    }
    if (cli_is(a, "--swa", NULL)) return cli_parse_i32(cmd, a, v, 0, INT32_MAX, &mp->swa_window);
    return 2;
}

int cli_parse_device(const char *cmd, const char *a, const char *v, qr_device *out) {
    if (!cli_is(a, "--device", NULL)) return 2;
    if (strcmp(v, "cpu") == 0) *out = QR_DEVICE_CPU;
    else if (strcmp(v, "cuda") == 0) *out = QR_DEVICE_CUDA;
    else if (strcmp(v, "auto") == 0) *out = QR_DEVICE_AUTO;
    else {
        fprintf(stderr, "quarrel %s: invalid value '%s' for --device (expected cpu, cuda or auto)\n", cmd, v);
        return 1;
    }
    return 0;
}

bool cli_is_gpu_layers(const char *a) { return cli_is(a, "-ngl", "--n-gpu-layers") || cli_is(a, "--gpu-layers", NULL); }

int cli_parse_gpu_layers(const char *cmd, const char *a, const char *v, int32_t *out) {
    if (!cli_is_gpu_layers(a)) return 2;
    if (strcmp(v, "all") == 0) {
        *out = -1;
        return 0;
    }
    char *end;
    errno = 0;
    const long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < -1 || n > INT32_MAX) {
        fprintf(stderr, "quarrel %s: invalid value '%s' for %s (expected a layer count >= 0, or all)\n", cmd, v, a);
        return 1;
    }
    *out = (int32_t)n;
    return 0;
}
