/* src/tokenizer/strmap.h against a brute-force reference: 20000 random short keys (many
 * sharing prefixes, so tags and lengths collide), some inserted twice (the later index
 * wins), lookups of present and absent keys from outside the table, and the refusals (an
 * index out of range, more keys than sized). Then src/tokenizer/strtab.h on a GGUF string
 * array written with the GGUF writer and read back: the strings as the gguf Python
 * package's layout puts them (in place in the mapping), and an empty string renamed
 * "[EMPTY_<i>]" as llama.cpp does, which takes a private copy. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "gguf/gguf.h"
#include "testing.h"
#include "tokenizer/strmap.h"

#define N_KEYS 20000

static uint64_t rng = 0x853C49E6748FEA9Bull;
static uint32_t next(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

/* A string table laid out like a GGUF string array: each string after an 8-byte gap. */
static void build_table(qr_strtab *t, char *arena, uint32_t *off, uint32_t n, const uint32_t *len) {
    t->base = arena;
    t->off = off;
    t->own = NULL;
    t->n = n;
    uint32_t at = QR_STRTAB_GAP;
    for (uint32_t i = 0; i < n; i++) {
        off[i] = at;
        for (uint32_t j = 0; j < len[i]; j++) arena[at + j] = (char)('a' + next() % 3);
        at += len[i] + QR_STRTAB_GAP;
    }
    off[n] = at;
}

static void test_map(void) {
    /* Keys over a 3-letter alphabet, lengths 0..6: plenty of duplicates and near misses. */
    char *arena = malloc(N_KEYS * (6 + QR_STRTAB_GAP) + QR_STRTAB_GAP);
    static uint32_t off[N_KEYS + 1], len[N_KEYS];
    static int32_t ref[N_KEYS]; /* the last index with key i's text, by brute force below */
    for (int i = 0; i < N_KEYS; i++) len[i] = next() % 7;
    qr_strtab keys;
    build_table(&keys, arena, off, N_KEYS, len);
    for (int i = 0; i < N_KEYS; i++) {
        size_t l;
        const char *k = qr_strtab_get(&keys, (uint32_t)i, &l);
        CHECK(l == len[i] && k == arena + off[i]);
    }
    qr_strmap m;
    REQUIRE(qr_strmap_init(&m, &keys, N_KEYS) == QR_OK);
    for (int i = 0; i < N_KEYS; i++) CHECK(qr_strmap_put(&m, (uint32_t)i) == QR_OK);
    for (int i = 0; i < N_KEYS; i++) {
        ref[i] = -1;
        for (int j = N_KEYS - 1; j >= 0 && ref[i] < 0; j--)
            if (len[j] == len[i] && memcmp(arena + off[j], arena + off[i], len[i]) == 0) ref[i] = j;
    }
    int bad = 0;
    for (int i = 0; i < N_KEYS; i++) {
        char copy[8]; /* the same text outside the table */
        memcpy(copy, arena + off[i], len[i]);
        bad += qr_strmap_get(&m, copy, len[i]) != ref[i];
    }
    CHECK_MSG(bad == 0, "%d lookups differ from the brute-force reference", bad);
    /* 3^0 + ... + 3^6 = 1093 distinct texts exist; every one was drawn, so n counts them. */
    size_t distinct = 0;
    for (int i = 0; i < N_KEYS; i++) distinct += ref[i] == i;
    CHECK(m.n == distinct);
    CHECK(qr_strmap_get(&m, "abcabca", 7) == -1); /* longer than any key */
    CHECK(qr_strmap_get(&m, "d", 1) == -1);
    /* Putting an earlier index of a text again makes it the value, in the same slot. */
    const size_t n_before = m.n;
    int32_t first = -1;
    for (int i = 0; i < N_KEYS && first < 0; i++) first = ref[i] != i ? i : -1;
    REQUIRE(first >= 0);
    CHECK(qr_strmap_put(&m, (uint32_t)first) == QR_OK);
    CHECK(qr_strmap_get(&m, arena + off[first], len[first]) == first);
    CHECK(m.n == n_before);
    CHECK(qr_strmap_put(&m, N_KEYS) == QR_ERR); /* out of range */
    qr_strmap_free(&m);
    /* A map sized for 4 keys takes 4 distinct keys (plus overwrites) and refuses when it
     * would have no empty slot left. */
    static const uint32_t one[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    char small_arena[10 * (1 + QR_STRTAB_GAP) + QR_STRTAB_GAP];
    uint32_t small_off[11];
    qr_strtab words;
    build_table(&words, small_arena, small_off, 10, one);
    for (int i = 0; i < 10; i++) small_arena[small_off[i]] = (char)('a' + i);
    qr_strmap small;
    REQUIRE(qr_strmap_init(&small, &words, 4) == QR_OK);
    int accepted = 0;
    for (int i = 0; i < 10; i++) accepted += qr_strmap_put(&small, (uint32_t)i) == QR_OK;
    CHECK(accepted >= 4 && accepted < 10 && small.n == (size_t)accepted && small.n < small.cap);
    for (int i = 0; i < accepted; i++) CHECK(qr_strmap_get(&small, small_arena + small_off[i], 1) == i);
    qr_strmap_free(&small);
    free(arena);
}

/* Writes the strings as a GGUF array under key "k" and opens the file. */
static qr_gguf *write_strings(const char *path, const char *const *s, uint64_t n) {
    qr_gguf_writer *w = NULL;
    qr_gguf *g = NULL;
    qr_error err = {{0}};
    REQUIRE(qr_gguf_writer_create(path, &w, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_add_str_arr(w, "k", s, n, &err) == QR_OK);
    REQUIRE(qr_gguf_writer_finish(w, &err) == QR_OK);
    REQUIRE(qr_gguf_open(path, &g, &err) == QR_OK);
    return g;
}

static void check_table(const qr_strtab *t, const char *const *want, uint32_t n) {
    CHECK(t->n == n);
    for (uint32_t i = 0; i < n && i < t->n; i++) {
        size_t l;
        const char *p = qr_strtab_get(t, i, &l);
        CHECK_MSG(l == strlen(want[i]) && memcmp(p, want[i], l) == 0, "string %u: '%.*s', want '%s'", i, (int)l,
                  p, want[i]);
    }
}

static void test_table(void) {
    char path[] = "/tmp/quarrel-strtab-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    close(fd);
    qr_error err = {{0}};
    const qr_gguf_value *arr = NULL;
    qr_strtab t;

    const char *const plain[] = {"\xE2\x96\x81the", "a", "", "<0x0A>", "longer token text"};
    qr_gguf *g = write_strings(path, plain, 5);
    REQUIRE(qr_gguf_get_arr(g, "k", QR_GGUF_STRING, &arr, &err) == QR_OK);
    REQUIRE(qr_strtab_load(&t, arr, false, path, "k", &err) == QR_OK);
    CHECK(t.own == NULL); /* read in place */
    CHECK((const uint8_t *)t.base > arr->v.arr.data && (const uint8_t *)t.base < arr->v.arr.data + arr->v.arr.data_bytes);
    check_table(&t, plain, 5);
    qr_strtab_free(&t);
    /* llama.cpp names an empty token text "[EMPTY_<index>]". */
    REQUIRE(qr_strtab_load(&t, arr, true, path, "k", &err) == QR_OK);
    CHECK(t.own != NULL);
    const char *const renamed[] = {"\xE2\x96\x81the", "a", "[EMPTY_2]", "<0x0A>", "longer token text"};
    check_table(&t, renamed, 5);
    qr_strtab_free(&t);
    qr_gguf_close(g);

    const char *const none[] = {"x"};
    g = write_strings(path, none, 0);
    REQUIRE(qr_gguf_get_arr(g, "k", QR_GGUF_STRING, &arr, &err) == QR_OK);
    REQUIRE(qr_strtab_load(&t, arr, true, path, "k", &err) == QR_OK);
    CHECK(t.n == 0);
    qr_strtab_free(&t);
    qr_gguf_close(g);
    unlink(path);
}

int main(void) {
    test_map();
    test_table();
    return qr_test_finish("test_strmap");
}
