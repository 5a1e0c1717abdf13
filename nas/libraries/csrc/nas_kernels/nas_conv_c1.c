/*
 * nas_conv_c1.c -- nas_convolve_c1_s8: convolution of a one-channel input (the spectrogram).
 *
 * CMSIS-NN builds an im2col column of kh * kw single bytes per output pixel for this layer and
 * multiplies it with every filter; here the one input plane is widened once per input row into a
 * ring of kh int16 rows, and for each output row every output channel runs the plane engine over
 * it (nas_plane.c: blocks of four pixels, two taps per SMLAD, requantisation constants hoisted).
 *
 * Scratch: per output channel its requantisation constants and widened weights, then the ring.
 */
#include "nas_kernels_internal.h"

typedef struct
{
    nas_chan *chan;
    int16_t *w;
    int16_t *ring;
} c1_scratch;

static int32_t c1_bytes(const nas_geom *g, int32_t out_c, c1_scratch *s, void *buf)
{
    const int32_t head = out_c * (int32_t)sizeof(nas_chan);
    if (s != NULL)
    {
        s->chan = (nas_chan *)buf;
        s->w = (int16_t *)(void *)((int8_t *)buf + head);
        s->ring = s->w + out_c * nas_weight_elems(g);
    }
    return head + (out_c * nas_weight_elems(g) + nas_ring_elems(g)) * 2;
}

static int32_t c1_geom(nas_geom *g,
                       const cmsis_nn_conv_params *p,
                       const cmsis_nn_dims *input_dims,
                       const cmsis_nn_dims *filter_dims,
                       const cmsis_nn_dims *output_dims)
{
    if (input_dims->c != 1 || filter_dims->c != 1 || filter_dims->n != output_dims->c || output_dims->c < 1)
    {
        return -1;
    }
    return nas_geom_init(g, input_dims, filter_dims, output_dims, &p->stride, &p->padding, &p->dilation);
}

int32_t nas_convolve_c1_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                           const cmsis_nn_dims *input_dims,
                                           const cmsis_nn_dims *filter_dims,
                                           const cmsis_nn_dims *output_dims)
{
    nas_geom g;
    if (c1_geom(&g, conv_params, input_dims, filter_dims, output_dims) != 0)
    {
        return 0;
    }
    return c1_bytes(&g, output_dims->c, NULL, NULL);
}

/* n input bytes plus the offset as int16 at dst (four at a time on a DSP core). */
static void c1_fill(int16_t *dst, const int8_t *src, int32_t n, int32_t off)
{
    int32_t i = 0;
#if defined(NAS_DSP)
    const uint32_t off2 = ((uint32_t)off & 0xFFFFu) * 0x10001u;
    for (; i + 4 <= n; i += 4)
    {
        uint32_t x, lo, hi;
        memcpy(&x, src + i, 4);
        {
            const uint32_t e = __sxtab16(off2, x);                     /* {x0, x2} */
            const uint32_t o = __sxtab16(off2, (x >> 8) | (x << 24));  /* {x1, x3} */
            lo = (e & 0xFFFFu) | (o << 16);
            hi = (o & 0xFFFF0000u) | (e >> 16);
        }
        memcpy(dst + i, &lo, 4);
        memcpy(dst + i + 2, &hi, 4);
    }
#endif
    for (; i < n; i++)
    {
        dst[i] = (int16_t)(src[i] + off);
    }
}

arm_cmsis_nn_status nas_convolve_c1_s8(const cmsis_nn_context *ctx,
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
    nas_geom g;
    c1_scratch s;
    (void)bias_dims;
    if (c1_geom(&g, conv_params, input_dims, filter_dims, output_dims) != 0 || ctx->buf == NULL ||
        ctx->size < c1_bytes(&g, output_dims->c, NULL, NULL))
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    c1_bytes(&g, output_dims->c, &s, ctx->buf);
    {
        const int32_t out_c = output_dims->c;
        const int32_t taps = g.kh * g.kw;
        const int32_t we = nas_weight_elems(&g);
        const nas_out o = {conv_params->output_offset, conv_params->activation.min, conv_params->activation.max};
        int32_t filled = 0;
        memset(s.ring, 0, (size_t)nas_ring_elems(&g) * 2);
        for (int32_t c = 0; c < out_c; c++)
        {
            nas_chan_init(&s.chan[c],
                          bias_data ? bias_data[c] : 0,
                          quant_params->multiplier[c],
                          quant_params->shift[c],
                          o.off,
                          taps);
            nas_widen_weights(&g, filter_data + c * taps, 1, s.w + c * we);
        }
        for (int32_t oy = 0; oy < g.out_h; oy++)
        {
            nas_rows r;
            nas_ring_rows(&g, oy, &filled, &r);
            for (int32_t iy = r.fill0; iy < r.fill1; iy++)
            {
                c1_fill(s.ring + (iy % g.kh) * g.rw + g.lead, input_data + iy * g.in_w, g.cols,
                        conv_params->input_offset);
            }
            for (int32_t c = 0; c < out_c; c++)
            {
                nas_plane_row(&g,
                              s.ring,
                              &r,
                              s.w + c * we + r.ky0 * 2 * g.np,
                              &s.chan[c],
                              &o,
                              output_data + oy * g.out_w * out_c + c,
                              out_c);
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}
