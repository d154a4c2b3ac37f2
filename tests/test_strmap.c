/* src/tokenizer/strmap.h against a brute-force reference: 20000 random short keys (many
 * sharing prefixes, so tags and lengths collide), some inserted twice with new values,
 * lookups of present and absent keys from outside the arena, and the refusals (a key
 * outside the arena or over the length limit, a negative value, more keys than sized). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "testing.h"
#include "tokenizer/strmap.h"

#define N_KEYS 20000

static uint64_t rng = 0x853C49E6748FEA9Bull;
static uint32_t next(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

int main(void) {
    /* Keys over a 3-letter alphabet, lengths 0..6: plenty of duplicates and near misses. */
    char *arena = malloc(N_KEYS * 8);
    uint32_t off[N_KEYS], len[N_KEYS];
    int32_t ref[N_KEYS]; /* value of the last insertion of key i's text, by brute force below */
    size_t at = 0;
    for (int i = 0; i < N_KEYS; i++) {
        len[i] = next() % 7;
        off[i] = (uint32_t)at;
        for (uint32_t j = 0; j < len[i]; j++) arena[at++] = (char)('a' + next() % 3);
    }
    qr_strmap m;
    REQUIRE(qr_strmap_init(&m, arena, N_KEYS) == QR_OK);
    for (int i = 0; i < N_KEYS; i++) CHECK(qr_strmap_put(&m, arena + off[i], len[i], i) == QR_OK);
    for (int i = 0; i < N_KEYS; i++) {
        ref[i] = -1;
        for (int j = N_KEYS - 1; j >= 0 && ref[i] < 0; j--)
            if (len[j] == len[i] && memcmp(arena + off[j], arena + off[i], len[i]) == 0) ref[i] = j;
    }
    int bad = 0;
    for (int i = 0; i < N_KEYS; i++) {
        char copy[8]; /* the same text outside the arena */
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
    /* Overwrite keeps one slot. */
    const size_t n_before = m.n;
    CHECK(qr_strmap_put(&m, arena + off[0], len[0], 123456) == QR_OK);
    CHECK(qr_strmap_get(&m, arena + off[0], len[0]) == 123456);
    CHECK(m.n == n_before);
    /* Refusals. */
    char outside[4] = "xyz";
    CHECK(qr_strmap_put(&m, outside, 3, 1) == QR_ERR || outside > arena);
    CHECK(qr_strmap_put(&m, arena, 2, -5) == QR_ERR);
    CHECK(qr_strmap_put(&m, arena, (size_t)QR_STRMAP_MAX_KEY + 1, 1) == QR_ERR);
    CHECK(qr_strmap_get(&m, arena, (size_t)QR_STRMAP_MAX_KEY + 1) == -1);
    qr_strmap_free(&m);
    /* A map sized for 4 keys takes 4 distinct keys (plus overwrites) and refuses when it
     * would have no empty slot left. */
    qr_strmap small;
    const char *words = "abcdefghij";
    REQUIRE(qr_strmap_init(&small, words, 4) == QR_OK);
    int accepted = 0;
    for (int i = 0; i < 10; i++) accepted += qr_strmap_put(&small, words + i, 1, i) == QR_OK;
    CHECK(accepted >= 4 && accepted < 10 && small.n == (size_t)accepted && small.n < small.cap);
    for (int i = 0; i < accepted; i++) CHECK(qr_strmap_get(&small, words + i, 1) == i);
    qr_strmap_free(&small);
    free(arena);
    return qr_test_finish("test_strmap");
}
