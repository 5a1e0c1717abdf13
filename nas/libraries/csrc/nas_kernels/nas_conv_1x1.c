/*
 * nas_conv_1x1.c -- nas_convolve_1x1_s8: pointwise convolution (1x1 kernel, no padding, any stride).
 *
 * CMSIS-NN's 1x1 kernels widen both operands for every 2 x 2 block and requantise each output with
 * a 64-bit multiply and several roundings. Here the input channels of two output pixels are widened
 * once (offset added, doubled) into the scratch buffer, interleaved so one pointer reaches both
 * pixels' words; a block of 2 pixels x 2 output channels then takes, per 4 input channels, 4 input
 * words, 2 weight words and 4 SXTB16 for 8 SMLADs, and each output one SMMLAR (nas_kernels_internal.h:
 * the sum is 2 * acc). A last odd pixel or channel repeats the one before and is not stored.
 *
 * Scratch: per output channel (and a copy of the last) its requantisation constants, then the two
 * widened pixels.
 */
#include "nas_kernels_internal.h"

typedef struct
{
    nas_chan *chan;
    uint32_t *x;   /* per 4 input channels: pixel 0 {c0,c2} {c1,c3}, pixel 1 {c0,c2} {c1,c3} */
    int16_t *tail; /* the last k % 4 input channels of both pixels, 4 apart */
} pw_scratch;

static int32_t pw_bytes(int32_t in_c, int32_t out_c, pw_scratch *s, void *buf)
{
    const int32_t head = (out_c + 1) * (int32_t)sizeof(nas_chan);
    if (s != NULL)
    {
        s->chan = (nas_chan *)buf;
        s->x = (uint32_t *)(void *)((int8_t *)buf + head);
        s->tail = (int16_t *)(void *)(s->x + 4 * (in_c / 4));
    }
    return head + 16 * (in_c / 4) + 16;
}

static int32_t pw_check(const cmsis_nn_conv_params *p,
                        const cmsis_nn_dims *input_dims,
                        const cmsis_nn_dims *filter_dims,
                        const cmsis_nn_dims *output_dims)
{
    return input_dims->n == 1 && filter_dims->h == 1 && filter_dims->w == 1 && filter_dims->c == input_dims->c &&
           filter_dims->n == output_dims->c && p->padding.h == 0 && p->padding.w == 0 && p->dilation.h == 1 &&
           p->dilation.w == 1 && p->stride.h >= 1 && p->stride.w >= 1 && output_dims->c >= 1 && input_dims->c >= 1;
}

int32_t nas_convolve_1x1_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                            const cmsis_nn_dims *input_dims,
                                            const cmsis_nn_dims *filter_dims,
                                            const cmsis_nn_dims *output_dims)
{
    if (!pw_check(conv_params, input_dims, filter_dims, output_dims))
    {
        return 0;
    }
    return pw_bytes(input_dims->c, output_dims->c, NULL, NULL);
}

/* Pixel `which` (0, 1) of the pair: its k input channels at src, plus the offset, doubled. */
static void pw_widen(const pw_scratch *s, int32_t which, const int8_t *src, int32_t k, int32_t off)
{
    uint32_t *d = s->x + 2 * which;
    int32_t i = 0;
#if defined(NAS_DSP)
    const uint32_t off2 = ((uint32_t)off & 0xFFFFu) * 0x10001u;
    for (; i + 4 <= k; i += 4)
    {
        uint32_t v;
        memcpy(&v, src + i, 4);
        {
            const uint32_t e = __sxtab16(off2, v), o = __sxtab16(off2, (v >> 8) | (v << 24));
            d[0] = __sadd16(e, e);
            d[1] = __sadd16(o, o);
        }
        d += 4;
    }
#else
    for (; i + 4 <= k; i += 4)
    {
        int16_t h[4];
        for (int32_t j = 0; j < 4; j++)
        {
            h[j] = (int16_t)(2 * (src[i + (j & 1) * 2 + (j >> 1)] + off)); /* {c0,c2} {c1,c3} */
        }
        memcpy(d, h, 8);
        d += 4;
    }
#endif
    for (int32_t j = 0; i < k; i++, j++)
    {
        s->tail[4 * which + j] = (int16_t)(2 * (src[i] + off));
    }
}

/* acc + the dot product of two int16 pairs (one SMLAD on a DSP core). */
NAS_INLINE int32_t pw_dot(uint32_t x, uint32_t w, int32_t acc)
{
#if defined(NAS_DSP)
    return (int32_t)__smlad(x, w, (uint32_t)acc);
#else
    return acc + (int16_t)(x & 0xFFFFu) * (int16_t)(w & 0xFFFFu) + (int16_t)(x >> 16) * (int16_t)(w >> 16);
#endif
}

/* Four weights as the int16 pairs {w0,w2}, {w1,w3}. */
NAS_INLINE void pw_weights(const int8_t *p, uint32_t *e, uint32_t *o)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(NAS_DSP)
    *e = __sxtb16(v);
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(*o) : "r"(v)); /* one instruction with the rotation */
#else
    *e = ((uint32_t)(uint16_t)(int16_t)(int8_t)v) | ((uint32_t)(int8_t)(v >> 16) << 16);
    *o = ((uint32_t)(uint16_t)(int16_t)(int8_t)(v >> 8)) | ((uint32_t)(int8_t)(v >> 24) << 16);
#endif
}

/* a[pixel * 2 + channel] of the pair of pixels in scratch and the weights w0, w1 (k channels each). */
static void pw_block(const pw_scratch *s, const int8_t *w0, const int8_t *w1, int32_t k, int32_t *a)
{
    int32_t a00 = a[0], a01 = a[1], a10 = a[2], a11 = a[3];
    const uint32_t *x = s->x;
    const uint32_t *end = x + 4 * (k >> 2);
    while (x != end)
    {
        uint32_t e, o;
        pw_weights(w0, &e, &o);
        a00 = pw_dot(x[1], o, pw_dot(x[0], e, a00));
        a10 = pw_dot(x[3], o, pw_dot(x[2], e, a10));
        pw_weights(w1, &e, &o);
        a01 = pw_dot(x[1], o, pw_dot(x[0], e, a01));
        a11 = pw_dot(x[3], o, pw_dot(x[2], e, a11));
        x += 4;
        w0 += 4;
        w1 += 4;
    }
    for (int32_t j = 0; j < (k & 3); j++)
    {
        const int32_t x0 = s->tail[j], x1 = s->tail[4 + j];
        a00 += x0 * w0[j];
        a01 += x0 * w1[j];
        a10 += x1 * w0[j];
        a11 += x1 * w1[j];
    }
    a[0] = a00;
    a[1] = a01;
    a[2] = a10;
    a[3] = a11;
}

/* One fast output: the SMMLAR path, then the whole int8 range (SSAT) or the activation's. */
NAS_INLINE int8_t pw_out(int32_t a2, const nas_chan *c, const nas_out *o, int32_t full)
{
    const int32_t v = nas_fast(a2, c->mult, c->add, c->shift);
    return (int8_t)(full ? nas_sat8(v) : NAS_MIN(NAS_MAX(v, o->lo), o->hi));
}

/* Requantise a block into out0 (pixel 0) and out1 (pixel 1, NULL: not stored), channel 1 when two
 * (c[1] exists either way). */
static void pw_store(const int32_t *a, const nas_chan *c, const nas_out *o, int8_t *out0, int8_t *out1, int32_t two)
{
    if (c[0].fast && c[1].fast)
    {
        const int32_t full = o->lo == -128 && o->hi == 127;
        out0[0] = pw_out(a[0], &c[0], o, full);
        if (two)
        {
            out0[1] = pw_out(a[1], &c[1], o, full);
        }
        if (out1 != NULL)
        {
            out1[0] = pw_out(a[2], &c[0], o, full);
            if (two)
            {
                out1[1] = pw_out(a[3], &c[1], o, full);
            }
        }
        return;
    }
    out0[0] = nas_finish(a[0], &c[0], o);
    if (two)
    {
        out0[1] = nas_finish(a[1], &c[1], o);
    }
    if (out1 != NULL)
    {
        out1[0] = nas_finish(a[2], &c[0], o);
        if (two)
        {
            out1[1] = nas_finish(a[3], &c[1], o);
        }
    }
}

/* The input channels of output pixel p (row-major over the output's width ow). */
static const int8_t *pw_pixel(const cmsis_nn_conv_params *cp,
                              const cmsis_nn_dims *input_dims,
                              int32_t ow,
                              const int8_t *input,
                              int32_t p)
{
    return input + ((p / ow) * cp->stride.h * input_dims->w + (p % ow) * cp->stride.w) * input_dims->c;
}

arm_cmsis_nn_status nas_convolve_1x1_s8(const cmsis_nn_context *ctx,
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
    const int32_t k = input_dims->c, out_c = output_dims->c, ow = output_dims->w;
    const int32_t pixels = output_dims->h * ow;
    const nas_out o = {conv_params->output_offset, conv_params->activation.min, conv_params->activation.max};
    pw_scratch s;
    (void)bias_dims;
    if (!pw_check(conv_params, input_dims, filter_dims, output_dims) || ctx->buf == NULL ||
        ctx->size < pw_bytes(k, out_c, NULL, NULL))
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    pw_bytes(k, out_c, &s, ctx->buf);
    for (int32_t c = 0; c <= out_c; c++)
    {
        const int32_t m = NAS_MIN(c, out_c - 1); /* the copy of the last serves an odd count's pair */
        nas_chan_init(&s.chan[c], bias_data ? bias_data[m] : 0, quant_params->multiplier[m], quant_params->shift[m],
                      o.off, k);
    }
    for (int32_t p = 0; p < pixels; p += 2)
    {
        const int32_t q = NAS_MIN(p + 1, pixels - 1); /* an odd last pixel repeats itself */
        int8_t *out0 = output_data + p * out_c;
        int8_t *out1 = q > p ? out0 + out_c : NULL;
        pw_widen(&s, 0, pw_pixel(conv_params, input_dims, ow, input_data, p), k, conv_params->input_offset);
        pw_widen(&s, 1, pw_pixel(conv_params, input_dims, ow, input_data, q), k, conv_params->input_offset);
        for (int32_t c = 0; c < out_c; c += 2)
        {
            const int32_t two = c + 1 < out_c; /* an odd last channel repeats itself */
            const nas_chan *ch = &s.chan[c];
            const int8_t *w0 = filter_data + c * k;
            int32_t a[4] = {ch[0].start, ch[1].start, ch[0].start, ch[1].start};
            pw_block(&s, w0, w0 + two * k, k, a);
            pw_store(a, ch, &o, out0 + c, out1 ? out1 + c : NULL, two);
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}
