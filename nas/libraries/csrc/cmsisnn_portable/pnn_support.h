/*
 * pnn_support.h -- internal helpers of the portable CMSIS-NN kernels.
 * Not part of the public API; names are prefixed pnn_ to avoid clashes.
 *
 * The code relies on two implementation-defined behaviours that every
 * compiler targeting Arm or x86 (GCC, Clang, Arm Compiler) defines the same
 * way: right shift of a negative int is arithmetic, and converting an
 * out-of-range unsigned value to a signed type wraps modulo 2^N.
 */
#ifndef PNN_SUPPORT_H
#define PNN_SUPPORT_H

#include "arm_nnfunctions.h"

#if defined(ARM_MATH_DSP) && defined(__GNUC__)
#define PNN_DSP 1
#include <arm_acle.h>
#endif

#if defined(__GNUC__)
#define PNN_INLINE static inline __attribute__((always_inline))
#else
#define PNN_INLINE static inline
#endif

#define PNN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define PNN_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Rounding division by 2^exponent, exponent in [0, 31], ties away from zero
 * (gemmlowp RoundingDivideByPOT). */
PNN_INLINE int32_t pnn_div_pow2(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)((1u << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* round(a * b / 2^31) with the rounding offset of CMSIS-NN's
 * arm_nn_doubling_high_mult_no_sat (+2^30 then arithmetic shift).  Used for
 * requantization, where the multiplier is non-negative. */
PNN_INLINE int32_t pnn_high_mul_no_sat(int32_t a, int32_t b)
{
    const int64_t p = (int64_t)a * (int64_t)b + ((int64_t)1 << 30);
    return (int32_t)(p >> 31);
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round-half-away-from-zero of
 * a * b / 2^31, saturating the single overflow case INT32_MIN * INT32_MIN. */
PNN_INLINE int32_t pnn_sat_high_mul(int32_t a, int32_t b)
{
    if (a == b && a == NN_Q31_MIN)
    {
        return NN_Q31_MAX;
    }
    {
        const int64_t p = (int64_t)a * (int64_t)b;
        const int64_t nudge = (p >= 0) ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
        return (int32_t)((p + nudge) / ((int64_t)1 << 31));
    }
}

/* CMSIS-NN / TFLite double-rounding requantization of an int32 accumulator:
 * left shift (wrapping, as the reference does), rounding doubling high
 * multiply, rounding right shift.  shift in [-31, 30], multiplier as produced
 * by QuantizeMultiplier (|multiplier| < 2^31).
 *
 * The right shift uses round(h / 2^e) = ((h - [h < 0]) >> (e - 1)) + 1) >> 1,
 * identical to pnn_div_pow2 for every h > INT32_MIN (the high product can
 * never be INT32_MIN for such multipliers) and three instructions cheaper. */
PNN_INLINE int32_t pnn_requantize(int32_t val, int32_t multiplier, int32_t shift)
{
    if (shift > 0)
    {
        val = (int32_t)((uint32_t)val << shift);
        return pnn_high_mul_no_sat(val, multiplier);
    }
    {
        const int32_t h = pnn_high_mul_no_sat(val, multiplier);
        if (shift == 0)
        {
            return h;
        }
        {
            const int32_t t = h + (h >> 31); /* h - 1 when negative */
            return ((t >> (-shift - 1)) + 1) >> 1;
        }
    }
}

/* requantize + output offset + clamp, as int8. */
PNN_INLINE int8_t pnn_finish(int32_t acc, int32_t mult, int32_t shift, int32_t out_off, int32_t act_min, int32_t act_max)
{
    int32_t v = pnn_requantize(acc, mult, shift) + out_off;
    v = PNN_MAX(v, act_min);
    v = PNN_MIN(v, act_max);
    return (int8_t)v;
}

/* Unaligned 32-bit load of four int8 values (compiles to one LDR on M4). */
PNN_INLINE uint32_t pnn_read_u32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

PNN_INLINE void pnn_write_u32(int8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

#if defined(PNN_DSP)
/* Lanes of a packed word b0..b3 (b0 = lowest byte):
 *   pnn_even(x) = {b0, b2} as two int16, pnn_odd(x) = {b1, b3}.
 * With an offset pair o = (off << 16) | (off & 0xffff) the *_off variants
 * add the offset to both lanes. */
PNN_INLINE uint32_t pnn_odd(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

PNN_INLINE uint32_t pnn_odd_off(uint32_t off2, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(off2), "r"(x));
    return r;
}

#define pnn_even(x) __sxtb16(x)
#define pnn_even_off(o, x) __sxtab16((o), (x))
#define pnn_smlad(a, b, acc) __smlad((a), (b), (acc))

PNN_INLINE uint32_t pnn_pack_off(int32_t off)
{
    const uint32_t lo = (uint32_t)off & 0xFFFFu;
    return (lo << 16) | lo;
}
#endif

/* ---------------------------------------------------------------- GEMM
 * dst[r * dst_stride + c] = finish(bias[c] + sum_k (lhs[r][k] + lhs_off) *
 *                                              (rhs[c][k] + rhs_off))
 * for r < rows, c < cols.  lhs row r starts at lhs + r * lhs_stride, rhs row c
 * at rhs + c * depth.  quant_step is 1 for per-channel multiplier/shift
 * arrays and 0 for a single per-tensor value. */
void pnn_gemm_s8(const int8_t *lhs,
                 int32_t lhs_stride,
                 int32_t rows,
                 const int8_t *rhs,
                 int32_t cols,
                 int32_t depth,
                 int32_t lhs_off,
                 int32_t rhs_off,
                 const int32_t *bias,
                 const int32_t *mult,
                 const int32_t *shift,
                 int32_t quant_step,
                 int32_t out_off,
                 int32_t act_min,
                 int32_t act_max,
                 int8_t *dst,
                 int32_t dst_stride);

#if defined(PNN_DSP)
/* Same as pnn_gemm_s8 with rhs_off 0 and quant_step 1, for lhs rows already
 * widened to int16 (offset included) in the layout written by
 * pnn_widen_s8_s16: each group of four values k..k+3 is stored as
 * {k, k+2, k+1, k+3}; a trailing partial group is stored in natural order.
 * rows <= 2 (the two im2col columns). */
void pnn_gemm_s16_s8(const int16_t *lhs,
                     int32_t lhs_stride,
                     int32_t rows,
                     const int8_t *rhs,
                     int32_t cols,
                     int32_t depth,
                     const int32_t *bias,
                     const int32_t *mult,
                     const int32_t *shift,
                     int32_t out_off,
                     int32_t act_min,
                     int32_t act_max,
                     int8_t *dst,
                     int32_t dst_stride);
#endif

#endif /* PNN_SUPPORT_H */
