/*
 * nas_depthwise.c -- nas_depthwise_conv_s8: depthwise convolution, channel multiplier 1.
 *
 * CMSIS-NN's kernels multiply one tap of four channels per step (one MAC per instruction) and
 * widen every input word again for every output pixel. Here four channels at a time are
 * transposed out of the HWC input into four planes (per two input pixels: two word loads, four
 * SXTAB16, four halfword packs, four word stores; once per input row), and each plane runs the
 * plane engine of nas_plane.c: two taps per SMLAD, four output pixels sharing their loads,
 * requantisation constants hoisted per channel.
 *
 * Scratch: for four channels their requantisation constants and widened weights, four rings.
 */
#include "nas_kernels_internal.h"

typedef struct
{
    nas_chan *chan;
    int16_t *w;
    int16_t *ring;
} dw_scratch;

static int32_t dw_bytes(const nas_geom *g, dw_scratch *s, void *buf)
{
    const int32_t head = 4 * (int32_t)sizeof(nas_chan);
    if (s != NULL)
    {
        s->chan = (nas_chan *)buf;
        s->w = (int16_t *)(void *)((int8_t *)buf + head);
        s->ring = s->w + 4 * nas_weight_elems(g);
    }
    return head + 4 * (nas_weight_elems(g) + nas_ring_elems(g)) * 2;
}

static int32_t dw_geom(nas_geom *g,
                       const cmsis_nn_dw_conv_params *p,
                       const cmsis_nn_dims *input_dims,
                       const cmsis_nn_dims *filter_dims,
                       const cmsis_nn_dims *output_dims)
{
    if (p->ch_mult != 1 || input_dims->c != output_dims->c || filter_dims->c != output_dims->c ||
        output_dims->c < 1)
    {
        return -1;
    }
    return nas_geom_init(g, input_dims, filter_dims, output_dims, &p->stride, &p->padding, &p->dilation);
}

int32_t nas_depthwise_conv_s8_get_buffer_size(const cmsis_nn_dw_conv_params *dw_conv_params,
                                              const cmsis_nn_dims *input_dims,
                                              const cmsis_nn_dims *filter_dims,
                                              const cmsis_nn_dims *output_dims)
{
    nas_geom g;
    if (dw_geom(&g, dw_conv_params, input_dims, filter_dims, output_dims) != 0)
    {
        return 0;
    }
    return dw_bytes(&g, NULL, NULL);
}

/* One input row (HWC, c channels from src) into the rings of n planes at element d of each. */
static void dw_fill(int16_t *d, int32_t plane, const int8_t *src, int32_t c, int32_t n, int32_t cols, int32_t off)
{
    int32_t i = 0;
#if defined(NAS_DSP)
    if (n == 4)
    {
        const uint32_t off2 = ((uint32_t)off & 0xFFFFu) * 0x10001u;
        if (((uintptr_t)d & 2u) != 0 && cols > 0)
        {
            for (int32_t p = 0; p < 4; p++)
            {
                d[p * plane] = (int16_t)(src[p] + off);
            }
            src += c;
            d++;
            i++;
        }
        for (; i + 2 <= cols; i += 2)
        {
            uint32_t x0, x1;
            memcpy(&x0, src, 4);
            memcpy(&x1, src + c, 4);
            src += 2 * c;
            {
                const uint32_t e0 = __sxtab16(off2, x0), o0 = __sxtab16(off2, (x0 >> 8) | (x0 << 24));
                const uint32_t e1 = __sxtab16(off2, x1), o1 = __sxtab16(off2, (x1 >> 8) | (x1 << 24));
                const uint32_t p0 = (e0 & 0xFFFFu) | (e1 << 16), p2 = (e1 & 0xFFFF0000u) | (e0 >> 16);
                const uint32_t p1 = (o0 & 0xFFFFu) | (o1 << 16), p3 = (o1 & 0xFFFF0000u) | (o0 >> 16);
                memcpy(d, &p0, 4);
                memcpy(d + plane, &p1, 4);
                memcpy(d + 2 * plane, &p2, 4);
                memcpy(d + 3 * plane, &p3, 4);
            }
            d += 2;
        }
    }
#endif
    for (; i < cols; i++)
    {
        for (int32_t p = 0; p < n; p++)
        {
            d[p * plane] = (int16_t)(src[p] + off);
        }
        src += c;
        d++;
    }
}

arm_cmsis_nn_status nas_depthwise_conv_s8(const cmsis_nn_context *ctx,
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
    nas_geom g;
    dw_scratch s;
    (void)bias_dims;
    if (dw_geom(&g, dw_conv_params, input_dims, filter_dims, output_dims) != 0 || ctx->buf == NULL ||
        ctx->size < dw_bytes(&g, NULL, NULL))
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    dw_bytes(&g, &s, ctx->buf);
    {
        const int32_t ch = input_dims->c;
        const int32_t taps = g.kh * g.kw;
        const int32_t we = nas_weight_elems(&g);
        const int32_t plane = nas_ring_elems(&g);
        const nas_out o = {dw_conv_params->output_offset, dw_conv_params->activation.min,
                           dw_conv_params->activation.max};
        memset(s.ring, 0, (size_t)plane * 4 * 2);
        for (int32_t c0 = 0; c0 < ch; c0 += 4)
        {
            const int32_t n = ch - c0 < 4 ? ch - c0 : 4;
            int32_t filled = 0;
            for (int32_t p = 0; p < n; p++)
            {
                nas_chan_init(&s.chan[p],
                              bias_data ? bias_data[c0 + p] : 0,
                              quant_params->multiplier[c0 + p],
                              quant_params->shift[c0 + p],
                              o.off,
                              taps);
                nas_widen_weights(&g, filter_data + c0 + p, ch, s.w + p * we);
            }
            for (int32_t oy = 0; oy < g.out_h; oy++)
            {
                nas_rows r;
                nas_ring_rows(&g, oy, &filled, &r);
                for (int32_t iy = r.fill0; iy < r.fill1; iy++)
                {
                    dw_fill(s.ring + (iy % g.kh) * g.rw + g.lead, plane, input_data + iy * g.in_w * ch + c0, ch, n,
                            g.cols, dw_conv_params->input_offset);
                }
                for (int32_t p = 0; p < n; p++)
                {
                    nas_plane_row(&g,
                                  s.ring + p * plane,
                                  &r,
                                  s.w + p * we + r.ky0 * 2 * g.np,
                                  &s.chan[p],
                                  &o,
                                  output_data + oy * g.out_w * ch + c0 + p,
                                  ch);
                }
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}
