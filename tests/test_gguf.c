/* GGUF reader and writer.
 *  1. Round trip: every value type (nested arrays included) and streamed tensor data
 *     written by qr_gguf_writer and read back by qr_gguf_open; copy_kv round trip.
 *  2. Corruptions: a small valid file is encoded here by hand (independently of our
 *     writer), then each field is broken in turn; every case must fail with a message
 *     naming the file, the right field and a byte offset.
 *  3. Every byte prefix of a valid file fails cleanly (the buffer is sized exactly, so
 *     ASan catches any read past it).
 *  The gguf Python package checks both directions against an independent reader and
 *  writer in tests/gguf_test.py. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "testing.h"

/* ---- A tiny independent GGUF encoder --------------------------------------------- */

typedef struct {
    uint8_t b[8192];
    size_t n;
} buf;

static void put(buf *o, const void *p, size_t n) {
    REQUIRE(o->n + n <= sizeof o->b);
    memcpy(o->b + o->n, p, n);
    o->n += n;
}
static void put_u8(buf *o, uint8_t v) { put(o, &v, 1); }
static void put_u32(buf *o, uint32_t v) {
    for (int i = 0; i < 4; i++) put_u8(o, (uint8_t)(v >> (8 * i)));
}
static void put_u64(buf *o, uint64_t v) {
    for (int i = 0; i < 8; i++) put_u8(o, (uint8_t)(v >> (8 * i)));
}
static void put_str(buf *o, const char *s) {
    put_u64(o, strlen(s));
    put(o, s, strlen(s));
}
static void pad_to(buf *o, size_t a) {
    while (o->n % a) put_u8(o, 0);
}

/* Knobs of the hand-built file; a zeroed struct plus defaults() gives a valid file. */
typedef struct {
    char magic[5];
    uint32_t version;
    uint64_t n_tensors_override, n_kv_override; /* 0 = the real count */
    uint64_t key_len_override;                  /* of kv[1] */
    uint64_t str_len_override;                  /* of kv[1]'s value */
    uint64_t arr_count_override;                /* of kv[2] */
    uint32_t value_type;                        /* of kv[1] (STRING) */
    uint32_t arr_elem_type;                     /* of kv[2] (INT32) */
    int nest_depth;                             /* of kv[3]: arrays of arrays */
    bool dup_key;
    uint32_t align_type;                        /* type of general.alignment */
    uint64_t alignment;
    uint32_t n_dims1;                           /* tensor[1] */
    int64_t ne1[5];
    uint32_t type1;
    uint64_t offset1_override;                  /* UINT64_MAX = computed */
    bool dup_tensor;
    size_t cut;                                 /* bytes removed from the end */
    size_t keep;                                /* if nonzero: keep only this many bytes */
} spec;

static spec defaults(void) {
    spec s;
    memset(&s, 0, sizeof s);
    memcpy(s.magic, "GGUF", 5);
    s.version = 3;
    s.value_type = QR_GGUF_STRING;
    s.arr_elem_type = QR_GGUF_INT32;
    s.nest_depth = 3;
    s.align_type = QR_GGUF_UINT32;
    s.alignment = 64;
    s.n_dims1 = 2;
    s.ne1[0] = 64;
    s.ne1[1] = 3;
    s.ne1[2] = s.ne1[3] = s.ne1[4] = 1;
    s.type1 = 2; /* Q4_0: 2 blocks per row, 18 bytes each */
    s.offset1_override = UINT64_MAX;
    return s;
}

static void put_nested(buf *o, int depth) {
    /* An array of `depth` levels, innermost holding two int32. */
    if (depth == 1) {
        put_u32(o, QR_GGUF_INT32);
        put_u64(o, 2);
        put_u32(o, 7);
        put_u32(o, (uint32_t)-7);
        return;
    }
    put_u32(o, QR_GGUF_ARRAY);
    put_u64(o, 1);
    put_nested(o, depth - 1);
}

static void build(const spec *s, buf *o) {
    o->n = 0;
    uint64_t n_kv = s->dup_key ? 6 : 5;
    uint64_t n_tensors = 2;
    put(o, s->magic, 4);
    put_u32(o, s->version);
    put_u64(o, s->n_tensors_override ? s->n_tensors_override : n_tensors);
    put_u64(o, s->n_kv_override ? s->n_kv_override : n_kv);
    /* kv[0] general.architecture */
    put_str(o, "general.architecture");
    put_u32(o, QR_GGUF_STRING);
    put_str(o, "llama");
    /* kv[1] a string */
    if (s->key_len_override) put_u64(o, s->key_len_override), put(o, "test.name", 9);
    else put_str(o, "test.name");
    put_u32(o, s->value_type);
    if (s->str_len_override) put_u64(o, s->str_len_override), put(o, "hello", 5);
    else put_str(o, "hello");
    /* kv[2] an int32 array */
    put_str(o, "test.ints");
    put_u32(o, QR_GGUF_ARRAY);
    put_u32(o, s->arr_elem_type);
    put_u64(o, s->arr_count_override ? s->arr_count_override : 3);
    for (int i = 0; i < 3; i++) put_u32(o, (uint32_t)(i * 100));
    /* kv[3] nested arrays */
    put_str(o, "test.nested");
    put_u32(o, QR_GGUF_ARRAY);
    put_nested(o, s->nest_depth);
    /* kv[4] alignment */
    put_str(o, "general.alignment");
    put_u32(o, s->align_type);
    if (s->align_type == QR_GGUF_UINT64) put_u64(o, s->alignment);
    else put_u32(o, (uint32_t)s->alignment);
    if (s->dup_key) {
        put_str(o, "test.name");
        put_u32(o, QR_GGUF_UINT8);
        put_u8(o, 1);
    }
    /* tensor[0]: F32 {8}, 32 bytes at offset 0 */
    put_str(o, "a.weight");
    put_u32(o, 1);
    put_u64(o, 8);
    put_u32(o, 0);
    put_u64(o, 0);
    /* tensor[1]: Q4_0 {64, 3}, 108 bytes at offset 64 */
    put_str(o, s->dup_tensor ? "a.weight" : "b.weight");
    put_u32(o, s->n_dims1);
    for (uint32_t j = 0; j < s->n_dims1 && j < 5; j++) put_u64(o, (uint64_t)s->ne1[j]);
    put_u32(o, s->type1);
    put_u64(o, s->offset1_override != UINT64_MAX ? s->offset1_override : 64);
    pad_to(o, 64);
    for (int i = 0; i < 64 + 108; i++) put_u8(o, (uint8_t)i);
    pad_to(o, 64);
    o->n -= s->cut;
    if (s->keep) o->n = s->keep;
}

static int open_buf(const buf *o, qr_gguf **g, qr_error *err) {
    /* An exactly sized heap copy, so that ASan sees any read past the end. */
    uint8_t *copy = malloc(o->n ? o->n : 1);
    REQUIRE(copy);
    memcpy(copy, o->b, o->n);
    int r = qr_gguf_open_memory(o->n ? copy : NULL, o->n, "t.gguf", g, err);
    if (r == QR_OK) {
        qr_gguf_close(*g);
        *g = NULL;
    }
    free(copy);
    return r;
}

/* ---- 2. corruptions ---------------------------------------------------------------- */

typedef struct {
    const char *what;
    void (*apply)(spec *s);
    const char *expect[3]; /* substrings of the message */
} corruption;

#define C(name, body) static void name(spec *s) { body; }
C(c_magic, memcpy(s->magic, "GGML", 5))
C(c_v1, s->version = 1)
C(c_v4, s->version = 4)
C(c_bigendian, s->version = 0x03000000u)
C(c_truncated_kv, s->keep = 94)
C(c_truncated_version, s->keep = 6)
C(c_nkv, s->n_kv_override = 1ull << 60)
C(c_ntensors, s->n_tensors_override = 1ull << 59)
C(c_keylen, s->key_len_override = 1ull << 62)
C(c_strlen, s->str_len_override = 100000)
C(c_arrcount, s->arr_count_override = 1ull << 61)
C(c_vtype, s->value_type = 13)
C(c_elemtype, s->arr_elem_type = 99)
C(c_depth, s->nest_depth = QR_GGUF_MAX_ARRAY_DEPTH + 1)
C(c_dupkey, s->dup_key = true)
C(c_align0, s->alignment = 0)
C(c_align48, s->alignment = 48)
C(c_aligntype, s->align_type = QR_GGUF_UINT64)
C(c_ndims, s->n_dims1 = 5)
C(c_ne_zero, s->ne1[1] = 0)
C(c_ne_neg, s->ne1[0] = -64)
C(c_overflow, s->ne1[0] = 1ll << 40; s->ne1[1] = 1ll << 30; s->n_dims1 = 2)
C(c_overflow4, s->n_dims1 = 4; s->ne1[0] = 1ll << 20; s->ne1[1] = 1ll << 20; s->ne1[2] = 1ll << 20; s->ne1[3] = 1ll << 10)
C(c_type, s->type1 = 99)
C(c_type_gap, s->type1 = 4) /* Q4_2, removed from ggml */
C(c_block, s->ne1[0] = 33)
C(c_duptensor, s->dup_tensor = true)
C(c_misaligned, s->offset1_override = 65)
C(c_outside, s->offset1_override = 128)
C(c_huge_offset, s->offset1_override = UINT64_MAX - 63)
C(c_cut_data, s->cut = 100)
#undef C

static const corruption CORRUPTIONS[] = {
    {"truncated in kv[1]", c_truncated_kv, {"kv[1] 'test.name' value (string length)", "at offset 90", "truncated file: needs 8 bytes, 4 left"}},
    {"truncated in the version", c_truncated_version, {"version", "at offset 4", "truncated"}},
    {"bad magic", c_magic, {"magic", "at offset 0", "not a GGUF file"}},
    {"version 1", c_v1, {"version", "at offset 4", "unsupported GGUF version 1"}},
    {"version 4", c_v4, {"version", "at offset 4", "unsupported GGUF version 4"}},
    {"big-endian", c_bigendian, {"version", "big-endian", NULL}},
    {"absurd n_kv", c_nkv, {"n_kv", "at offset 16", "cannot fit"}},
    {"absurd n_tensors", c_ntensors, {"n_tensors", "at offset 8", "cannot fit"}},
    {"absurd key length", c_keylen, {"kv[1]", "key length", "exceeds"}},
    {"absurd string length", c_strlen, {"kv[1] 'test.name'", "string length", "exceeds"}},
    {"absurd array count", c_arrcount, {"kv[2] 'test.ints'", "array count", "cannot fit"}},
    {"unknown value type", c_vtype, {"kv[1] 'test.name'", "value type", "unknown value type 13"}},
    {"unknown element type", c_elemtype, {"kv[2] 'test.ints'", "array element type", "unknown value type 99"}},
    {"arrays nested too deep", c_depth, {"kv[3] 'test.nested'", "nested deeper", "at offset"}},
    {"duplicate key", c_dupkey, {"kv[5] 'test.name'", "duplicate key", "kv[1]"}},
    {"alignment 0", c_align0, {"'general.alignment'", "value 0", "power of two"}},
    {"alignment 48", c_align48, {"'general.alignment'", "value 48", "power of two"}},
    {"alignment uint64", c_aligntype, {"'general.alignment'", "type uint64", "expected uint32"}},
    {"n_dims 5", c_ndims, {"tensor[1] 'b.weight'", "n_dims", "5 dimensions"}},
    {"zero dimension", c_ne_zero, {"tensor[1] 'b.weight'", "ne[1]", "not positive"}},
    {"negative dimension", c_ne_neg, {"tensor[1] 'b.weight'", "ne[0]", "not positive"}},
    {"element count overflow", c_overflow, {"tensor[1] 'b.weight'", "ne[1]", "overflows int64"}},
    {"element count overflow in ne[3]", c_overflow4, {"tensor[1] 'b.weight'", "ne[3]", "overflows int64"}},
    {"unknown tensor type", c_type, {"tensor[1] 'b.weight'", "type", "unknown tensor type id 99"}},
    {"removed tensor type", c_type_gap, {"tensor[1] 'b.weight'", "type", "unknown tensor type id 4"}},
    {"ne[0] not a block multiple", c_block, {"tensor[1] 'b.weight'", "ne[0]", "block size 32"}},
    {"duplicate tensor name", c_duptensor, {"tensor[1] 'a.weight'", "duplicate tensor name", "tensor[0]"}},
    {"misaligned data offset", c_misaligned, {"tensor[1] 'b.weight'", "data offset", "multiple of the alignment 64"}},
    {"data outside the file", c_outside, {"tensor[1] 'b.weight'", "data offset", "outside the file"}},
    {"data offset overflows", c_huge_offset, {"tensor[1] 'b.weight'", "data offset", "outside the file"}},
    {"tensor data cut short", c_cut_data, {"tensor[1] 'b.weight'", "data offset", "outside the file"}},
};

static void test_corruptions(void) {
    buf *o = malloc(sizeof *o);
    REQUIRE(o);
    spec s = defaults();
    build(&s, o);
    qr_gguf *g;
    qr_error err = {{0}};
    CHECK_MSG(open_buf(o, &g, &err) == QR_OK, "the valid file fails: %s", err.msg);
    s.version = 2; /* v2 has the same layout as v3 (v3 only added big-endian files) */
    build(&s, o);
    CHECK_MSG(open_buf(o, &g, &err) == QR_OK, "the valid v2 file fails: %s", err.msg);
    for (size_t i = 0; i < sizeof CORRUPTIONS / sizeof CORRUPTIONS[0]; i++) {
        const corruption *c = &CORRUPTIONS[i];
        s = defaults();
        c->apply(&s);
        build(&s, o);
        err.msg[0] = '\0';
        int r = open_buf(o, &g, &err);
        CHECK_MSG(r == QR_ERR, "%s: accepted", c->what);
        CHECK_MSG(strncmp(err.msg, "t.gguf: ", 8) == 0, "%s: message does not name the file: %s", c->what, err.msg);
        CHECK_MSG(strstr(err.msg, "offset") != NULL, "%s: message has no offset: %s", c->what, err.msg);
        CHECK_MSG(strchr(err.msg, '\n') == NULL, "%s: message is not one line: %s", c->what, err.msg);
        for (int k = 0; k < 3 && c->expect[k]; k++) {
            CHECK_MSG(strstr(err.msg, c->expect[k]) != NULL, "%s: expected '%s' in: %s", c->what,
                      c->expect[k], err.msg);
        }
        if (getenv("QUARREL_TEST_VERBOSE")) printf("%-32s %s\n", c->what, err.msg);
    }
    free(o);
}

/* ---- 3. every prefix ------------------------------------------------------------- */

static void test_prefixes(void) {
    buf *o = malloc(sizeof *o);
    REQUIRE(o);
    spec s = defaults();
    build(&s, o);
    size_t full = o->n;
    /* The data section is 64 + 108 bytes padded to 192: the last 20 are padding. */
    size_t data_end = full - 20;
    for (size_t n = 0; n <= full; n++) {
        s = defaults();
        s.cut = full - n;
        build(&s, o);
        qr_gguf *g;
        qr_error err = {{0}};
        int r = open_buf(o, &g, &err);
        if (n < data_end) {
            CHECK_MSG(r == QR_ERR, "prefix of %zu bytes accepted", n);
            CHECK_MSG(strstr(err.msg, "offset") != NULL, "prefix %zu: %s", n, err.msg);
        } else {
            CHECK_MSG(r == QR_OK, "prefix of %zu bytes (data ends at %zu) rejected: %s", n, data_end, err.msg);
        }
    }
    free(o);
}

/* ---- 1. round trip ----------------------------------------------------------------- */

static char tmp_path[256];

static void write_all_types(const char *path) {
    qr_gguf_writer *w;
    qr_error err;
    REQUIRE(qr_gguf_writer_create(path, &w, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_str(w, "general.architecture", "llama", &err) == QR_OK);
    REQUIRE(qr_gguf_writer_set_alignment(w, 64, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_u8(w, "t.u8", 250, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_i8(w, "t.i8", -120, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_u16(w, "t.u16", 65000, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_i16(w, "t.i16", -32000, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_u32(w, "t.u32", 4000000000u, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_i32(w, "t.i32", -2000000000, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_u64(w, "t.u64", UINT64_MAX - 5, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_i64(w, "t.i64", INT64_MIN + 5, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_f32(w, "t.f32", 0.1f, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_f64(w, "t.f64", -1e300, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_bool(w, "t.bool", true, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_str(w, "t.str", "h\xc3\xa9llo \"w\"\n", &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_str(w, "t.empty", "", &err) == QR_OK);
    const int32_t ints[4] = {1, -2, 3, INT32_MIN};
    REQUIRE(qr_gguf_writer_add_arr(w, "t.arr_i32", QR_GGUF_INT32, ints, 4, &err) == QR_OK);
    const float fl[3] = {1.5f, -0.25f, 1e-30f};
    REQUIRE(qr_gguf_writer_add_arr(w, "t.arr_f32", QR_GGUF_FLOAT32, fl, 3, &err) == QR_OK);
    const uint8_t bools[3] = {1, 0, 1};
    REQUIRE(qr_gguf_writer_add_arr(w, "t.arr_bool", QR_GGUF_BOOL, bools, 3, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_arr(w, "t.arr_empty", QR_GGUF_UINT64, NULL, 0, &err) == QR_OK);
    const char *strs[3] = {"a", "", "<0x0A>"};
    REQUIRE(qr_gguf_writer_add_str_arr(w, "t.arr_str", strs, 3, &err) == QR_OK);
    /* Nested: [[7, -7]] three levels deep, then [["x", "yz"], []] of strings. */
    buf *nb = calloc(1, sizeof *nb);
    REQUIRE(nb);
    put_nested(nb, 3);
    qr_gguf_value nested = {.type = QR_GGUF_ARRAY};
    nested.v.arr.elem_type = QR_GGUF_ARRAY;
    nested.v.arr.count = 1;
    nested.v.arr.data = nb->b + 12; /* skip the outer array's own type and count */
    nested.v.arr.data_bytes = nb->n - 12;
    REQUIRE(qr_gguf_writer_add_value(w, "t.nested_i32", &nested, &err) == QR_OK);
    nb->n = 0;
    put_u32(nb, QR_GGUF_STRING), put_u64(nb, 2), put_str(nb, "x"), put_str(nb, "yz");
    put_u32(nb, QR_GGUF_STRING), put_u64(nb, 0);
    nested.v.arr.count = 2;
    nested.v.arr.data = nb->b;
    nested.v.arr.data_bytes = nb->n;
    REQUIRE(qr_gguf_writer_add_value(w, "t.nested_str", &nested, &err) == QR_OK);
    free(nb);

    /* Writer misuse is refused. */
    CHECK(qr_gguf_writer_add_u8(w, "t.u8", 1, &err) == QR_ERR && strstr(err.msg, "duplicate"));
    CHECK(qr_gguf_writer_add_arr(w, "t.bad", QR_GGUF_STRING, strs, 1, &err) == QR_ERR);
    const int64_t ne_bad[2] = {33, 2};
    CHECK(qr_gguf_writer_add_tensor(w, "bad", QR_TYPE_Q4_0, 2, ne_bad, &err) == QR_ERR &&
          strstr(err.msg, "block size"));

    const int64_t ne_a[2] = {5, 3}, ne_b[1] = {64}, ne_c[3] = {2, 1, 3};
    REQUIRE(qr_gguf_writer_add_tensor(w, "a.weight", QR_TYPE_F32, 2, ne_a, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_tensor(w, "b.weight", QR_TYPE_Q4_0, 1, ne_b, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_tensor(w, "c.weight", QR_TYPE_F16, 3, ne_c, &err) == QR_OK);
    CHECK(qr_gguf_writer_add_tensor(w, "a.weight", QR_TYPE_F32, 2, ne_a, &err) == QR_ERR &&
          strstr(err.msg, "duplicate"));
    /* 60 + 36 + 12 bytes, streamed in uneven chunks that straddle tensor boundaries. */
    uint8_t data[108];
    for (int i = 0; i < 108; i++) data[i] = (uint8_t)(i * 7 + 1);
    REQUIRE(qr_gguf_writer_write_data(w, data, 7, &err) == QR_OK);
    CHECK(qr_gguf_writer_add_u8(w, "t.late", 1, &err) == QR_ERR);
    REQUIRE(qr_gguf_writer_write_data(w, data + 7, 70, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_write_data(w, data + 77, 31, &err) == QR_OK);
    CHECK(qr_gguf_writer_write_data(w, data, 1, &err) == QR_ERR);
    REQUIRE(qr_gguf_writer_finish(w, &err) == QR_OK);
}

static void check_scalars(const qr_gguf *g) {
    qr_error err;
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f;
    bool b;
    char *s;
    CHECK(qr_gguf_get_u32(g, "t.u32", &u32, &err) == QR_OK && u32 == 4000000000u);
    CHECK(qr_gguf_get_u32(g, "t.u8", &u32, &err) == QR_OK && u32 == 250);    /* widened */
    CHECK(qr_gguf_get_i32(g, "t.i8", &i32, &err) == QR_OK && i32 == -120);
    CHECK(qr_gguf_get_i32(g, "t.i16", &i32, &err) == QR_OK && i32 == -32000);
    CHECK(qr_gguf_get_u32(g, "t.u16", &u32, &err) == QR_OK && u32 == 65000);
    CHECK(qr_gguf_get_i32(g, "t.i32", &i32, &err) == QR_OK && i32 == -2000000000);
    CHECK(qr_gguf_get_u64(g, "t.u64", &u64, &err) == QR_OK && u64 == UINT64_MAX - 5);
    CHECK(qr_gguf_find_kv(g, "t.i64")->value.v.i64 == INT64_MIN + 5);
    CHECK(qr_gguf_get_f32(g, "t.f32", &f, &err) == QR_OK && f == 0.1f);
    CHECK(qr_gguf_find_kv(g, "t.f64")->value.v.f64 == -1e300);
    CHECK(qr_gguf_get_bool(g, "t.bool", &b, &err) == QR_OK && b);
    CHECK(qr_gguf_get_str(g, "t.str", &s, &err) == QR_OK && strcmp(s, "h\xc3\xa9llo \"w\"\n") == 0);
    free(s);
    CHECK(qr_gguf_get_str(g, "t.empty", &s, &err) == QR_OK && s[0] == '\0');
    free(s);
    CHECK(qr_gguf_get_u32(g, "general.alignment", &u32, &err) == QR_OK && u32 == 64);
    /* Errors name the file and key. */
    CHECK(qr_gguf_get_u32(g, "llama.block_count", &u32, &err) == QR_ERR &&
          strstr(err.msg, "key 'llama.block_count' is missing") && strstr(err.msg, tmp_path));
    CHECK(qr_gguf_get_u32(g, "t.str", &u32, &err) == QR_ERR && strstr(err.msg, "has type string, expected uint32"));
    CHECK(qr_gguf_get_u32(g, "t.i8", &u32, &err) == QR_ERR && strstr(err.msg, "does not fit uint32"));
    CHECK(qr_gguf_get_i32(g, "t.u32", &i32, &err) == QR_ERR && strstr(err.msg, "does not fit int32"));
    CHECK(qr_gguf_get_u32(g, "t.u64", &u32, &err) == QR_ERR);
    CHECK(qr_gguf_get_bool(g, "t.u8", &b, &err) == QR_ERR);
    CHECK(qr_gguf_get_f32(g, "t.u8", &f, &err) == QR_ERR);
}

static void check_arrays(const qr_gguf *g) {
    qr_error err;
    const qr_gguf_value *a;
    qr_gguf_value e, e2;
    REQUIRE(qr_gguf_get_arr(g, "t.arr_i32", QR_GGUF_INT32, &a, &err) == QR_OK);
    CHECK(a->v.arr.count == 4);
    CHECK(qr_gguf_array_get(a, 3, &e) == QR_OK && e.type == QR_GGUF_INT32 && e.v.i64 == INT32_MIN);
    CHECK(qr_gguf_array_get(a, 4, &e) == QR_ERR);
    CHECK(qr_gguf_get_arr(g, "t.arr_i32", QR_GGUF_STRING, &a, &err) == QR_ERR && strstr(err.msg, "array of int32"));
    REQUIRE(qr_gguf_get_arr(g, "t.arr_f32", QR_GGUF_FLOAT32, &a, &err) == QR_OK);
    CHECK(qr_gguf_array_get(a, 2, &e) == QR_OK && (float)e.v.f64 == 1e-30f);
    REQUIRE(qr_gguf_get_arr(g, "t.arr_bool", QR_GGUF_BOOL, &a, &err) == QR_OK);
    CHECK(qr_gguf_array_get(a, 1, &e) == QR_OK && e.v.u64 == 0);
    REQUIRE(qr_gguf_get_arr(g, "t.arr_empty", QR_GGUF_VTYPE_COUNT, &a, &err) == QR_OK);
    CHECK(a->v.arr.count == 0 && a->v.arr.elem_type == QR_GGUF_UINT64);
    REQUIRE(qr_gguf_get_arr(g, "t.arr_str", QR_GGUF_STRING, &a, &err) == QR_OK);
    const char *want[3] = {"a", "", "<0x0A>"};
    qr_gguf_array_iter it;
    qr_gguf_array_iter_init(&it, a);
    int n = 0;
    while (qr_gguf_array_iter_next(&it, &e)) {
        CHECK(n < 3 && qr_gguf_str_eq(e.v.str, want[n]));
        n++;
    }
    CHECK(n == 3);
    CHECK(qr_gguf_array_get(a, 2, &e) == QR_OK && qr_gguf_str_eq(e.v.str, "<0x0A>"));
    /* [[[7, -7]]] */
    REQUIRE(qr_gguf_get_arr(g, "t.nested_i32", QR_GGUF_ARRAY, &a, &err) == QR_OK);
    REQUIRE(qr_gguf_array_get(a, 0, &e) == QR_OK && e.type == QR_GGUF_ARRAY && e.v.arr.count == 1);
    REQUIRE(qr_gguf_array_get(&e, 0, &e2) == QR_OK && e2.v.arr.elem_type == QR_GGUF_INT32);
    CHECK(qr_gguf_array_get(&e2, 1, &e) == QR_OK && e.v.i64 == -7);
    /* [["x", "yz"], []] */
    REQUIRE(qr_gguf_get_arr(g, "t.nested_str", QR_GGUF_ARRAY, &a, &err) == QR_OK);
    CHECK(a->v.arr.count == 2);
    REQUIRE(qr_gguf_array_get(a, 1, &e) == QR_OK && e.v.arr.count == 0 && e.v.arr.elem_type == QR_GGUF_STRING);
    REQUIRE(qr_gguf_array_get(a, 0, &e) == QR_OK && e.v.arr.count == 2);
    CHECK(qr_gguf_array_get(&e, 1, &e2) == QR_OK && qr_gguf_str_eq(e2.v.str, "yz"));
}

static void check_tensors(const qr_gguf *g) {
    CHECK(qr_gguf_version(g) == 3);
    CHECK(qr_gguf_alignment(g) == 64);
    CHECK(qr_gguf_data_offset(g) % 64 == 0);
    REQUIRE(qr_gguf_n_tensors(g) == 3);
    const qr_gguf_tensor *a = qr_gguf_find_tensor(g, "a.weight");
    const qr_gguf_tensor *b = qr_gguf_find_tensor(g, "b.weight");
    const qr_gguf_tensor *c = qr_gguf_find_tensor(g, "c.weight");
    REQUIRE(a && b && c && !qr_gguf_find_tensor(g, "d.weight"));
    CHECK(a == qr_gguf_tensor_at(g, 0) && c == qr_gguf_tensor_at(g, 2));
    CHECK(a->n_dims == 2 && a->ne[0] == 5 && a->ne[1] == 3 && a->ne[2] == 1 && a->n_elements == 15);
    CHECK(b->type == QR_TYPE_Q4_0 && b->n_bytes == 36 && b->offset == 64);
    CHECK(c->n_dims == 3 && c->ne[2] == 3 && c->n_bytes == 12 && c->offset == 128);
    uint8_t data[108];
    for (int i = 0; i < 108; i++) data[i] = (uint8_t)(i * 7 + 1);
    CHECK(memcmp(a->data, data, 60) == 0);
    CHECK(memcmp(b->data, data + 60, 36) == 0);
    CHECK(memcmp(c->data, data + 96, 12) == 0);
    /* Writers pad after the last tensor too. */
    CHECK(qr_gguf_file_size(g) == qr_gguf_data_offset(g) + 192);
}

static void test_round_trip(void) {
    qr_error err;
    write_all_types(tmp_path);
    qr_gguf *g;
    if (qr_gguf_open(tmp_path, &g, &err) != QR_OK) {
        fprintf(stderr, "open failed: %s\n", err.msg);
        exit(1);
    }
    check_scalars(g);
    check_arrays(g);
    check_tensors(g);

    /* copy_kv of every entry, then the same tensors: reads back identically. */
    char copy_path[300];
    snprintf(copy_path, sizeof copy_path, "%s.copy", tmp_path);
    qr_gguf_writer *w;
    REQUIRE(qr_gguf_writer_create(copy_path, &w, &err) == QR_OK);
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++) {
        CHECK_MSG(qr_gguf_writer_copy_kv(w, qr_gguf_kv_at(g, i), &err) == QR_OK, "%s", err.msg);
    }
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        REQUIRE(qr_gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, &err) == QR_OK);
    }
    /* The alignment key was copied, but the writer's own alignment must follow it. */
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        REQUIRE(qr_gguf_writer_write_data(w, t->data, t->n_bytes, &err) == QR_OK);
    }
    REQUIRE(qr_gguf_writer_finish(w, &err) == QR_OK);
    qr_gguf *g2;
    if (qr_gguf_open(copy_path, &g2, &err) != QR_OK) {
        fprintf(stderr, "copy open failed: %s\n", err.msg);
        exit(1);
    }
    REQUIRE(qr_gguf_n_kv(g2) == qr_gguf_n_kv(g));
    for (int64_t i = 0; i < qr_gguf_n_kv(g); i++) {
        const qr_gguf_kv *x = qr_gguf_kv_at(g, i), *y = qr_gguf_kv_at(g2, i);
        CHECK(x->key.len == y->key.len && memcmp(x->key.ptr, y->key.ptr, x->key.len) == 0);
        CHECK(x->value.type == y->value.type);
    }
    check_scalars(g2);
    check_arrays(g2);
    check_tensors(g2);
    qr_gguf_close(g2);
    qr_gguf_close(g);
    unlink(copy_path);

    /* An unfinished file is removed; finish with missing data fails and removes it. */
    REQUIRE(qr_gguf_writer_create(copy_path, &w, &err) == QR_OK);
    const int64_t ne[1] = {4};
    REQUIRE(qr_gguf_writer_add_tensor(w, "x", QR_TYPE_F32, 1, ne, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_write_data(w, "abcd", 4, &err) == QR_OK);
    CHECK(qr_gguf_writer_finish(w, &err) == QR_ERR && strstr(err.msg, "4 of its 16 bytes"));
    CHECK(access(copy_path, F_OK) != 0);
    REQUIRE(qr_gguf_writer_create(copy_path, &w, &err) == QR_OK);
    CHECK(qr_gguf_writer_set_alignment(w, 24, &err) == QR_ERR);
    qr_gguf_writer_abort(w);
    CHECK(access(copy_path, F_OK) != 0);
    unlink(tmp_path);
}

static void test_files(void) {
    qr_gguf *g;
    qr_error err;
    CHECK(qr_gguf_open("/nonexistent/x.gguf", &g, &err) == QR_ERR && strstr(err.msg, "/nonexistent/x.gguf"));
    CHECK(qr_gguf_open("/", &g, &err) == QR_ERR && strstr(err.msg, "not a regular file"));
    FILE *f = fopen(tmp_path, "wb");
    REQUIRE(f);
    fclose(f);
    CHECK(qr_gguf_open(tmp_path, &g, &err) == QR_ERR && strstr(err.msg, "truncated"));
    unlink(tmp_path);
}

int main(void) {
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_path, sizeof tmp_path, "%s/quarrel_test_gguf_%d.gguf", dir && *dir ? dir : "/tmp", (int)getpid());
    test_corruptions();
    test_prefixes();
    test_round_trip();
    test_files();
    return qr_test_finish("test_gguf");
}
