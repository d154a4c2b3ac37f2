/* The scale searches behind the K-quant reference quantizers. Every expression keeps
 * llama.cpp's operand order (ggml-quants.c): float addition is not associative, and the
 * goal is byte-identical output. The project builds as ISO C11, so GCC does not contract
 * a*b+c into FMA here; llama.cpp's x86 builds do not either. */
#include "quant/quant_k_helpers.h"

#include <math.h>

/* Bit-exactness with llama.cpp needs every a*b+c rounded twice, as written: no FMA
 * contraction even when the build enables FMA. Clang contracts by default unless told;
 * GCC does not in ISO C mode (-std=c11) but does in GNU mode. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__) && defined(__FMA__)
#error "compile src/quant as ISO C (-std=c11): in GNU C mode GCC fuses multiply-adds"
#endif

/* The (signed) element of largest magnitude, first one on ties; its magnitude in *amax_out. */
static float signed_absmax(int n, const float *x, float *amax_out) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* Weighted sums sum(w*x*l) and sum(w*l*l) for the quants of one trial inverse scale,
 * with w = x^2; L receives q + nmax when store is set. */
static void qx_trial(int n, int nmax, const float *x, float iscale, int8_t *L, bool store,
                     float *sumlx_out, float *suml2_out) {
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = qr_clamp_int(qr_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        if (store) L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    *sumlx_out = sumlx;
    *suml2_out = suml2;
}

float qr_make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = signed_absmax(n, x, &amax);
    if (amax < QR_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx, suml2;
    qx_trial(n, nmax, x, iscale, L, true, &sumlx, &suml2);
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    /* Try inverse scales around the first guess; keep the one with the best fit. */
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        qx_trial(n, nmax, x, iscale, L, false, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            qx_trial(n, nmax, x, iscale, L, true, &sumlx, &suml2);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* One coordinate-descent sweep of make_q3_quants: each quant moves to its best value for
 * the current scale when that raises sumlx^2/suml2. Returns how many changed. */
static int q3_sweep(int n, int nmax, const float *x, int8_t *L, float *sumlx, float *suml2) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
        float w = x[i] * x[i];
        float slx = *sumlx - w * x[i] * L[i];
        if (slx > 0) {
            float sl2 = *suml2 - w * L[i] * L[i];
            int new_l = qr_clamp_int(qr_nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (new_l != L[i]) {
                slx += w * x[i] * new_l;
                sl2 += w * new_l * new_l;
                if (sl2 > 0 && slx * slx * *suml2 > *sumlx * *sumlx * sl2) {
                    L[i] = (int8_t)new_l;
                    *sumlx = slx;
                    *suml2 = sl2;
                    ++n_changed;
                }
            }
        }
    }
    return n_changed;
}

float qr_make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    const float max = signed_absmax(n, x, &amax);
    if (amax < QR_GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = qr_clamp_int(qr_nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; ++itry) {
        if (!q3_sweep(n, nmax, x, L, &sumlx, &suml2)) break;
    }
    for (int i = 0; i < n; ++i) L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Weighted error of x ~ scale*L + min (absolute or squared differences). */
static float qkx_error(int n, const float *x, const float *weights, const uint8_t *L,
                       float scale, float min, bool use_mad) {
    float err = 0;
    for (int i = 0; i < n; ++i) {
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        float w = weights[i];
        err += w * diff;
    }
    return err;
}

float qr_make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                          float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep,
                          bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    for (int i = 0; i < n; ++i) {
        int l = qr_nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)qr_clamp_int(l, 0, nmax);
    }
    float best_error = qkx_error(n, x, weights, L, scale, min, use_mad);
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = qr_clamp_int(qr_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        /* Least-squares scale and offset for these quants (2x2 normal equations). */
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = qkx_error(n, x, weights, Laux, this_scale, this_min, use_mad);
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}
