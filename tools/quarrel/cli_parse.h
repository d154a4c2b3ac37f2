/* Option-value parsing shared by `quarrel chat` and `quarrel perplexity`: the whole string
 * must be a number in range, otherwise a one-line message naming the command and flag is
 * printed to stderr. */
#ifndef QR_TOOLS_CLI_PARSE_H
#define QR_TOOLS_CLI_PARSE_H

#include <stdbool.h>
#include <stdint.h>

#include "quarrel.h"

/* Each returns 0 on success, 1 after printing the error. */
int cli_parse_i32(const char *cmd, const char *flag, const char *s, int32_t lo, int32_t hi, int32_t *out);
int cli_parse_f32(const char *cmd, const char *flag, const char *s, float lo, float hi, float *out);
int cli_parse_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);

/* The sampling flags of `quarrel run` (--temp --top-k --top-p --min-p --repeat-penalty
 * --repeat-last-n --seed). Returns 0 parsed, 1 bad value, 2 not a sampling flag. */
int cli_parse_sampling(const char *cmd, const char *flag, const char *value, qr_sampling_params *sp);

/* The model-override flags (--arch-config FILE.json, --swa N) of run, chat, perplexity
 * and inspect. Returns 0 parsed, 1 bad value, 2 not one of them. */
int cli_parse_model(const char *cmd, const char *flag, const char *value, qr_model_params *mp);

/* --device cpu|cuda|auto. Returns 0 parsed, 1 bad value, 2 not --device. */
int cli_parse_device(const char *cmd, const char *flag, const char *value, qr_device *out);

#define CLI_DEVICE_HELP \
    "  --device DEV            cpu | cuda | auto (default: cuda when a GPU is present)\n"

/* -ngl, --gpu-layers, --n-gpu-layers N|all (llama.cpp's spellings): the value of
 * qr_ctx_params.n_gpu_layers ('all' = -1). Returns 0 parsed, 1 bad value, 2 not this flag. */
int cli_parse_gpu_layers(const char *cmd, const char *flag, const char *value, int32_t *out);
bool cli_is_gpu_layers(const char *flag);

#define CLI_NGL_HELP                                                                 \
    "  -ngl, --n-gpu-layers N  on CUDA: the last N layers and the output on the GPU,\n" \
    "                          the embedding and earlier layers on the CPU (models\n"   \
    "                          larger than the card); 'all' or N >= the layer count:\n" \
    "                          everything on the GPU (default)\n"

/* a equals the short or the long spelling (long may be NULL). */
bool cli_is(const char *a, const char *short_name, const char *long_name);

#define CLI_SAMPLING_HELP                                                           \
    "  --temp T                temperature (default 0.8; 0 = greedy)\n"             \
    "  --top-k K               top-k (default 40; 0 = off)\n"                       \
    "  --top-p P               top-p (default 0.95; 1 = off)\n"                     \
    "  --min-p P               min-p (default 0.05; 0 = off)\n"                     \
    "  --repeat-penalty R      repetition penalty (default 1 = off)\n"              \
    "  --repeat-last-n N       tokens the penalty looks back over (default 64)\n"   \
    "  --seed S                sampling seed (default 0)\n"

#define CLI_MODEL_HELP                                                              \
    "  --arch-config FILE      JSON object overriding descriptor fields, e.g.\n"      \
    "                          {\"n_swa\": 4096} (keys: quarrel inspect --arch-json)\n" \
    "  --swa N                 sliding window in tokens (0 = none); with no layer\n"   \
    "                          pattern every layer slides (Mistral v0.1: 4096)\n"

#endif
