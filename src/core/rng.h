/* A small, fully specified pseudo-random generator, so that synthetic models and
 * randomized tests are reproducible from a seed alone.
 *
 * - State: xoshiro256** (Blackman & Vigna, 2018), 256 bits, period 2^256 - 1.
 * - Seeding: the four state words are the next four outputs of splitmix64 started
 *   at `key`; qr_rng_init_stream derives key from (seed, a, b) by chaining
 *   splitmix64's finalizer, so independent streams (one per tensor row, say) can be
 *   drawn in any order or on any thread and still give the same numbers.
 * - Uniform: the top 53 bits of a draw, times 2^-53, in [0, 1).
 * - Normal: Box-Muller in double precision. Each pair of uniforms (u1, u2) gives
 *   r = sqrt(-2 ln(1 - u1)), z0 = r cos(2 pi u2), z1 = r sin(2 pi u2); z0 is returned
 *   first, z1 on the next call. Results depend on libm's log/cos/sin, which are
 *   identical on a given platform. */
#ifndef QR_CORE_RNG_H
#define QR_CORE_RNG_H

#include <stdbool.h>
#include <stdint.h>

typedef struct qr_rng {
    uint64_t s[4];
    double spare;   /* the second value of the last Box-Muller pair */
    bool has_spare;
} qr_rng;

/* splitmix64: advances *state and returns the next output. */
uint64_t qr_splitmix64(uint64_t *state);

void qr_rng_init(qr_rng *r, uint64_t seed);
/* Stream (a, b) of `seed`: e.g. a = tensor index, b = row. */
void qr_rng_init_stream(qr_rng *r, uint64_t seed, uint64_t a, uint64_t b);

uint64_t qr_rng_next(qr_rng *r);
double qr_rng_uniform(qr_rng *r);
/* Standard normal N(0, 1). */
double qr_rng_normal(qr_rng *r);
/* Fills dst with N(0, std^2) values. */
void qr_rng_fill_normal(qr_rng *r, float *dst, int64_t n, float std);

#endif
