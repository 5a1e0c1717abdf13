/*
 * nas_kernels_internal.h -- the plane engine shared by the nas_ kernels (not a public API).
 *
 * A plane is one input channel widened to int16 in a ring of kernel-height rows: element b of a
 * row is input column b - pad_left plus the input offset, 0 in the padding (the ring is cleared
 * once per call; fills write only the input columns). Input row iy lives in ring row iy % kh, so
 * the kernel rows of an output row are one or two runs of consecutive ring rows (the second one
 * after the ring wraps to its first row). Output pixel ox starts at
 * element ox * stride_x, so with an even start two taps are one aligned word and one SMLAD; a
 * pixel with an odd start reads the aligned word before it with a second weight set shifted by
 * one tap (tap k at position k + 1), so every start is aligned; each set has `np` pairs per row.
 *
 * Weights are stored doubled (2w fits int16) and the accumulator starts at 2 * bias, so the sum is
 * 2 * acc and one SMMLAR gives arm_nn_requantize's high product plus a constant exactly:
 *   (2a * m + 2^31) >> 32 == (a * m + 2^30) >> 31.
 * The rounding right shift by e >= 1 (ties away from zero) and the output offset then fold into
 *   (h + 2^(e-1) + (output_offset << e) - [a < 0]) >> e.
 * A channel takes this fast path when its shift is negative and no intermediate can overflow
 * (checked once per call with the largest possible sum); otherwise the exact CMSIS-NN arithmetic.
 */
#ifndef NAS_KERNELS_INTERNAL_H
#define NAS_KERNELS_INTERNAL_H

#include <string.h>

#include "nas_kernels.h"

#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__)
#define NAS_DSP 1
#endif
#if (defined(__ARM_FEATURE_DSP) || defined(__ARM_FEATURE_SAT)) && defined(__GNUC__)
#include <arm_acle.h>
#endif

#if defined(__GNUC__)
#define NAS_INLINE static inline __attribute__((always_inline))
#else
#define NAS_INLINE static inline
#endif

#define NAS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define NAS_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Geometry of one plane convolution (batch 1, dilation 1). */
typedef struct
{
    int32_t in_h, in_w, out_h, out_w;
    int32_t kh, kw, sy, sx, py, px;
    int32_t odd;  /* 1 when some pixel starts at an odd element: a second, shifted weight set */
    int32_t np;   /* int16 pairs per kernel row in each set */
    int32_t rw;   /* ring row length in int16 (even), room for whole blocks of four pixels */
    int32_t lead; /* first ring column of the input (the left padding inside the ring) */
    int32_t cols; /* input columns in the ring */
} nas_geom;

/* Requantisation of one output channel. */
typedef struct
{
    int32_t start; /* accumulator start: 2 * bias (fast) or 0 (exact) */
    int32_t mult;
    int32_t shift; /* fast: the right shift e >= 1; exact: the CMSIS-NN shift */
    int32_t add;   /* fast: 2^(e-1) + (output_offset << e); exact: the bias */
    int32_t fast;
} nas_chan;

/* Output offset and activation clamp of a call. */
typedef struct
{
    int32_t off, lo, hi;
} nas_out;

/* The kernel rows of one output row: the first (ky0) and how many lie inside the input, the ring
 * row of the first (slot), and the input rows [fill0, fill1) to widen into the ring first. */
typedef struct
{
    int32_t ky0, rows, slot, fill0, fill1;
} nas_rows;

/* Fills g from the call; returns 0, or -1 for a geometry the plane kernels do not take. */
int32_t nas_geom_init(nas_geom *g,
                      const cmsis_nn_dims *input_dims,
                      const cmsis_nn_dims *filter_dims,
                      const cmsis_nn_dims *output_dims,
                      const cmsis_nn_tile *stride,
                      const cmsis_nn_tile *padding,
                      const cmsis_nn_tile *dilation);

/* int16 elements of one channel's weight sets, and of one plane's ring. */
NAS_INLINE int32_t nas_weight_elems(const nas_geom *g)
{
    return (g->odd + 1) * g->kh * g->np * 2;
}

NAS_INLINE int32_t nas_ring_elems(const nas_geom *g)
{
    return g->kh * g->rw;
}

/* Widen (and double) one channel's kh x kw weights, tap (ky, kx) at w[(ky * kw + kx) * step]. */
void nas_widen_weights(const nas_geom *g, const int8_t *w, int32_t step, int16_t *dst);

/* Requantisation constants of one channel summing `taps` products. */
void nas_chan_init(nas_chan *c, int32_t bias, int32_t mult, int32_t shift, int32_t out_off, int32_t taps);

/* The rows of output row oy (see nas_rows); *filled is the next input row not yet in the ring. */
void nas_ring_rows(const nas_geom *g, int32_t oy, int32_t *filled, nas_rows *r);

/* One output row of one channel: out[ox * out_step] for every ox, from the plane's ring (the
 * kernel rows of r) and the channel's weights w (row r->ky0 of set 0). */
void nas_plane_row(const nas_geom *g,
                   const int16_t *ring,
                   const nas_rows *r,
                   const int16_t *w,
                   const nas_chan *c,
                   const nas_out *o,
                   int8_t *out,
                   int32_t out_step);

/* Requantise a sum of doubled products (either path, `nas_chan`) to an int8 output. */
int8_t nas_finish(int32_t a2, const nas_chan *c, const nas_out *o);

/* The fast path before the clamp: h + add from one SMMLAR, then the rounding shift. The sign
 * correction of the rounding uses the accumulator's sign: h < 0 implies a2 < 0, and where a2 < 0
 * but h == 0 both give (add - 1) >> e == add >> e (add = 2^(e-1) + k * 2^e). */
NAS_INLINE int32_t nas_fast(int32_t a2, int32_t mult, int32_t add, int32_t e)
{
#if defined(NAS_DSP)
    int32_t t;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(t) : "r"(a2), "r"(mult), "r"(add));
#else
    const int32_t t = (int32_t)(((int64_t)a2 * mult + ((int64_t)1 << 31)) >> 32) + add;
#endif
    return (t + (a2 >> 31)) >> e;
}

NAS_INLINE int32_t nas_sat8(int32_t v)
{
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
    return __ssat(v, 8);
#else
    return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
}

#endif /* NAS_KERNELS_INTERNAL_H */
