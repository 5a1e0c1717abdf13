/*
 * pnn_convolve.c -- arm_convolve_wrapper_s8, arm_convolve_s8,
 * arm_convolve_1x1_s8_fast, arm_convolve_1x1_s8, arm_convolve_1_x_n_s8.
 *
 * Generic convolution on a DSP core builds im2col columns (two at a time) in
 * the scratch buffer: the KH*KW*C_IN taps of one output pixel are first
 * gathered as int8 (padded taps get the input zero point, so that after adding
 * input_offset they contribute 0) and then widened in place to int16 with the
 * offset added.  Two columns of ceil4(K) int16 = exactly the
 * 4 * ceil4(K) bytes that CMSIS-NN's arm_convolve_s8_get_buffer_size asks for.
 * Without DSP the convolution is computed directly from the input.
 */
#include "pnn_support.h"

#if defined(PNN_DSP)
/* Widen n int8 values at src to int16 (+offset) at dst in the grouped layout
 * expected by pnn_gemm_s16_s8.  src may lie inside the destination area as
 * long as src >= (int8_t *)dst + n (reads always stay ahead of writes). */
static void widen_s8_s16(const int8_t *src, int16_t *dst, int32_t n, int32_t offset)
{
    const uint32_t off2 = pnn_pack_off(offset);
    for (int32_t i = n >> 2; i > 0; i--)
    {
        const uint32_t x = pnn_read_u32(src);
        const uint32_t e = pnn_even_off(off2, x);
        const uint32_t o = pnn_odd_off(off2, x);
        src += 4;
        memcpy(dst, &e, 4);
        memcpy(dst + 2, &o, 4);
        dst += 4;
    }
    for (int32_t i = n & 3; i > 0; i--)
    {
        const int16_t v = (int16_t)(*src++ + offset);
        *dst++ = v;
    }
}
#endif

arm_cmsis_nn_status arm_convolve_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_conv_params *conv_params,
                                    const cmsis_nn_per_channel_quant_params *quant_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const int8_t *filter_data,
                                    const cmsis_nn_dims *bias_dims,
                                    const int32_t *bias_data,
                                    const cmsis_nn_dims *upscale_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data)
{
    (void)bias_dims;
    if (ctx->buf == NULL)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    if (upscale_dims != NULL && (upscale_dims->h == 2 || upscale_dims->w == 2))
    {
        return ARM_CMSIS_NN_NO_IMPL_ERROR; /* transpose-conv helper mode not implemented */
    }

    const int32_t batches = input_dims->n;
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t in_c = input_dims->c;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t k_c = filter_dims->c;
    const int32_t out_h = output_dims->h;
    const int32_t out_w = output_dims->w;
    const int32_t out_c = output_dims->c;
    const int32_t pad_y = conv_params->padding.h;
    const int32_t pad_x = conv_params->padding.w;
    const int32_t stride_y = conv_params->stride.h;
    const int32_t stride_x = conv_params->stride.w;
    const int32_t dil_y = conv_params->dilation.h;
    const int32_t dil_x = conv_params->dilation.w;
    const int32_t in_off = conv_params->input_offset;
    const int32_t out_off = conv_params->output_offset;
    const int32_t act_min = conv_params->activation.min;
    const int32_t act_max = conv_params->activation.max;

    if (k_c <= 0 || in_c % k_c != 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const int32_t groups = in_c / k_c;
    if (out_c % groups != 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const int32_t oc_per_group = out_c / groups;
    const int32_t depth = k_h * k_w * k_c;

#if defined(PNN_DSP)
    const int32_t depth4 = (depth + 3) & ~3;
    int16_t *cols = (int16_t *)ctx->buf;
    const int8_t pad_val = (int8_t)(-in_off);

    for (int32_t b = 0; b < batches; b++)
    {
        const int8_t *in_b = input_data + b * in_h * in_w * in_c;
        int8_t *out_b = output_data + b * out_h * out_w * out_c;
        for (int32_t g = 0; g < groups; g++)
        {
            const int8_t *w_g = filter_data + g * oc_per_group * depth;
            const int32_t *bias_g = bias_data ? bias_data + g * oc_per_group : NULL;
            const int32_t *mult_g = quant_params->multiplier + g * oc_per_group;
            const int32_t *shift_g = quant_params->shift + g * oc_per_group;
            int32_t ncol = 0;
            int8_t *pending_out = out_b;
            for (int32_t oy = 0; oy < out_h; oy++)
            {
                const int32_t iy0 = oy * stride_y - pad_y;
                for (int32_t ox = 0; ox < out_w; ox++)
                {
                    const int32_t ix0 = ox * stride_x - pad_x;
                    int16_t *col = cols + ncol * depth4;
                    int8_t *stage = (int8_t *)col + depth4;
                    int8_t *dst = stage;
                    for (int32_t ky = 0; ky < k_h; ky++)
                    {
                        const int32_t iy = iy0 + ky * dil_y;
                        if (iy < 0 || iy >= in_h)
                        {
                            memset(dst, pad_val, (size_t)(k_w * k_c));
                            dst += k_w * k_c;
                            continue;
                        }
                        const int8_t *row = in_b + iy * in_w * in_c + g * k_c;
                        if (groups == 1 && dil_x == 1 && ix0 >= 0 && ix0 + k_w <= in_w)
                        {
                            memcpy(dst, row + ix0 * in_c, (size_t)(k_w * in_c));
                            dst += k_w * in_c;
                            continue;
                        }
                        for (int32_t kx = 0; kx < k_w; kx++)
                        {
                            const int32_t ix = ix0 + kx * dil_x;
                            if (ix < 0 || ix >= in_w)
                            {
                                memset(dst, pad_val, (size_t)k_c);
                            }
                            else
                            {
                                memcpy(dst, row + ix * in_c, (size_t)k_c);
                            }
                            dst += k_c;
                        }
                    }
                    widen_s8_s16(stage, col, depth, in_off);
                    if (++ncol == 2)
                    {
                        pnn_gemm_s16_s8(cols,
                                        depth4,
                                        2,
                                        w_g,
                                        oc_per_group,
                                        depth,
                                        bias_g,
                                        mult_g,
                                        shift_g,
                                        out_off,
                                        act_min,
                                        act_max,
                                        pending_out + g * oc_per_group,
                                        out_c);
                        pending_out += 2 * out_c;
                        ncol = 0;
                    }
                }
            }
            if (ncol == 1)
            {
                pnn_gemm_s16_s8(cols,
                                depth4,
                                1,
                                w_g,
                                oc_per_group,
                                depth,
                                bias_g,
                                mult_g,
                                shift_g,
                                out_off,
                                act_min,
                                act_max,
                                pending_out + g * oc_per_group,
                                out_c);
            }
        }
    }
#else
    for (int32_t b = 0; b < batches; b++)
    {
        const int8_t *in_b = input_data + b * in_h * in_w * in_c;
        int8_t *out_p = output_data + b * out_h * out_w * out_c;
        for (int32_t oy = 0; oy < out_h; oy++)
        {
            const int32_t iy0 = oy * stride_y - pad_y;
            for (int32_t ox = 0; ox < out_w; ox++)
            {
                const int32_t ix0 = ox * stride_x - pad_x;
                for (int32_t oc = 0; oc < out_c; oc++)
                {
                    const int32_t g = oc / oc_per_group;
                    const int8_t *w = filter_data + oc * depth;
                    int32_t acc = bias_data ? bias_data[oc] : 0;
                    for (int32_t ky = 0; ky < k_h; ky++)
                    {
                        const int32_t iy = iy0 + ky * dil_y;
                        if (iy < 0 || iy >= in_h)
                        {
                            continue;
                        }
                        for (int32_t kx = 0; kx < k_w; kx++)
                        {
                            const int32_t ix = ix0 + kx * dil_x;
                            if (ix < 0 || ix >= in_w)
                            {
                                continue;
                            }
                            const int8_t *x = in_b + (iy * in_w + ix) * in_c + g * k_c;
                            const int8_t *wk = w + (ky * k_w + kx) * k_c;
                            for (int32_t ic = 0; ic < k_c; ic++)
                            {
                                acc += (x[ic] + in_off) * wk[ic];
                            }
                        }
                    }
                    *out_p++ = pnn_finish(acc,
                                          quant_params->multiplier[oc],
                                          quant_params->shift[oc],
                                          out_off,
                                          act_min,
                                          act_max);
                }
            }
        }
    }
#endif
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_convolve_1x1_s8_fast(const cmsis_nn_context *ctx,
                                             const cmsis_nn_conv_params *conv_params,
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
    (void)filter_dims;
    (void)bias_dims;
    if (conv_params->padding.w != 0 || conv_params->padding.h != 0 || conv_params->stride.w != 1 ||
        conv_params->stride.h != 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const int32_t in_c = input_dims->c;
    const int32_t out_c = output_dims->c;
    const int32_t pixels = input_dims->n * input_dims->h * input_dims->w;
    pnn_gemm_s8(input_data,
                in_c,
                pixels,
                filter_data,
                out_c,
                in_c,
                conv_params->input_offset,
                0,
                bias_data,
                quant_params->multiplier,
                quant_params->shift,
                1,
                conv_params->output_offset,
                conv_params->activation.min,
                conv_params->activation.max,
                output_data,
                out_c);
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_convolve_1x1_s8(const cmsis_nn_context *ctx,
                                        const cmsis_nn_conv_params *conv_params,
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
    (void)filter_dims;
    (void)bias_dims;
    if (conv_params->padding.w != 0 || conv_params->padding.h != 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    const int32_t in_c = input_dims->c;
    const int32_t out_c = output_dims->c;
    const int32_t out_h = output_dims->h;
    const int32_t out_w = output_dims->w;
    for (int32_t b = 0; b < input_dims->n; b++)
    {
        const int8_t *in_b = input_data + b * input_dims->h * input_dims->w * in_c;
        for (int32_t oy = 0; oy < out_h; oy++)
        {
            pnn_gemm_s8(in_b + oy * conv_params->stride.h * input_dims->w * in_c,
                        conv_params->stride.w * in_c,
                        out_w,
                        filter_data,
                        out_c,
                        in_c,
                        conv_params->input_offset,
                        0,
                        bias_data,
                        quant_params->multiplier,
                        quant_params->shift,
                        1,
                        conv_params->output_offset,
                        conv_params->activation.min,
                        conv_params->activation.max,
                        output_data,
                        out_c);
            output_data += out_w * out_c;
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_convolve_1_x_n_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_conv_params *conv_params,
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
    if (input_dims->h != 1 || conv_params->dilation.w != 1 || ctx->buf == NULL || conv_params->stride.w == 0 ||
        (conv_params->stride.w * input_dims->c) % 4 != 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    return arm_convolve_s8(ctx,
                           conv_params,
                           quant_params,
                           input_dims,
                           input_data,
                           filter_dims,
                           filter_data,
                           bias_dims,
                           bias_data,
                           NULL,
                           output_dims,
                           output_data);
}

arm_cmsis_nn_status arm_convolve_wrapper_s8(const cmsis_nn_context *ctx,
                                            const cmsis_nn_conv_params *conv_params,
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
    const int dilation_1 = conv_params->dilation.w == 1 && conv_params->dilation.h == 1;
    if (conv_params->padding.w == 0 && conv_params->padding.h == 0 && filter_dims->w == 1 && filter_dims->h == 1 &&
        dilation_1 && input_dims->c == filter_dims->c)
    {
        if (conv_params->stride.w == 1 && conv_params->stride.h == 1)
        {
            return arm_convolve_1x1_s8_fast(ctx,
                                            conv_params,
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
        return arm_convolve_1x1_s8(ctx,
                                   conv_params,
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
    if (input_dims->h == 1 && conv_params->dilation.w == 1 && filter_dims->h == 1 &&
        (conv_params->stride.w * input_dims->c) % 4 == 0 && input_dims->c == filter_dims->c)
    {
        return arm_convolve_1_x_n_s8(ctx,
                                     conv_params,
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
    return arm_convolve_s8(ctx,
                           conv_params,
                           quant_params,
                           input_dims,
                           input_data,
                           filter_dims,
                           filter_data,
                           bias_dims,
                           bias_data,
                           NULL,
                           output_dims,
                           output_data);
}
