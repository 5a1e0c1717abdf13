/*
 * pnn_pooling.c -- arm_max_pool_s8 and arm_avgpool_s8.
 *
 * Both pool over the in-bounds taps of each window only (padding is never
 * counted), then clamp to the activation range.  Average rounding is
 * (sum +/- count/2) / count with C truncating division (half away from zero).
 * On a DSP target the average uses the 4*C_IN byte scratch buffer that the
 * real library requires (ARG_ERROR when it is missing), so that code sized for
 * CMSIS-NN behaves identically here.
 */
#include "pnn_support.h"

/* dst[i] = max(dst[i], src[i]) for n int8 values */
static void max_in_place(int8_t *dst, const int8_t *src, int32_t n)
{
#if defined(PNN_DSP)
    for (; n >= 4; n -= 4)
    {
        const uint32_t a = pnn_read_u32((const int8_t *)dst);
        const uint32_t b = pnn_read_u32(src);
        (void)__ssub8(a, b); /* sets GE[i] where a[i] >= b[i] */
        pnn_write_u32(dst, __sel(a, b));
        dst += 4;
        src += 4;
    }
#endif
    for (; n > 0; n--)
    {
        if (*src > *dst)
        {
            *dst = *src;
        }
        dst++;
        src++;
    }
}

arm_cmsis_nn_status arm_max_pool_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_pool_params *pool_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data)
{
    (void)ctx;
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t chans = input_dims->c;
    const int32_t act_min = pool_params->activation.min;
    const int32_t act_max = pool_params->activation.max;

    if (input_dims->n < 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *in_b = input_data + b * in_h * in_w * chans;
        for (int32_t oy = 0; oy < output_dims->h; oy++)
        {
            const int32_t iy0 = oy * pool_params->stride.h - pool_params->padding.h;
            const int32_t ky0 = PNN_MAX(0, -iy0);
            const int32_t ky1 = PNN_MIN(filter_dims->h, in_h - iy0);
            for (int32_t ox = 0; ox < output_dims->w; ox++)
            {
                const int32_t ix0 = ox * pool_params->stride.w - pool_params->padding.w;
                const int32_t kx0 = PNN_MAX(0, -ix0);
                const int32_t kx1 = PNN_MIN(filter_dims->w, in_w - ix0);
                int first = 1;
                for (int32_t ky = ky0; ky < ky1; ky++)
                {
                    for (int32_t kx = kx0; kx < kx1; kx++)
                    {
                        const int8_t *src = in_b + ((iy0 + ky) * in_w + ix0 + kx) * chans;
                        if (first)
                        {
                            memcpy(output_data, src, (size_t)chans);
                            first = 0;
                        }
                        else
                        {
                            max_in_place(output_data, src, chans);
                        }
                    }
                }
                for (int32_t c = 0; c < chans; c++)
                {
                    int32_t v = output_data[c];
                    v = PNN_MAX(v, act_min);
                    v = PNN_MIN(v, act_max);
                    output_data[c] = (int8_t)v;
                }
                output_data += chans;
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

PNN_INLINE int8_t avg_finish(int32_t sum, int32_t count, int32_t act_min, int32_t act_max)
{
    const int32_t half = count / 2;
    int32_t v = (sum > 0 ? sum + half : sum - half) / count;
    v = PNN_MAX(v, act_min);
    v = PNN_MIN(v, act_max);
    return (int8_t)v;
}

arm_cmsis_nn_status arm_avgpool_s8(const cmsis_nn_context *ctx,
                                   const cmsis_nn_pool_params *pool_params,
                                   const cmsis_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const cmsis_nn_dims *filter_dims,
                                   const cmsis_nn_dims *output_dims,
                                   int8_t *output_data)
{
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t chans = input_dims->c;
    const int32_t act_min = pool_params->activation.min;
    const int32_t act_max = pool_params->activation.max;

    if (input_dims->n < 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    if (ctx->buf == NULL && arm_avgpool_s8_get_buffer_size(output_dims->w, input_dims->c) > 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *in_b = input_data + b * in_h * in_w * chans;
        for (int32_t oy = 0; oy < output_dims->h; oy++)
        {
            const int32_t iy0 = oy * pool_params->stride.h - pool_params->padding.h;
            const int32_t ky0 = PNN_MAX(0, -iy0);
            const int32_t ky1 = PNN_MIN(filter_dims->h, in_h - iy0);
            for (int32_t ox = 0; ox < output_dims->w; ox++)
            {
                const int32_t ix0 = ox * pool_params->stride.w - pool_params->padding.w;
                const int32_t kx0 = PNN_MAX(0, -ix0);
                const int32_t kx1 = PNN_MIN(filter_dims->w, in_w - ix0);
                const int32_t count = PNN_MAX(0, ky1 - ky0) * PNN_MAX(0, kx1 - kx0);
                if (count == 0)
                {
                    return ARM_CMSIS_NN_ARG_ERROR;
                }
#if defined(ARM_MATH_DSP)
                /* taps outer, channels inner: contiguous reads, int32 sums in scratch */
                int32_t *sums = (int32_t *)ctx->buf;
                for (int32_t c = 0; c < chans; c++)
                {
                    sums[c] = 0;
                }
                for (int32_t ky = ky0; ky < ky1; ky++)
                {
                    for (int32_t kx = kx0; kx < kx1; kx++)
                    {
                        const int8_t *src = in_b + ((iy0 + ky) * in_w + ix0 + kx) * chans;
                        for (int32_t c = 0; c < chans; c++)
                        {
                            sums[c] += src[c];
                        }
                    }
                }
                for (int32_t c = 0; c < chans; c++)
                {
                    output_data[c] = avg_finish(sums[c], count, act_min, act_max);
                }
#else
                for (int32_t c = 0; c < chans; c++)
                {
                    int32_t sum = 0;
                    for (int32_t ky = ky0; ky < ky1; ky++)
                    {
                        const int8_t *src = in_b + ((iy0 + ky) * in_w + ix0 + kx0) * chans + c;
                        for (int32_t kx = kx0; kx < kx1; kx++)
                        {
                            sum += *src;
                            src += chans;
                        }
                    }
                    output_data[c] = avg_finish(sum, count, act_min, act_max);
                }
#endif
                output_data += chans;
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}
