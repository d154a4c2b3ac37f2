/* Named shapes for `quarrel synth`, one row per (architecture, shape). The sizes of the
 * real checkpoints come from their Hugging Face config.json files, as llama.cpp's
 * converters turn them into GGUF metadata. */
#include <string.h>

#include "synth.h"

typedef struct shape_row {
    qr_arch_id arch;
    const char *shape;
    qr_hparams hp;
} shape_row;

/* Field order of qr_hparams:
 * n_vocab, n_ctx, n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim_k, head_dim_v, n_rot,
 * rms_eps, rope_base, rope_base_swa, sliding_window, swa_pattern, tied, qkv_bias, rope_freqs */
static const shape_row SHAPES[] = {
    /* tiny: for tests; the vocabulary file's own size. */
    {QR_ARCH_LLAMA, "tiny", {0, 2048, 256, 2, 8, 4, 768, 32, 32, 32, 1e-5f, 10000.0f, 0, 0, 0, false, false, false}},
    {QR_ARCH_MISTRAL, "tiny", {0, 2048, 256, 2, 8, 4, 768, 32, 32, 32, 1e-5f, 10000.0f, 0, 4096, 0, false, false, false}},
    {QR_ARCH_QWEN2, "tiny", {0, 2048, 256, 2, 8, 4, 768, 32, 32, 32, 1e-6f, 1000000.0f, 0, 0, 0, false, true, false}},
    /* gemma3 states its head size: 8 x 64 = 512 != 256, as in real Gemma 3 (270M: 4 x 256
     * on a 640 model), so attn_q/attn_output are not square. */
    {QR_ARCH_GEMMA3, "tiny", {0, 2048, 256, 2, 8, 4, 768, 64, 64, 64, 1e-6f, 1000000.0f, 10000.0f, 128, 0, true, false, false}},

    /* 1b: Llama-3.2-1B-like sizes with an untied output; gemma3: Gemma 3 1B. */
    {QR_ARCH_LLAMA, "1b", {0, 4096, 2048, 16, 32, 8, 8192, 64, 64, 64, 1e-5f, 500000.0f, 0, 0, 0, false, false, false}},
    {QR_ARCH_MISTRAL, "1b", {0, 4096, 2048, 16, 32, 8, 8192, 64, 64, 64, 1e-5f, 10000.0f, 0, 4096, 0, false, false, false}},
    {QR_ARCH_QWEN2, "1b", {0, 4096, 2048, 16, 32, 8, 8192, 64, 64, 64, 1e-6f, 1000000.0f, 0, 0, 0, false, true, false}},
    {QR_ARCH_GEMMA3, "1b", {0, 32768, 1152, 26, 4, 1, 6912, 256, 256, 256, 1e-6f, 1000000.0f, 10000.0f, 512, 0, true, false, false}},

    /* 8b: llama = Llama-3.1-8B (with its rope_freqs tensor), mistral = Mistral-7B-v0.1,
     * qwen2 = Qwen2.5-7B; gemma3 has no 8B checkpoint: Llama-3.1-8B's sizes with
     * Gemma 3's vocabulary size, window and tied output. */
    {QR_ARCH_LLAMA, "8b", {128256, 131072, 4096, 32, 32, 8, 14336, 128, 128, 128, 1e-5f, 500000.0f, 0, 0, 0, false, false, true}},
    {QR_ARCH_MISTRAL, "8b", {32000, 32768, 4096, 32, 32, 8, 14336, 128, 128, 128, 1e-5f, 10000.0f, 0, 4096, 0, false, false, false}},
    {QR_ARCH_QWEN2, "8b", {152064, 32768, 3584, 28, 28, 4, 18944, 128, 128, 128, 1e-6f, 1000000.0f, 0, 0, 0, false, true, false}},
    {QR_ARCH_GEMMA3, "8b", {262144, 131072, 4096, 32, 32, 8, 14336, 128, 128, 128, 1e-6f, 1000000.0f, 10000.0f, 1024, 0, true, false, false}},
};

const char *synth_shape_names(void) { return "tiny|1b|8b"; }

int synth_shape_get(const qr_arch *arch, const char *shape, qr_hparams *hp, qr_error *err) {
    bool known = false;
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        if (strcmp(SHAPES[i].shape, shape) != 0) continue;
        known = true;
        if (SHAPES[i].arch == arch->id) {
            *hp = SHAPES[i].hp;
            return QR_OK;
        }
    }
    if (known) return qr_fail(err, "--shape %s is not defined for --arch %s", shape, arch->name);
    return qr_fail(err, "unknown --shape '%s' (expected %s)", shape, synth_shape_names());
}
