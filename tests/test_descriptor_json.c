/* The descriptor as JSON and JSON overrides (src/model/descriptor_json.c): a descriptor
 * read from a real GGUF file survives to_json -> apply_json unchanged, every writable
 * field can be set through JSON, and each kind of bad config fails naming its key while
 * leaving the descriptor untouched. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "model/descriptor.h"
#include "testing.h"

/* Field by field (bitwise for floats), so struct padding does not matter. */
static bool same(const qr_descriptor *a, const qr_descriptor *b) {
    const qr_hparams *x = &a->hp, *y = &b->hp;
    bool hp = x->n_vocab == y->n_vocab && x->n_ctx == y->n_ctx && x->n_embd == y->n_embd &&
              x->n_layer == y->n_layer && x->n_head == y->n_head && x->n_head_kv == y->n_head_kv &&
              x->n_ff == y->n_ff && x->head_dim_k == y->head_dim_k && x->head_dim_v == y->head_dim_v &&
              x->n_rot == y->n_rot && memcmp(&x->rms_eps, &y->rms_eps, 4) == 0 &&
              memcmp(&x->rope_base, &y->rope_base, 4) == 0 && memcmp(&x->rope_base_swa, &y->rope_base_swa, 4) == 0 &&
              x->sliding_window == y->sliding_window && x->swa_pattern == y->swa_pattern &&
              x->tied_output == y->tied_output && x->qkv_bias == y->qkv_bias && x->rope_freqs == y->rope_freqs;
#define F(f) (memcmp(&a->f, &b->f, sizeof a->f) == 0)
    return hp && a->arch == b->arch && F(norm_eps) && a->act == b->act && a->qkv_bias == b->qkv_bias &&
           a->qk_norm == b->qk_norm && a->post_norms == b->post_norms && F(embd_scale) &&
           a->rope_type == b->rope_type && F(rope_base) && F(rope_freq_scale) && F(rope_base_swa) &&
           F(rope_freq_scale_swa) && a->rope_freqs == b->rope_freqs && a->n_swa == b->n_swa &&
           a->swa_pattern == b->swa_pattern && a->q_prescaled == b->q_prescaled && F(attn_scale) &&
           F(attn_softcap) && F(final_softcap) && a->tied_output == b->tied_output && a->output_bias == b->output_bias;
#undef F
}

static int read_desc(const char *path, qr_descriptor *d) {
    qr_gguf *g;
    qr_error e = {{0}};
    if (qr_gguf_open(path, &g, &e) != QR_OK) return fprintf(stderr, "%s\n", e.msg), QR_ERR;
    int rc = qr_descriptor_read(g, d, &e);
    if (rc != QR_OK) fprintf(stderr, "%s\n", e.msg);
    qr_gguf_close(g);
    return rc;
}

static void test_round_trip(const qr_descriptor *d) {
    qr_error e = {{0}};
    char *json = NULL;
    REQUIRE(qr_descriptor_to_json(d, &json, &e) == QR_OK);
    /* Valid JSON whose sizes are the file's. */
    cJSON *o = cJSON_Parse(json);
    REQUIRE(o != NULL);
    CHECK(cJSON_GetObjectItem(o, "n_embd")->valuedouble == d->hp.n_embd);
    CHECK(cJSON_GetObjectItem(o, "n_layer")->valuedouble == d->hp.n_layer);
    CHECK(strcmp(cJSON_GetObjectItem(o, "arch")->valuestring, d->arch->name) == 0);
    cJSON_Delete(o);
    qr_descriptor back = *d;
    CHECK_MSG(qr_descriptor_apply_json(&back, json, "rt.json", &e) == QR_OK, "%s", e.msg);
    CHECK(same(&back, d));
    free(json);
}

/* Every writable field set to an unusual value, written out and applied to the original:
 * the result is the modified descriptor, bit for bit. */
static void test_round_trip_modified(const qr_descriptor *orig) {
    qr_descriptor m = *orig;
    m.hp.n_ctx = 12345;
    m.norm_eps = 1.2345678e-7f;
    m.act = m.act == QR_ACT_SILU ? QR_ACT_GELU_TANH : QR_ACT_SILU;
    m.embd_scale = 3.14159274f;
    m.rope_type = m.rope_type == QR_ROPE_NORM ? QR_ROPE_NEOX : QR_ROPE_NORM;
    m.rope_base = 500000.0f;
    m.rope_freq_scale = 0.123456789f;
    m.rope_base_swa = 12345.678f;
    m.rope_freq_scale_swa = 0.7f;
    m.n_swa = 4096;
    m.swa_pattern = 6;
    m.q_prescaled = !m.q_prescaled;
    m.attn_scale = 0.0625f + 1e-7f;
    m.attn_softcap = 50.0f;
    m.final_softcap = 30.000002f;
    qr_error e = {{0}};
    char *json = NULL;
    REQUIRE(qr_descriptor_to_json(&m, &json, &e) == QR_OK);
    qr_descriptor back = *orig;
    CHECK_MSG(qr_descriptor_apply_json(&back, json, "mod.json", &e) == QR_OK, "%s", e.msg);
    CHECK(same(&back, &m));
    free(json);
}

/* json must fail, naming every string of `want`, and leave d unchanged. */
static void expect_error(const qr_descriptor *d, const char *json, const char *want1, const char *want2) {
    qr_descriptor t = *d;
    qr_error e = {{0}};
    int rc = qr_descriptor_apply_json(&t, json, "bad.json", &e);
    CHECK_MSG(rc == QR_ERR, "accepted %s", json);
    CHECK_MSG(strstr(e.msg, "bad.json") != NULL, "%s -> %s", json, e.msg);
    CHECK_MSG(strstr(e.msg, want1) != NULL, "%s -> %s (want '%s')", json, e.msg, want1);
    if (want2) CHECK_MSG(strstr(e.msg, want2) != NULL, "%s -> %s (want '%s')", json, e.msg, want2);
    CHECK_MSG(strchr(e.msg, '\n') == NULL, "multi-line message: %s", e.msg);
    CHECK_MSG(same(&t, d), "descriptor changed by failing %s", json);
}

static void test_errors(const qr_descriptor *d) {
    expect_error(d, "{\"n_window\": 16}", "'n_window'", "n_swa");           /* unknown: lists accepted keys */
    expect_error(d, "{\"n_swa\": -1}", "'n_swa'", NULL);                   /* negative window */
    expect_error(d, "{\"n_swa\": 1.5}", "'n_swa'", NULL);
    expect_error(d, "{\"n_swa\": \"16\"}", "'n_swa'", NULL);               /* wrong type */
    expect_error(d, "{\"swa_pattern\": 0}", "'swa_pattern'", NULL);
    expect_error(d, "{\"norm_eps\": 1e999}", "'norm_eps'", "finite");      /* non-finite float */
    expect_error(d, "{\"rope_base\": 1e39}", "'rope_base'", "finite");     /* beyond float range */
    expect_error(d, "{\"rope_base\": 0}", "'rope_base'", NULL);
    expect_error(d, "{\"attn_softcap\": -1}", "'attn_softcap'", NULL);
    expect_error(d, "{\"activation\": \"relu\"}", "'activation'", "gelu_tanh"); /* unknown enum */
    expect_error(d, "{\"rope_type\": 1}", "'rope_type'", "neox");
    expect_error(d, "{\"q_prescaled\": 1}", "'q_prescaled'", NULL);
    /* Sizes and tensor presence are read-only. */
    char buf[128];
    snprintf(buf, sizeof buf, "{\"n_embd\": %u}", d->hp.n_embd * 2);
    expect_error(d, buf, "'n_embd'", "cannot be overridden");
    snprintf(buf, sizeof buf, "{\"n_layer\": %u}", d->hp.n_layer + 1);
    expect_error(d, buf, "'n_layer'", "tensors");
    snprintf(buf, sizeof buf, "{\"tied_output\": %s}", d->tied_output ? "false" : "true");
    expect_error(d, buf, "'tied_output'", "cannot be overridden");
    snprintf(buf, sizeof buf, "{\"qkv_bias\": %s}", d->qkv_bias ? "false" : "true");
    expect_error(d, buf, "'qkv_bias'", "cannot be overridden");
    expect_error(d, "{\"arch\": \"no-such-arch\"}", "'arch'", "cannot be overridden");
    /* Atomic: a good key before a bad one changes nothing. */
    expect_error(d, "{\"rope_base\": 5, \"bogus\": 1}", "'bogus'", NULL);
    expect_error(d, "[1, 2]", "object", NULL);
    expect_error(d, "{\"n_swa\": 16", "JSON", NULL);
    expect_error(d, "{\"n_swa\": 16} trailing", "JSON", NULL);
    /* A read-only key with the file's own value is accepted. */
    qr_descriptor t = *d;
    qr_error e = {{0}};
    snprintf(buf, sizeof buf, "{\"n_embd\": %u, \"arch\": \"%s\"}", d->hp.n_embd, d->arch->name);
    CHECK_MSG(qr_descriptor_apply_json(&t, buf, "ok.json", &e) == QR_OK, "%s", e.msg);
    CHECK(same(&t, d));
    CHECK(qr_descriptor_apply_json_file(&t, "/nonexistent/cfg.json", &e) == QR_ERR);
    CHECK(strstr(e.msg, "/nonexistent/cfg.json") != NULL);
}

/* A window on a plain llama descriptor makes every layer slide (Mistral semantics). */
static void test_llama_window(const qr_descriptor *d) {
    REQUIRE(d->n_swa == 0);
    for (uint32_t il = 0; il < d->hp.n_layer; il++) CHECK(!qr_descriptor_layer_is_swa(d, il));
    qr_descriptor t = *d;
    qr_error e = {{0}};
    CHECK_MSG(qr_descriptor_apply_json(&t, "{\"n_swa\": 16}", "w.json", &e) == QR_OK, "%s", e.msg);
    CHECK(t.n_swa == 16 && t.swa_pattern == 1);
    for (uint32_t il = 0; il < t.hp.n_layer; il++) CHECK(qr_descriptor_layer_is_swa(&t, il));
    qr_descriptor s = *d;
    CHECK(qr_descriptor_set_swa(&s, 16, &e) == QR_OK);
    CHECK(same(&s, &t));
    CHECK(qr_descriptor_set_swa(&s, -5, &e) == QR_ERR);
    CHECK(qr_descriptor_set_swa(&s, 0, &e) == QR_OK && s.n_swa == 0 && !qr_descriptor_layer_is_swa(&s, 0));
    /* A hand-made descriptor without a pattern gets 1 too. */
    qr_descriptor h = *d;
    h.swa_pattern = 0;
    CHECK(qr_descriptor_apply_json(&h, "{\"n_swa\": 8}", "h.json", &e) == QR_OK && h.swa_pattern == 1);
}

/* Gemma 3: pattern 6 from the file; a window override keeps the pattern. */
static void test_gemma3(const char *path) {
    qr_descriptor d;
    if (read_desc(path, &d) != QR_OK) {
        CHECK(false);
        return;
    }
    test_round_trip(&d);
    test_round_trip_modified(&d);
    test_errors(&d);
    CHECK(d.swa_pattern == 6 && d.n_swa > 0);
    qr_descriptor t = d;
    qr_error e = {{0}};
    CHECK(qr_descriptor_apply_json(&t, "{\"n_swa\": 64}", "g.json", &e) == QR_OK);
    CHECK(t.n_swa == 64 && t.swa_pattern == 6 && !qr_descriptor_layer_is_swa(&t, 5) && qr_descriptor_layer_is_swa(&t, 4));
}

int main(void) {
    const char *llama = qr_test_shared_file_or_skip("models/stories260K.gguf");
    qr_descriptor d;
    REQUIRE(read_desc(llama, &d) == QR_OK);
    test_round_trip(&d);
    test_round_trip_modified(&d);
    test_errors(&d);
    test_llama_window(&d);
    const char *cache = getenv("QUARREL_CACHE");
    char gemma[1024];
    snprintf(gemma, sizeof gemma, "%s/models/gemma-3-270m-q4_k_m.gguf", cache ? cache : ".cache");
    FILE *f = fopen(gemma, "rb");
    if (f) {
        fclose(f);
        test_gemma3(gemma);
    } else {
        fprintf(stderr, "note: %s absent, gemma3 part not run\n", gemma);
    }
    return qr_test_finish("test_descriptor_json");
}
