#include "core/rng.h"

#include <math.h>

#define QR_TWO_PI 6.283185307179586476925286766559

uint64_t qr_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void qr_rng_init(qr_rng *r, uint64_t seed) {
    uint64_t sm = seed;
    for (int i = 0; i < 4; i++) r->s[i] = qr_splitmix64(&sm);
    /* xoshiro's state must not be all zero; splitmix64 never yields four zeros in a
     * row, but keep the guarantee explicit. */
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) r->s[0] = 1;
    r->has_spare = false;
    r->spare = 0.0;
}

void qr_rng_init_stream(qr_rng *r, uint64_t seed, uint64_t a, uint64_t b) {
    uint64_t k = seed;
    uint64_t key = qr_splitmix64(&k);
    k = key ^ a;
    key = qr_splitmix64(&k);
    k = key ^ b;
    key = qr_splitmix64(&k);
    qr_rng_init(r, key);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t qr_rng_next(qr_rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double qr_rng_uniform(qr_rng *r) {
    return (double)(qr_rng_next(r) >> 11) * 0x1.0p-53;
}

double qr_rng_normal(qr_rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare;
    }
    /* 1 - u1 lies in (0, 1], so the logarithm is finite. */
    double u1 = 1.0 - qr_rng_uniform(r);
    double u2 = qr_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double ang = QR_TWO_PI * u2;
    r->spare = rad * sin(ang);
    r->has_spare = true;
    return rad * cos(ang);
}

void qr_rng_fill_normal(qr_rng *r, float *dst, int64_t n, float std) {
    for (int64_t i = 0; i < n; i++) dst[i] = (float)(qr_rng_normal(r) * (double)std);
}
