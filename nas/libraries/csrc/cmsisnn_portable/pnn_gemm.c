/*
 * pnn_gemm.c -- int8 matrix kernels shared by 1x1 convolution, generic
 * convolution (on im2col columns) and fully connected layers.
 *
 * Pure C: straightforward dot products.
 * DSP (Cortex-M4/M7): blocks of 2 lhs rows x 2 rhs rows.  Four int8 values
 * are loaded with one LDR and widened into two int16 pairs with SXTB16 /
 * SXTAB16 (the latter adds the input offset for free); SMLAD then performs
 * two MACs.  Widening both operands the same way ({b0,b2} and {b1,b3}) keeps
 * the pairs matched, so no re-ordering is needed.
 */
#include "pnn_support.h"

#if !defined(PNN_DSP)

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
                 int32_t dst_stride)
{
    for (int32_t r = 0; r < rows; r++)
    {
        const int8_t *a = lhs + r * lhs_stride;
        int8_t *out = dst + r * dst_stride;
        const int32_t *m = mult;
        const int32_t *s = shift;
        for (int32_t c = 0; c < cols; c++)
        {
            const int8_t *b = rhs + c * depth;
            int32_t acc = bias ? bias[c] : 0;
            for (int32_t k = 0; k < depth; k++)
            {
                acc += (a[k] + lhs_off) * (b[k] + rhs_off);
            }
            out[c] = pnn_finish(acc, *m, *s, out_off, act_min, act_max);
            m += quant_step;
            s += quant_step;
        }
    }
}

#else /* PNN_DSP */

/* One lhs row against two rhs rows. */
static void gemm_1x2(const int8_t *a0,
                     const int8_t *b0,
                     const int8_t *b1,
                     int32_t depth,
                     uint32_t lhs_off2,
                     uint32_t rhs_off2,
                     int32_t lhs_off,
                     int32_t rhs_off,
                     int32_t *acc0,
                     int32_t *acc1)
{
    int32_t s0 = *acc0;
    int32_t s1 = *acc1;
    for (int32_t i = depth >> 2; i > 0; i--)
    {
        const uint32_t x = pnn_read_u32(a0);
        const uint32_t w0 = pnn_read_u32(b0);
        const uint32_t w1 = pnn_read_u32(b1);
        const uint32_t xe = pnn_even_off(lhs_off2, x);
        const uint32_t xo = pnn_odd_off(lhs_off2, x);
        a0 += 4;
        b0 += 4;
        b1 += 4;
        s0 = pnn_smlad(xe, pnn_even_off(rhs_off2, w0), s0);
        s0 = pnn_smlad(xo, pnn_odd_off(rhs_off2, w0), s0);
        s1 = pnn_smlad(xe, pnn_even_off(rhs_off2, w1), s1);
        s1 = pnn_smlad(xo, pnn_odd_off(rhs_off2, w1), s1);
    }
    for (int32_t i = depth & 3; i > 0; i--)
    {
        const int32_t x = *a0++ + lhs_off;
        s0 += x * (*b0++ + rhs_off);
        s1 += x * (*b1++ + rhs_off);
    }
    *acc0 = s0;
    *acc1 = s1;
}

/* One lhs row against one rhs row. */
static int32_t gemm_1x1(const int8_t *a0,
                        const int8_t *b0,
                        int32_t depth,
                        uint32_t lhs_off2,
                        uint32_t rhs_off2,
                        int32_t lhs_off,
                        int32_t rhs_off,
                        int32_t s0)
{
    for (int32_t i = depth >> 2; i > 0; i--)
    {
        const uint32_t x = pnn_read_u32(a0);
        const uint32_t w0 = pnn_read_u32(b0);
        a0 += 4;
        b0 += 4;
        s0 = pnn_smlad(pnn_even_off(lhs_off2, x), pnn_even_off(rhs_off2, w0), s0);
        s0 = pnn_smlad(pnn_odd_off(lhs_off2, x), pnn_odd_off(rhs_off2, w0), s0);
    }
    for (int32_t i = depth & 3; i > 0; i--)
    {
        s0 += (*a0++ + lhs_off) * (*b0++ + rhs_off);
    }
    return s0;
}

/* Widen rhs (weights) words; with_rhs_off is a compile-time constant in each
 * specialisation below, so the common rhs_off == 0 case needs no register. */
#define RHS_EVEN(w) (with_rhs_off ? pnn_even_off(rhs_off2, (w)) : pnn_even(w))
#define RHS_ODD(w) (with_rhs_off ? pnn_odd_off(rhs_off2, (w)) : pnn_odd(w))

PNN_INLINE void gemm_s8_dsp(const int8_t *lhs,
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
                            int32_t dst_stride,
                            const int with_rhs_off,
                            const int same_stride)
{
    const uint32_t lhs_off2 = pnn_pack_off(lhs_off);
    const uint32_t rhs_off2 = pnn_pack_off(rhs_off);
    int32_t r = 0;

    for (; r + 2 <= rows; r += 2)
    {
        const int8_t *a0 = lhs + r * lhs_stride;
        const int8_t *a1 = a0 + lhs_stride;
        int8_t *out0 = dst + r * dst_stride;
        int8_t *out1 = out0 + dst_stride;
        const int32_t *m = mult;
        const int32_t *s = shift;
        int32_t c = 0;
        for (; c + 2 <= cols; c += 2)
        {
            const int8_t *b0 = rhs + c * depth;
            const int8_t *b1 = b0 + depth;
            const int8_t *p0 = a0;
            const int8_t *p1 = a1;
            int32_t s00 = bias ? bias[c] : 0;
            int32_t s01 = bias ? bias[c + 1] : 0;
            int32_t s10 = s00;
            int32_t s11 = s01;
            const int8_t *p0_end = p0 + (depth & ~3);
            while (p0 != p0_end)
            {
                /* second row / column addressed relative to the first: with
                 * lhs_stride == depth (1x1 convolution) one register serves both */
                const uint32_t w0 = pnn_read_u32(b0);
                const uint32_t w1 = pnn_read_u32(b0 + depth);
                const uint32_t x0 = pnn_read_u32(p0);
                const uint32_t x1 = pnn_read_u32(p0 + (same_stride ? depth : lhs_stride));
                b0 += 4;
                p0 += 4;
                {
                    const uint32_t we = RHS_EVEN(w0);
                    const uint32_t wo = RHS_ODD(w0);
                    const uint32_t x0e = pnn_even_off(lhs_off2, x0);
                    const uint32_t x0o = pnn_odd_off(lhs_off2, x0);
                    const uint32_t x1e = pnn_even_off(lhs_off2, x1);
                    const uint32_t x1o = pnn_odd_off(lhs_off2, x1);
                    s00 = pnn_smlad(x0e, we, s00);
                    s00 = pnn_smlad(x0o, wo, s00);
                    s10 = pnn_smlad(x1e, we, s10);
                    s10 = pnn_smlad(x1o, wo, s10);
                    {
                        const uint32_t ve = RHS_EVEN(w1);
                        const uint32_t vo = RHS_ODD(w1);
                        s01 = pnn_smlad(x0e, ve, s01);
                        s01 = pnn_smlad(x0o, vo, s01);
                        s11 = pnn_smlad(x1e, ve, s11);
                        s11 = pnn_smlad(x1o, vo, s11);
                    }
                }
            }
            p1 = p0 + lhs_stride;
            b1 = b0 + depth;
            for (int32_t i = depth & 3; i > 0; i--)
            {
                const int32_t x0 = *p0++ + lhs_off;
                const int32_t x1 = *p1++ + lhs_off;
                const int32_t w0 = *b0++ + rhs_off;
                const int32_t w1 = *b1++ + rhs_off;
                s00 += x0 * w0;
                s01 += x0 * w1;
                s10 += x1 * w0;
                s11 += x1 * w1;
            }
            {
                const int32_t m0 = m[0], h0 = s[0];
                const int32_t m1 = m[quant_step], h1 = s[quant_step];
                out0[c] = pnn_finish(s00, m0, h0, out_off, act_min, act_max);
                out1[c] = pnn_finish(s10, m0, h0, out_off, act_min, act_max);
                out0[c + 1] = pnn_finish(s01, m1, h1, out_off, act_min, act_max);
                out1[c + 1] = pnn_finish(s11, m1, h1, out_off, act_min, act_max);
            }
            m += 2 * quant_step;
            s += 2 * quant_step;
        }
        if (c < cols)
        {
            const int8_t *b0 = rhs + c * depth;
            const int32_t b = bias ? bias[c] : 0;
            int32_t s00 = b;
            int32_t s10 = b;
            gemm_1x2(b0, a0, a1, depth, rhs_off2, lhs_off2, rhs_off, lhs_off, &s00, &s10);
            out0[c] = pnn_finish(s00, *m, *s, out_off, act_min, act_max);
            out1[c] = pnn_finish(s10, *m, *s, out_off, act_min, act_max);
        }
    }

    if (r < rows)
    {
        const int8_t *a0 = lhs + r * lhs_stride;
        int8_t *out0 = dst + r * dst_stride;
        const int32_t *m = mult;
        const int32_t *s = shift;
        int32_t c = 0;
        for (; c + 2 <= cols; c += 2)
        {
            const int8_t *b0 = rhs + c * depth;
            int32_t s00 = bias ? bias[c] : 0;
            int32_t s01 = bias ? bias[c + 1] : 0;
            gemm_1x2(a0, b0, b0 + depth, depth, lhs_off2, rhs_off2, lhs_off, rhs_off, &s00, &s01);
            out0[c] = pnn_finish(s00, m[0], s[0], out_off, act_min, act_max);
            out0[c + 1] = pnn_finish(s01, m[quant_step], s[quant_step], out_off, act_min, act_max);
            m += 2 * quant_step;
            s += 2 * quant_step;
        }
        if (c < cols)
        {
            const int32_t acc = gemm_1x1(
                a0, rhs + c * depth, depth, lhs_off2, rhs_off2, lhs_off, rhs_off, bias ? bias[c] : 0);
            out0[c] = pnn_finish(acc, *m, *s, out_off, act_min, act_max);
        }
    }
}

#undef RHS_EVEN
#undef RHS_ODD

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
                 int32_t dst_stride)
{
    if (rhs_off == 0 && lhs_stride == depth)
    {
        gemm_s8_dsp(lhs, depth, rows, rhs, cols, depth, lhs_off, 0, bias, mult, shift, quant_step, out_off,
                    act_min, act_max, dst, dst_stride, 0, 1);
    }
    else if (rhs_off == 0)
    {
        gemm_s8_dsp(lhs, lhs_stride, rows, rhs, cols, depth, lhs_off, 0, bias, mult, shift, quant_step, out_off,
                    act_min, act_max, dst, dst_stride, 0, 0);
    }
    else
    {
        gemm_s8_dsp(lhs, lhs_stride, rows, rhs, cols, depth, lhs_off, rhs_off, bias, mult, shift, quant_step,
                    out_off, act_min, act_max, dst, dst_stride, 1, 0);
    }
}

/* lhs already widened to int16 with the offset added (see pnn_support.h). */
PNN_INLINE void gemm16_1x2(const int16_t *a0,
                           const int8_t *b0,
                           const int8_t *b1,
                           int32_t depth,
                           int32_t *acc0,
                           int32_t *acc1)
{
    int32_t s0 = *acc0;
    int32_t s1 = *acc1;
    for (int32_t i = depth >> 2; i > 0; i--)
    {
        uint32_t xe, xo;
        const uint32_t w0 = pnn_read_u32(b0);
        const uint32_t w1 = pnn_read_u32(b1);
        memcpy(&xe, a0, 4);
        memcpy(&xo, a0 + 2, 4);
        a0 += 4;
        b0 += 4;
        b1 += 4;
        s0 = pnn_smlad(xe, pnn_even(w0), s0);
        s0 = pnn_smlad(xo, pnn_odd(w0), s0);
        s1 = pnn_smlad(xe, pnn_even(w1), s1);
        s1 = pnn_smlad(xo, pnn_odd(w1), s1);
    }
    for (int32_t i = depth & 3; i > 0; i--)
    {
        const int32_t x = *a0++;
        s0 += x * *b0++;
        s1 += x * *b1++;
    }
    *acc0 = s0;
    *acc1 = s1;
}

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
                     int32_t dst_stride)
{
    const int16_t *a0 = lhs;
    int8_t *out0 = dst;
    int8_t *out1 = dst + dst_stride;
    int32_t c = 0;

    if (rows == 2)
    {
        const int16_t *a1 = lhs + lhs_stride;
        for (; c + 2 <= cols; c += 2)
        {
            const int8_t *b0 = rhs + c * depth;
            const int8_t *b1 = b0 + depth;
            const int16_t *p0 = a0;
            const int16_t *p1 = a1;
            int32_t s00 = bias ? bias[c] : 0;
            int32_t s01 = bias ? bias[c + 1] : 0;
            int32_t s10 = s00;
            int32_t s11 = s01;
            for (int32_t i = depth >> 2; i > 0; i--)
            {
                uint32_t x0e, x0o, x1e, x1o;
                const uint32_t w0 = pnn_read_u32(b0);
                const uint32_t w1 = pnn_read_u32(b1);
                memcpy(&x0e, p0, 4);
                memcpy(&x0o, p0 + 2, 4);
                memcpy(&x1e, p1, 4);
                memcpy(&x1o, p1 + 2, 4);
                b0 += 4;
                b1 += 4;
                p0 += 4;
                p1 += 4;
                {
                    const uint32_t we = pnn_even(w0);
                    const uint32_t wo = pnn_odd(w0);
                    s00 = pnn_smlad(x0e, we, s00);
                    s00 = pnn_smlad(x0o, wo, s00);
                    s10 = pnn_smlad(x1e, we, s10);
                    s10 = pnn_smlad(x1o, wo, s10);
                }
                {
                    const uint32_t ve = pnn_even(w1);
                    const uint32_t vo = pnn_odd(w1);
                    s01 = pnn_smlad(x0e, ve, s01);
                    s01 = pnn_smlad(x0o, vo, s01);
                    s11 = pnn_smlad(x1e, ve, s11);
                    s11 = pnn_smlad(x1o, vo, s11);
                }
            }
            for (int32_t i = depth & 3; i > 0; i--)
            {
                const int32_t x0 = *p0++;
                const int32_t x1 = *p1++;
                const int32_t w0 = *b0++;
                const int32_t w1 = *b1++;
                s00 += x0 * w0;
                s01 += x0 * w1;
                s10 += x1 * w0;
                s11 += x1 * w1;
            }
            out0[c] = pnn_finish(s00, mult[c], shift[c], out_off, act_min, act_max);
            out1[c] = pnn_finish(s10, mult[c], shift[c], out_off, act_min, act_max);
            out0[c + 1] = pnn_finish(s01, mult[c + 1], shift[c + 1], out_off, act_min, act_max);
            out1[c + 1] = pnn_finish(s11, mult[c + 1], shift[c + 1], out_off, act_min, act_max);
        }
        if (c < cols)
        {
            /* last output channel: one rhs row against both columns */
            const int8_t *b0 = rhs + c * depth;
            int32_t s00 = bias ? bias[c] : 0;
            int32_t s10 = s00;
            const int16_t *p0 = a0;
            const int16_t *p1 = a1;
            for (int32_t i = depth >> 2; i > 0; i--)
            {
                uint32_t x0e, x0o, x1e, x1o;
                const uint32_t w0 = pnn_read_u32(b0);
                memcpy(&x0e, p0, 4);
                memcpy(&x0o, p0 + 2, 4);
                memcpy(&x1e, p1, 4);
                memcpy(&x1o, p1 + 2, 4);
                b0 += 4;
                p0 += 4;
                p1 += 4;
                {
                    const uint32_t we = pnn_even(w0);
                    const uint32_t wo = pnn_odd(w0);
                    s00 = pnn_smlad(x0e, we, s00);
                    s00 = pnn_smlad(x0o, wo, s00);
                    s10 = pnn_smlad(x1e, we, s10);
                    s10 = pnn_smlad(x1o, wo, s10);
                }
            }
            for (int32_t i = depth & 3; i > 0; i--)
            {
                const int32_t w0 = *b0++;
                s00 += *p0++ * w0;
                s10 += *p1++ * w0;
            }
            out0[c] = pnn_finish(s00, mult[c], shift[c], out_off, act_min, act_max);
            out1[c] = pnn_finish(s10, mult[c], shift[c], out_off, act_min, act_max);
        }
        return;
    }

    for (; c + 2 <= cols; c += 2)
    {
        const int8_t *b0 = rhs + c * depth;
        int32_t s00 = bias ? bias[c] : 0;
        int32_t s01 = bias ? bias[c + 1] : 0;
        gemm16_1x2(a0, b0, b0 + depth, depth, &s00, &s01);
        out0[c] = pnn_finish(s00, mult[c], shift[c], out_off, act_min, act_max);
        out0[c + 1] = pnn_finish(s01, mult[c + 1], shift[c + 1], out_off, act_min, act_max);
    }
    if (c < cols)
    {
        const int8_t *b0 = rhs + c * depth;
        const int16_t *p0 = a0;
        int32_t s00 = bias ? bias[c] : 0;
        for (int32_t i = depth >> 2; i > 0; i--)
        {
            uint32_t xe, xo;
            const uint32_t w0 = pnn_read_u32(b0);
            memcpy(&xe, p0, 4);
            memcpy(&xo, p0 + 2, 4);
            b0 += 4;
            p0 += 4;
            s00 = pnn_smlad(xe, pnn_even(w0), s00);
            s00 = pnn_smlad(xo, pnn_odd(w0), s00);
        }
        for (int32_t i = depth & 3; i > 0; i--)
        {
            s00 += *p0++ * *b0++;
        }
        out0[c] = pnn_finish(s00, mult[c], shift[c], out_off, act_min, act_max);
    }
}

#endif /* PNN_DSP */
