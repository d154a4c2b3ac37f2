#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

/* Where each tensor of the architecture tables lands in qr_model. */
typedef struct slot {
    const char *suffix; /* after "blk.N." for layer tensors; full name for globals */
    size_t offset;      /* within qr_layer_weights or qr_model */
} slot;

#define LW(f) offsetof(qr_layer_weights, f)
static const slot LAYER_SLOTS[] = {
    {"attn_norm.weight", LW(attn_norm)}, {"attn_q.weight", LW(wq)}, {"attn_k.weight", LW(wk)},
    {"attn_v.weight", LW(wv)}, {"attn_output.weight", LW(wo)}, {"attn_q.bias", LW(bq)},
    {"attn_k.bias", LW(bk)}, {"attn_v.bias", LW(bv)}, {"attn_output.bias", LW(bo)},
    {"attn_q_norm.weight", LW(q_norm)}, {"attn_k_norm.weight", LW(k_norm)},
    {"post_attention_norm.weight", LW(post_attn_norm)}, {"ffn_norm.weight", LW(ffn_norm)},
    {"ffn_gate.weight", LW(ffn_gate)}, {"ffn_up.weight", LW(ffn_up)}, {"ffn_down.weight", LW(ffn_down)},
    {"ffn_gate.bias", LW(b_gate)}, {"ffn_up.bias", LW(b_up)}, {"ffn_down.bias", LW(b_down)},
    {"post_ffw_norm.weight", LW(post_ffw_norm)},
};
#define MW(f) offsetof(qr_model, f)
static const slot GLOBAL_SLOTS[] = {
    {"token_embd.weight", MW(tok_embd)}, {"output_norm.weight", MW(output_norm)},
    {"output.weight", MW(output)}, {"output.bias", MW(output_bias)}, {"rope_freqs.weight", MW(rope_freqs)},
};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static qr_weight *slot_of(qr_model *m, const qr_tensor_spec *spec, int32_t layer) {
    const char *name = spec->name;
    if (spec->per_layer) {
        name = strstr(name, "%u.");
        if (!name) return NULL;
        name += 3;
        for (size_t i = 0; i < N_OF(LAYER_SLOTS); i++) {
            if (strcmp(LAYER_SLOTS[i].suffix, name) == 0) {
                return (qr_weight *)((char *)&m->layers[layer] + LAYER_SLOTS[i].offset);
            }
        }
        return NULL;
    }
    for (size_t i = 0; i < N_OF(GLOBAL_SLOTS); i++) {
        if (strcmp(GLOBAL_SLOTS[i].suffix, name) == 0) return (qr_weight *)((char *)m + GLOBAL_SLOTS[i].offset);
    }
    return NULL;
}

static int check_type(const qr_gguf *g, const qr_tensor_inst *ti, const qr_gguf_tensor *t, qr_error *err) {
    if (ti->spec->kind == QR_TENSOR_MATRIX) {
        const qr_type_traits *tr = qr_type_get_traits(t->type);
        bool ok = tr && t->type != QR_TYPE_Q8_1 && t->type != QR_TYPE_Q8_K;
        if (!ok || t->ne[0] % tr->block_size != 0) {
            return qr_fail(err, "%s: tensor '%s' has type %s, which quarrel cannot multiply", qr_gguf_path(g),
                           ti->name, qr_type_name(t->type));
        }
        return QR_OK;
    }
    if (t->type != QR_TYPE_F32) {
        return qr_fail(err, "%s: tensor '%s' has type %s, expected F32", qr_gguf_path(g), ti->name,
                       qr_type_name(t->type));
    }
    return QR_OK;
}

static int bind_one(qr_model *m, const qr_tensor_inst *ti, bool optional, qr_error *err) {
    const qr_gguf_tensor *t = qr_gguf_find_tensor(m->gguf, ti->name);
    if (!t) {
        if (optional) return QR_OK;
        return qr_fail(err, "%s: tensor '%s' is missing (architecture %s)", qr_gguf_path(m->gguf), ti->name,
                       m->desc.arch->name);
    }
    uint32_t nd = t->n_dims;
    while (nd > 1 && t->ne[nd - 1] == 1) nd--;
    uint32_t want = ti->n_dims;
    while (want > 1 && ti->ne[want - 1] == 1) want--;
    if (nd != want || t->ne[0] != ti->ne[0] || (ti->n_dims > 1 && t->ne[1] != ti->ne[1])) {
        return qr_fail(err, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", qr_gguf_path(m->gguf),
                       ti->name, (long long)t->ne[0], (long long)t->ne[1], (long long)ti->ne[0],
                       (long long)ti->ne[1]);
    }
    if (check_type(m->gguf, ti, t, err) != QR_OK) return QR_ERR;
    qr_weight *w = slot_of(m, ti->spec, ti->layer);
    if (!w) return qr_fail(err, "internal: no slot for tensor '%s'", ti->name);
    *w = (qr_weight){t->type, t->ne[0], t->ne[1], t->data};
    return QR_OK;
}

/* Required tensors come from qr_arch_tensors; optional ones (output.bias, llama's
 * attn_output/FFN biases) are bound when the file has them. */
static int bind_optional(qr_model *m, qr_error *err) {
    const qr_arch *a = m->desc.arch;
    const qr_hparams *hp = &m->desc.hp;
    for (size_t i = 0; i < a->n_tensors; i++) {
        const qr_tensor_spec *t = &a->tensors[i];
        if (t->presence != QR_PRESENT_OPTIONAL) continue;
        uint32_t n_layers = t->per_layer ? hp->n_layer : 1;
        for (uint32_t l = 0; l < n_layers; l++) {
            qr_tensor_inst ti = {.spec = t, .layer = t->per_layer ? (int32_t)l : -1, .n_dims = t->n_dims};
            if (t->per_layer) {
                snprintf(ti.name, sizeof ti.name, t->name, (unsigned)l);
            } else {
                snprintf(ti.name, sizeof ti.name, "%s", t->name);
            }
            ti.ne[0] = qr_hparams_dim(hp, t->ne[0]);
            ti.ne[1] = t->n_dims > 1 ? qr_hparams_dim(hp, t->ne[1]) : 1;
            if (bind_one(m, &ti, true, err) != QR_OK) return QR_ERR;
        }
    }
    return QR_OK;
}

static int bind_weights(qr_model *m, qr_error *err) {
    qr_tensor_inst *list = NULL;
    size_t n = 0;
    if (qr_arch_tensors(m->desc.arch, &m->desc.hp, &list, &n, err) != QR_OK) return QR_ERR;
    int rc = QR_OK;
    for (size_t i = 0; i < n && rc == QR_OK; i++) rc = bind_one(m, &list[i], false, err);
    free(list);
    if (rc != QR_OK) return QR_ERR;
    if (bind_optional(m, err) != QR_OK) return QR_ERR;
    if (m->desc.tied_output) m->output = m->tok_embd;
    if (m->desc.hp.head_dim_k > 1024 || m->desc.hp.n_rot > 1024) {
        return qr_fail(err, "%s: head dimension %u is larger than quarrel supports (1024)",
                       qr_gguf_path(m->gguf), m->desc.hp.head_dim_k);
    }
    return QR_OK;
}

int qr_model_open(const char *path, qr_model **out, qr_error *err) {
    *out = NULL;
    qr_model *m = calloc(1, sizeof *m);
    if (!m) return qr_fail(err, "out of memory loading %s", path);
    if (qr_gguf_open(path, &m->gguf, err) != QR_OK) goto fail;
    if (qr_descriptor_read(m->gguf, &m->desc, err) != QR_OK) goto fail;
    m->layers = calloc(m->desc.hp.n_layer, sizeof *m->layers);
    if (!m->layers) {
        qr_fail(err, "out of memory loading %s", path);
        goto fail;
    }
    if (bind_weights(m, err) != QR_OK) goto fail;
    if (qr_tokenizer_load(m->gguf, &m->tok, err) != QR_OK) {
        qr_fail_prefix(err, "%s: ", path);
        goto fail;
    }
    if ((uint32_t)qr_tokenizer_n_vocab(m->tok) > m->desc.hp.n_vocab) {
        qr_fail(err, "%s: the tokenizer has %d tokens but the model only %u", path, qr_tokenizer_n_vocab(m->tok),
                m->desc.hp.n_vocab);
        goto fail;
    }
    QR_LOG_INFO("model", "loaded %s: arch %s, %u layers, n_embd %u, n_head %u/%u, vocab %u", path,
                m->desc.arch->name, m->desc.hp.n_layer, m->desc.hp.n_embd, m->desc.hp.n_head,
                m->desc.hp.n_head_kv, m->desc.hp.n_vocab);
    *out = m;
    return QR_OK;
fail:
    qr_model_close(m);
    return QR_ERR;
}

void qr_model_close(qr_model *m) {
    if (!m) return;
    qr_tokenizer_free(m->tok);
    free(m->layers);
    qr_gguf_close(m->gguf);
    free(m);
}
