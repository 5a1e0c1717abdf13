/*
 * pnn_depthwise.c -- arm_depthwise_conv_wrapper_s8, arm_depthwise_conv_s8,
 * arm_depthwise_conv_3x3_s8, arm_depthwise_conv_s8_opt.
 *
 * Generic kernel: direct loops, any channel multiplier / dilation / batch.
 * ch_mult == 1 on a DSP core: four channels at a time; one LDR brings four
 * input bytes, SXTAB16 widens them (with the offset) into {c0,c2} / {c1,c3}
 * int16 pairs, and SMLABB / SMLATT accumulate each channel separately.
 * No scratch buffer is used, although the wrapper's size functions report what
 * CMSIS-NN needs, so that a buffer sized for the real library always fits.
 */
#include "pnn_support.h"

static void dw_generic(const cmsis_nn_dw_conv_params *p,
                       const cmsis_nn_per_channel_quant_params *q,
                       const cmsis_nn_dims *input_dims,
                       const int8_t *input,
                       const cmsis_nn_dims *filter_dims,
                       const int8_t *kernel,
                       const int32_t *bias,
                       const cmsis_nn_dims *output_dims,
                       int8_t *output)
{
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t in_c = input_dims->c;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t ch_mult = p->ch_mult;
    const int32_t out_c = in_c * ch_mult;
    const int32_t in_off = p->input_offset;

    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *in_b = input + b * in_h * in_w * in_c;
        for (int32_t oy = 0; oy < output_dims->h; oy++)
        {
            const int32_t iy0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < output_dims->w; ox++)
            {
                const int32_t ix0 = ox * p->stride.w - p->padding.w;
                for (int32_t ic = 0; ic < in_c; ic++)
                {
                    for (int32_t m = 0; m < ch_mult; m++)
                    {
                        const int32_t oc = ic * ch_mult + m;
                        int32_t acc = bias ? bias[oc] : 0;
                        for (int32_t ky = 0; ky < k_h; ky++)
                        {
                            const int32_t iy = iy0 + ky * p->dilation.h;
                            if (iy < 0 || iy >= in_h)
                            {
                                continue;
                            }
                            for (int32_t kx = 0; kx < k_w; kx++)
                            {
                                const int32_t ix = ix0 + kx * p->dilation.w;
                                if (ix < 0 || ix >= in_w)
                                {
                                    continue;
                                }
                                acc += (in_b[(iy * in_w + ix) * in_c + ic] + in_off) *
                                    kernel[(ky * k_w + kx) * out_c + oc];
                            }
                        }
                        *output++ = pnn_finish(acc,
                                               q->multiplier[oc],
                                               q->shift[oc],
                                               p->output_offset,
                                               p->activation.min,
                                               p->activation.max);
                    }
                }
            }
        }
    }
}

#if defined(PNN_DSP)
/* One filter tap for four consecutive channels: acc[c] += (x[c] + off) * w[c]. */
PNN_INLINE void dw_tap4(const int8_t *ip,
                        const int8_t *kp,
                        uint32_t off2,
                        int32_t *a0,
                        int32_t *a1,
                        int32_t *a2,
                        int32_t *a3)
{
    const uint32_t x = pnn_read_u32(ip);
    const uint32_t w = pnn_read_u32(kp);
    const int32_t xe = (int32_t)pnn_even_off(off2, x);
    const int32_t xo = (int32_t)pnn_odd_off(off2, x);
    const int32_t we = (int32_t)pnn_even(w);
    const int32_t wo = (int32_t)pnn_odd(w);
    *a0 = __smlabb(xe, we, *a0);
    *a2 = __smlatt(xe, we, *a2);
    *a1 = __smlabb(xo, wo, *a1);
    *a3 = __smlatt(xo, wo, *a3);
}

/* ch_mult == 1, dilation 1, any batch / kernel size / padding / stride. */
static void dw_mult1_dsp(const cmsis_nn_dw_conv_params *p,
                         const cmsis_nn_per_channel_quant_params *q,
                         const cmsis_nn_dims *input_dims,
                         const int8_t *input,
                         const cmsis_nn_dims *filter_dims,
                         const int8_t *kernel,
                         const int32_t *bias,
                         const cmsis_nn_dims *output_dims,
                         int8_t *output)
{
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t chans = input_dims->c;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t in_off = p->input_offset;
    const int32_t out_off = p->output_offset;
    const int32_t act_min = p->activation.min;
    const int32_t act_max = p->activation.max;
    const uint32_t off2 = pnn_pack_off(in_off);
    const int32_t *mult = q->multiplier;
    const int32_t *shift = q->shift;

    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *in_b = input + b * in_h * in_w * chans;
        for (int32_t oy = 0; oy < output_dims->h; oy++)
        {
            const int32_t iy0 = oy * p->stride.h - p->padding.h;
            const int32_t ky0 = PNN_MAX(0, -iy0);
            const int32_t ky1 = PNN_MIN(k_h, in_h - iy0);
            for (int32_t ox = 0; ox < output_dims->w; ox++)
            {
                const int32_t ix0 = ox * p->stride.w - p->padding.w;
                const int32_t kx0 = PNN_MAX(0, -ix0);
                const int32_t kx1 = PNN_MIN(k_w, in_w - ix0);
                const int32_t taps_x = kx1 - kx0;
                const int8_t *in_start = in_b + ((iy0 + ky0) * in_w + ix0 + kx0) * chans;
                const int8_t *k_start = kernel + (ky0 * k_w + kx0) * chans;
                int32_t c = 0;
                for (; c + 4 <= chans; c += 4)
                {
                    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                    if (bias)
                    {
                        a0 = bias[c];
                        a1 = bias[c + 1];
                        a2 = bias[c + 2];
                        a3 = bias[c + 3];
                    }
                    const int8_t *in_row = in_start + c;
                    const int8_t *k_row = k_start + c;
                    for (int32_t ky = ky0; ky < ky1; ky++)
                    {
                        const int8_t *ip = in_row;
                        const int8_t *kp = k_row;
                        if (taps_x == 3)
                        {
                            /* the common 3-tap row, unrolled */
                            dw_tap4(ip, kp, off2, &a0, &a1, &a2, &a3);
                            dw_tap4(ip + chans, kp + chans, off2, &a0, &a1, &a2, &a3);
                            dw_tap4(ip + 2 * chans, kp + 2 * chans, off2, &a0, &a1, &a2, &a3);
                        }
                        else
                        {
                            for (int32_t n = taps_x; n > 0; n--)
                            {
                                dw_tap4(ip, kp, off2, &a0, &a1, &a2, &a3);
                                ip += chans;
                                kp += chans;
                            }
                        }
                        in_row += in_w * chans;
                        k_row += k_w * chans;
                    }
                    output[0] = pnn_finish(a0, mult[c], shift[c], out_off, act_min, act_max);
                    output[1] = pnn_finish(a1, mult[c + 1], shift[c + 1], out_off, act_min, act_max);
                    output[2] = pnn_finish(a2, mult[c + 2], shift[c + 2], out_off, act_min, act_max);
                    output[3] = pnn_finish(a3, mult[c + 3], shift[c + 3], out_off, act_min, act_max);
                    output += 4;
                }
                for (; c < chans; c++)
                {
                    int32_t acc = bias ? bias[c] : 0;
                    const int8_t *in_row = in_start + c;
                    const int8_t *k_row = k_start + c;
                    for (int32_t ky = ky0; ky < ky1; ky++)
                    {
                        for (int32_t n = 0; n < taps_x; n++)
                        {
                            acc += (in_row[n * chans] + in_off) * k_row[n * chans];
                        }
                        in_row += in_w * chans;
                        k_row += k_w * chans;
                    }
                    *output++ = pnn_finish(acc, mult[c], shift[c], out_off, act_min, act_max);
                }
            }
        }
    }
}
#endif

/* ch_mult == 1 path shared by the 3x3 and opt entry points. */
static void dw_mult1(const cmsis_nn_dw_conv_params *p,
                     const cmsis_nn_per_channel_quant_params *q,
                     const cmsis_nn_dims *input_dims,
                     const int8_t *input,
                     const cmsis_nn_dims *filter_dims,
                     const int8_t *kernel,
                     const int32_t *bias,
                     const cmsis_nn_dims *output_dims,
                     int8_t *output)
{
#if defined(PNN_DSP)
    if (p->dilation.w == 1 && p->dilation.h == 1 && p->ch_mult == 1)
    {
        dw_mult1_dsp(p, q, input_dims, input, filter_dims, kernel, bias, output_dims, output);
        return;
    }
#endif
    dw_generic(p, q, input_dims, input, filter_dims, kernel, bias, output_dims, output);
}

arm_cmsis_nn_status arm_depthwise_conv_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_dw_conv_params *dw_conv_params,
                                          const cmsis_nn_per_channel_quant_params *quant_params,
                                          const cmsis_nn_dims *input_dims,
                                          const int8_t *input_data,
                                          const cmsis_nn_dims *filter_dims,
                                          const int8_t *filter_data,
                                          const cmsis_nn_dims *bias_dims,
                                          const int32_t *bias_data,
                                          const cmsis_nn_dims *output_dims,
                                          int8_t *output_data)
{
    (void)ctx;
    (void)bias_dims;
    dw_generic(dw_conv_params,
               quant_params,
               input_dims,
               input_data,
               filter_dims,
               filter_data,
               bias_data,
               output_dims,
               output_data);
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_depthwise_conv_3x3_s8(const cmsis_nn_context *ctx,
                                              const cmsis_nn_dw_conv_params *dw_conv_params,
                                              const cmsis_nn_per_channel_quant_params *quant_params,
                                              const cmsis_nn_dims *input_dims,
                                              const int8_t *input_data,
                                              const cmsis_nn_dims *filter_dims,
                                              const int8_t *filter_data,
                                              const cmsis_nn_dims *bias_dims,
                                              const int32_t *bias_data,
                                              const cmsis_nn_dims *output_dims,
                                              int8_t *output_data)
{
    (void)ctx;
    (void)bias_dims;
    if (input_dims->c != output_dims->c)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    if (dw_conv_params->padding.w > 1 || filter_dims->w != 3 || filter_dims->h != 3)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    dw_mult1(dw_conv_params,
             quant_params,
             input_dims,
             input_data,
             filter_dims,
             filter_data,
             bias_data,
             output_dims,
             output_data);
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_depthwise_conv_s8_opt(const cmsis_nn_context *ctx,
                                              const cmsis_nn_dw_conv_params *dw_conv_params,
                                              const cmsis_nn_per_channel_quant_params *quant_params,
                                              const cmsis_nn_dims *input_dims,
                                              const int8_t *input_data,
                                              const cmsis_nn_dims *filter_dims,
                                              const int8_t *filter_data,
                                              const cmsis_nn_dims *bias_dims,
                                              const int32_t *bias_data,
                                              const cmsis_nn_dims *output_dims,
                                              int8_t *output_data)
{
    (void)bias_dims;
    if (input_dims->c != output_dims->c)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    if (ctx->buf == NULL && arm_depthwise_conv_s8_opt_get_buffer_size(input_dims, filter_dims) > 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    dw_mult1(dw_conv_params,
             quant_params,
             input_dims,
             input_data,
             filter_dims,
             filter_data,
             bias_data,
             output_dims,
             output_data);
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx,
                                                  const cmsis_nn_dw_conv_params *dw_conv_params,
                                                  const cmsis_nn_per_channel_quant_params *quant_params,
                                                  const cmsis_nn_dims *input_dims,
                                                  const int8_t *input_data,
                                                  const cmsis_nn_dims *filter_dims,
                                                  const int8_t *filter_data,
                                                  const cmsis_nn_dims *bias_dims,
                                                  const int32_t *bias_data,
                                                  const cmsis_nn_dims *output_dims,
                                                  int8_t *output_data)
{
    if (dw_conv_params->ch_mult == 1 && input_dims->n == 1 && dw_conv_params->dilation.w == 1 &&
        dw_conv_params->dilation.h == 1)
    {
        if (filter_dims->w == 3 && filter_dims->h == 3 && dw_conv_params->padding.h <= 1 &&
            dw_conv_params->padding.w <= 1)
        {
            return arm_depthwise_conv_3x3_s8(ctx,
                                             dw_conv_params,
                                             quant_params,
                                             input_dims,
                                             input_data,
                                             filter_dims,
                                             filter_data,
                                             bias_dims,
                                             bias_data,
                                             output_dims,
                                             output_data);
        }
        return arm_depthwise_conv_s8_opt(ctx,
                                         dw_conv_params,
                                         quant_params,
                                         input_dims,
                                         input_data,
                                         filter_dims,
                                         filter_data,
                                         bias_dims,
                                         bias_data,
                                         output_dims,
                                         output_data);
    }
    return arm_depthwise_conv_s8(ctx,
                                 dw_conv_params,
                                 quant_params,
                                 input_dims,
                                 input_data,
                                 filter_dims,
                                 filter_data,
                                 bias_dims,
                                 bias_data,
                                 output_dims,
                                 output_data);
}
