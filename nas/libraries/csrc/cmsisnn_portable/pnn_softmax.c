/*
 * pnn_softmax.c -- arm_softmax_s8, bit-exact with TFLM's int8 softmax
 * (gemmlowp fixed-point arithmetic), output scale 1/256, zero point -128.
 *
 * Per row:
 *   d      = x - max(row)                         (d <= 0)
 *   e(d)   = exp(d * beta * s_in) in Q0.31, evaluated as
 *            exp_on_negative_values(SRDHM(d * 2^shift, mult))  (input Q5.26)
 *   sum    = sum over d >= diff_min of RoundingDivideByPOT(e(d), 12)   (Q12.19)
 *   recip  = 1 / sum, as one_over_one_plus_x of the normalised sum
 *   y      = RoundingDivideByPOT(SRDHM(recip, e(d)), 35 - clz(sum)) - 128
 * Elements with d < diff_min give -128.  Valid for row_size < 512 (larger rows
 * would need shifts of 32 bits or more, undefined in the reference too).
 */
#include "pnn_support.h"

#define PNN_ACCUM_BITS 12

/* x * 2^exponent with saturation (gemmlowp SaturatingRoundingMultiplyByPOT,
 * positive exponent). */
PNN_INLINE int32_t mul_pow2_sat(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold)
    {
        return NN_Q31_MAX;
    }
    if (x < -threshold)
    {
        return NN_Q31_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), a and result in Q0.31: Taylor expansion of
 * exp(x) around -1/8 up to the 4th order (gemmlowp). */
static int32_t exp_quarter(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* round(exp(-1/8) * 2^31) */
    const int32_t one_third = 715827883;             /* round(2^31 / 3) */
    const int32_t x = a + (1 << 28);                 /* a + 1/8 */
    const int32_t x2 = pnn_sat_high_mul(x, x);
    const int32_t x3 = pnn_sat_high_mul(x2, x);
    const int32_t x4 = pnn_sat_high_mul(x2, x2);
    const int32_t x4_over_4 = pnn_div_pow2(x4, 2);
    const int32_t poly = pnn_div_pow2(pnn_sat_high_mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + pnn_sat_high_mul(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26; result Q0.31. */
static int32_t exp_on_negative(int32_t a)
{
    /* round(exp(-2^k) * 2^31) for k = -2 .. 4 */
    static const int32_t factors[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t quarter = 1 << 24;
    const int32_t a_mod_minus_quarter = (a & (quarter - 1)) - quarter; /* in [-1/4, 0) */
    const int32_t remainder = a_mod_minus_quarter - a;                 /* multiple of 1/4, >= 0 */
    int32_t result = exp_quarter((int32_t)((uint32_t)a_mod_minus_quarter << 5));
    for (int32_t k = 0; k < 7; k++)
    {
        if (remainder & (1 << (24 + k)))
        {
            result = pnn_sat_high_mul(result, factors[k]);
        }
    }
    return a == 0 ? NN_Q31_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1) given in Q0.31; result in Q0.31 (saturating).
 * Three Newton-Raphson steps on the half denominator in Q2.29 (gemmlowp). */
static int32_t one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + (int64_t)NN_Q31_MAX;
    const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t c48_17 = 1515870810;     /* 48/17 in Q2.29 */
    const int32_t cneg32_17 = -1010580540; /* -32/17 in Q2.29 */
    const int32_t one_q29 = 1 << 29;
    int32_t x = c48_17 + pnn_sat_high_mul(half_den, cneg32_17);
    for (int32_t i = 0; i < 3; i++)
    {
        const int32_t err = one_q29 - pnn_sat_high_mul(half_den, x);
        x += mul_pow2_sat(pnn_sat_high_mul(x, err), 2);
    }
    return mul_pow2_sat(x, 1);
}

PNN_INLINE int32_t count_leading_zeros(uint32_t v)
{
#if defined(__GNUC__)
    return v ? (int32_t)__builtin_clz(v) : 32;
#else
    int32_t n = 0;
    if (v == 0)
    {
        return 32;
    }
    while (!(v & 0x80000000u))
    {
        v <<= 1;
        n++;
    }
    return n;
#endif
}

void arm_softmax_s8(const int8_t *input,
                    const int32_t num_rows,
                    const int32_t row_size,
                    const int32_t mult,
                    const int32_t shift,
                    const int32_t diff_min,
                    int8_t *output)
{
    for (int32_t r = 0; r < num_rows; r++)
    {
        int32_t max = input[0];
        for (int32_t i = 1; i < row_size; i++)
        {
            max = PNN_MAX(max, (int32_t)input[i]);
        }

        int32_t sum = 0;
        for (int32_t i = 0; i < row_size; i++)
        {
            const int32_t d = input[i] - max;
            if (d >= diff_min)
            {
                const int32_t scaled = pnn_sat_high_mul((int32_t)((uint32_t)d << shift), mult);
                sum += pnn_div_pow2(exp_on_negative(scaled), PNN_ACCUM_BITS);
            }
        }

        const int32_t headroom = count_leading_zeros((uint32_t)sum);
        /* normalised sum in [1, 2) as Q0.31 of (sum' - 1) */
        const uint32_t norm = sum > 0 ? ((uint32_t)sum << headroom) : 0u;
        const int32_t recip = one_over_one_plus_x((int32_t)(norm - 0x80000000u));
        const int32_t bits_over_unit = PNN_ACCUM_BITS - headroom + 23;

        for (int32_t i = 0; i < row_size; i++)
        {
            const int32_t d = input[i] - max;
            int32_t res = NN_Q7_MIN;
            if (d >= diff_min)
            {
                const int32_t scaled = pnn_sat_high_mul((int32_t)((uint32_t)d << shift), mult);
                res = pnn_div_pow2(pnn_sat_high_mul(recip, exp_on_negative(scaled)), bits_over_unit) + NN_Q7_MIN;
                res = PNN_MAX(res, (int32_t)NN_Q7_MIN);
                res = PNN_MIN(res, (int32_t)NN_Q7_MAX);
            }
            output[i] = (int8_t)res;
        }
        input += row_size;
        output += row_size;
    }
}
