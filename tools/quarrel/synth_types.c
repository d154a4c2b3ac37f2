/* Storage types for synthetic models. A block type name ("Q4_K") stores every 2-D weight
 * in that type, like `llama-quantize --pure`; a mix name ("Q4_K_M", or "mix:Q4_0" for a
 * llama-quantize mix whose name is also a block type) applies llama.cpp's per-tensor
 * rules from model/quant_policy.h. 1-D tensors (norms, biases, rope_freqs) are F32. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/quant_policy.h"
#include "quant/quant.h"
#include "synth.h"

typedef struct pure_type {
    qr_type type;
    uint32_t ftype;   /* llama.cpp's llama_ftype for an all-`type` file */
    qr_type fallback; /* llama.cpp tensor_type_fallback; QR_TYPE_COUNT: none */
} pure_type;

static const pure_type PURE[] = {
    {QR_TYPE_F32, QR_FTYPE_ALL_F32, QR_TYPE_COUNT},
    {QR_TYPE_F16, QR_FTYPE_MOSTLY_F16, QR_TYPE_COUNT},
    {QR_TYPE_BF16, QR_FTYPE_MOSTLY_BF16, QR_TYPE_COUNT},
    {QR_TYPE_Q8_0, QR_FTYPE_MOSTLY_Q8_0, QR_TYPE_COUNT},
    {QR_TYPE_Q4_0, QR_FTYPE_MOSTLY_Q4_0, QR_TYPE_COUNT},
    {QR_TYPE_Q4_1, QR_FTYPE_MOSTLY_Q4_1, QR_TYPE_COUNT},
    {QR_TYPE_Q5_0, QR_FTYPE_MOSTLY_Q5_0, QR_TYPE_COUNT},
    {QR_TYPE_Q5_1, QR_FTYPE_MOSTLY_Q5_1, QR_TYPE_COUNT},
    {QR_TYPE_Q2_K, QR_FTYPE_MOSTLY_Q2_K, QR_TYPE_Q4_0},
    {QR_TYPE_Q3_K, QR_FTYPE_MOSTLY_Q3_K_S, QR_TYPE_Q4_0},
    {QR_TYPE_Q4_K, QR_FTYPE_MOSTLY_Q4_K_S, QR_TYPE_Q5_0},
    {QR_TYPE_Q5_K, QR_FTYPE_MOSTLY_Q5_K_S, QR_TYPE_Q5_1},
    {QR_TYPE_Q6_K, QR_FTYPE_MOSTLY_Q6_K, QR_TYPE_Q8_0},
};
#define N_PURE (sizeof PURE / sizeof PURE[0])

static const pure_type *find_pure(const char *name) {
    int id = qr_type_from_name(name);
    for (size_t i = 0; id >= 0 && i < N_PURE; i++) {
        if ((int)PURE[i].type == id) return &PURE[i];
    }
    return NULL;
}

static int block_size(qr_type t) { return qr_type_get_traits((uint32_t)t)->block_size; }

/* llama.cpp's tensor_type_fallback for one tensor of a pure file. */
static int pure_tensor_type(const pure_type *p, const qr_tensor_inst *t, qr_type *out, int *n_fallback,
                            qr_error *err) {
    int64_t ncols = t->ne[0];
    if (ncols % block_size(p->type) == 0) {
        *out = p->type;
        return QR_OK;
    }
    if (p->fallback == QR_TYPE_COUNT) {
        return qr_fail(err, "tensor '%s': row length %lld is not a multiple of %d, the block size of %s "
                       "(llama.cpp has no fallback for %s either); choose dimensions divisible by %d",
                       t->name, (long long)ncols, block_size(p->type), qr_type_name(p->type),
                       qr_type_name(p->type), block_size(p->type));
    }
    *out = ncols % block_size(p->fallback) == 0 ? p->fallback : QR_TYPE_F16;
    (*n_fallback)++;
    return QR_OK;
}

static int choose_pure(const pure_type *p, const qr_tensor_inst *t, size_t n, synth_type_choice *out,
                       qr_error *err) {
    out->ftype = p->ftype;
    for (size_t i = 0; i < n; i++) {
        if (t[i].spec->kind != QR_TENSOR_MATRIX) {
            out->types[i] = QR_TYPE_F32;
        } else if (pure_tensor_type(p, &t[i], &out->types[i], &out->n_fallback, err) != QR_OK) {
            return QR_ERR;
        }
    }
    return QR_OK;
}

static int choose_mix(const qr_quant_mix *mix, const qr_arch *arch, const qr_hparams *hp,
                      const qr_tensor_inst *t, size_t n, synth_type_choice *out, qr_error *err) {
    qr_quant_model_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.arch, sizeof info.arch, "%s", arch->gguf_name);
    info.n_layer = hp->n_layer;
    info.n_head = hp->n_head;
    info.n_head_kv = hp->n_head_kv;
    /* llama.cpp's LLM_TYPE_70B: an 80-layer llama with grouped-query attention. */
    info.is_70b = strcmp(arch->gguf_name, "llama") == 0 && hp->n_layer == 80 && hp->n_head != hp->n_head_kv;
    qr_quant_tensor_desc *d = calloc(n ? n : 1, sizeof *d);
    if (!d) return qr_fail(err, "out of memory planning %zu tensors", n);
    for (size_t i = 0; i < n; i++) {
        d[i].name = t[i].name;
        d[i].type = QR_TYPE_F32; /* the values are generated in F32 */
        d[i].ne[0] = t[i].ne[0];
        d[i].ne[1] = t[i].ne[1];
        d[i].ne[2] = d[i].ne[3] = 1;
    }
    qr_quant_plan plan;
    int rc = qr_quant_plan_build(&info, mix, d, (int64_t)n, &plan, err);
    free(d);
    if (rc != QR_OK) return QR_ERR;
    for (size_t i = 0; i < n; i++) out->types[i] = QR_TYPE_F32;
    for (int64_t k = 0; k < plan.n; k++) out->types[plan.items[k].index] = plan.items[k].type;
    out->n_fallback = plan.n_fallback;
    out->ftype = (uint32_t)mix->ftype;
    qr_quant_plan_free(&plan);
    return QR_OK;
}

int synth_types_choose(const char *type_arg, const qr_arch *arch, const qr_hparams *hp,
                       const qr_tensor_inst *t, size_t n, synth_type_choice *out, qr_error *err) {
    memset(out, 0, sizeof *out);
    const bool forced_mix = strncasecmp(type_arg, "mix:", 4) == 0;
    const pure_type *p = forced_mix ? NULL : find_pure(type_arg);
    const qr_quant_mix *mix = p ? NULL : qr_quant_mix_find(forced_mix ? type_arg + 4 : type_arg);
    if (!p && !mix) {
        return qr_fail(err, "unknown --type '%s' (a block type: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 "
                       "Q2_K Q3_K Q4_K Q5_K Q6_K, or a llama-quantize mix such as Q4_K_M)", type_arg);
    }
    out->types = calloc(n ? n : 1, sizeof *out->types);
    if (!out->types) return qr_fail(err, "out of memory for %zu tensor types", n);
    int rc = p ? choose_pure(p, t, n, out, err) : choose_mix(mix, arch, hp, t, n, out, err);
    for (size_t i = 0; rc == QR_OK && i < n; i++) {
        if (!qr_can_quantize(out->types[i])) {
            rc = qr_fail(err, "tensor '%s' would need type %s, which quarrel cannot quantize",
                         t[i].name, qr_type_name(out->types[i]));
        }
    }
    if (rc != QR_OK) synth_types_free(out);
    return rc;
}

void synth_types_free(synth_type_choice *c) {
    free(c->types);
    c->types = NULL;
}
