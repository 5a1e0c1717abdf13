/*
 * nas_plane.c -- the plane engine of the nas_ kernels (see nas_kernels_internal.h).
 *
 * An output row is computed in blocks of four pixels that share their loads: with stride 2 the
 * four pixels read the words j .. j + 3 of one row (np + 3 loads for 4 * np SMLADs per kernel
 * row); with stride 1 pixels 2i and 2i + 1 read the same aligned words with the two weight sets.
 * A last, partial block reads ring columns past the row (the ring has room for whole blocks) and
 * keeps only its pixels. The pair counts of 3x3 and 5x5 kernels (np = 2, 3) have their own
 * unrolled copies; other kernels and strides, and channels on the exact requantisation, go one
 * pixel at a time.
 */
#include "nas_kernels_internal.h"

#if defined(__GNUC__)
#define NAS_UNROLL _Pragma("GCC unroll 8")
#else
#define NAS_UNROLL
#endif

int32_t nas_geom_init(nas_geom *g,
                      const cmsis_nn_dims *input_dims,
                      const cmsis_nn_dims *filter_dims,
                      const cmsis_nn_dims *output_dims,
                      const cmsis_nn_tile *stride,
                      const cmsis_nn_tile *padding,
                      const cmsis_nn_tile *dilation)
{
    int32_t b0max;
    if (input_dims->n != 1 || dilation->w != 1 || dilation->h != 1 || stride->w < 1 || stride->h < 1 ||
        padding->w < 0 || padding->h < 0 || filter_dims->h < 1 || filter_dims->w < 1 || output_dims->h < 1 ||
        output_dims->w < 1)
    {
        return -1;
    }
    g->in_h = input_dims->h;
    g->in_w = input_dims->w;
    g->out_h = output_dims->h;
    g->out_w = output_dims->w;
    g->kh = filter_dims->h;
    g->kw = filter_dims->w;
    g->sy = stride->h;
    g->sx = stride->w;
    g->py = padding->h;
    g->px = padding->w;
    g->odd = (g->sx & 1) && g->out_w > 1;
    g->np = g->odd ? g->kw / 2 + 1 : (g->kw + 1) / 2;
    /* the last pixel start read: of the last whole block where rows go in blocks of four */
    b0max = ((g->sx <= 2 ? (g->out_w + 3) & ~3 : g->out_w) - 1) * g->sx;
    g->rw = (b0max - (b0max & 1) + 2 * g->np + 1) & ~1;
    g->lead = NAS_MIN(g->px, g->rw);
    g->cols = NAS_MIN(g->in_w, g->rw - g->lead);
    return 0;
}

void nas_widen_weights(const nas_geom *g, const int8_t *w, int32_t step, int16_t *dst)
{
    const int32_t n = 2 * g->np;
    for (int32_t set = 0; set <= g->odd; set++)
    {
        const int8_t *row = w;
        for (int32_t ky = 0; ky < g->kh; ky++)
        {
            for (int32_t i = 0; i < n; i++)
            {
                /* set 1: tap k at position k + 1; outside the taps 0 (selects, no branches) */
                const int32_t kx = i - set;
                const int32_t in = (uint32_t)kx < (uint32_t)g->kw;
                const int32_t v = row[(in ? kx : 0) * step];
                *dst++ = (int16_t)(in ? 2 * v : 0);
            }
            row += g->kw * step;
        }
    }
}

void nas_chan_init(nas_chan *c, int32_t bias, int32_t mult, int32_t shift, int32_t out_off, int32_t taps)
{
    /* the largest |acc|: |bias| + taps * 255 * 128 ((x + input_offset) in [-255, 255], w in [-128, 127]) */
    const int64_t bound = (bias < 0 ? -(int64_t)bias : (int64_t)bias) + (int64_t)taps * 32640;
    c->mult = mult;
    if (shift < 0 && shift >= -30)
    {
        const int32_t e = -shift;
        const int64_t add = ((int64_t)1 << (e - 1)) + (int64_t)out_off * ((int64_t)1 << e);
        const int64_t add_abs = add < 0 ? -add : add;
        if (2 * bound < ((int64_t)1 << 31) && bound + 1 + add_abs < ((int64_t)1 << 31))
        {
            c->fast = 1;
            c->start = 2 * bias;
            c->shift = e;
            c->add = (int32_t)add;
            return;
        }
    }
    c->fast = 0;
    c->start = 0;
    c->shift = shift;
    c->add = bias;
}

void nas_ring_rows(const nas_geom *g, int32_t oy, int32_t *filled, nas_rows *r)
{
    const int32_t iy0 = oy * g->sy - g->py;
    const int32_t ky0 = NAS_MAX(0, -iy0);
    const int32_t ky1 = NAS_MIN(g->kh, g->in_h - iy0);
    r->rows = NAS_MAX(0, ky1 - ky0);
    r->ky0 = r->rows ? ky0 : 0;
    r->fill0 = NAS_MAX(*filled, iy0 + ky0);
    r->fill1 = NAS_MAX(r->fill0, iy0 + ky1);
    if (r->rows)
    {
        *filled = r->fill1;
    }
    r->slot = (iy0 + r->ky0 + (r->rows ? 0 : g->kh)) % g->kh;
}

/* ---------------------------------------------------------------- requantisation */

/* arm_nn_requantize: left shift (wrapping), rounding doubling high multiply, rounding right shift. */
static int32_t nas_requantize(int32_t val, int32_t mult, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t v = (int32_t)((uint32_t)val << left);
    const int32_t h = (int32_t)(uint32_t)(((int64_t)v * mult + ((int64_t)1 << 30)) >> 31);
    const int32_t mask = (int32_t)((1u << right) - 1u);
    const int32_t threshold = (mask >> 1) + (h < 0 ? 1 : 0);
    return (h >> right) + ((h & mask) > threshold ? 1 : 0);
}

int8_t nas_finish(int32_t a2, const nas_chan *c, const nas_out *o)
{
    int32_t v;
    if (c->fast)
    {
        v = nas_fast(a2, c->mult, c->add, c->shift);
    }
    else
    {
        const int32_t acc = (int32_t)((uint32_t)(a2 >> 1) + (uint32_t)c->add);
        v = nas_requantize(acc, c->mult, c->shift) + o->off;
    }
    v = NAS_MAX(v, o->lo);
    return (int8_t)NAS_MIN(v, o->hi);
}

/* ---------------------------------------------------------------- dot products */

/* acc + x[0] * w[0] + x[1] * w[1] for two int16 pairs (one SMLAD on a DSP core). */
NAS_INLINE int32_t nas_dot2(const int16_t *x, const int16_t *w, int32_t acc)
{
#if defined(NAS_DSP)
    uint32_t xv, wv;
    memcpy(&xv, x, 4);
    memcpy(&wv, w, 4);
    return (int32_t)__smlad(xv, wv, (uint32_t)acc);
#else
    return acc + x[0] * w[0] + x[1] * w[1];
#endif
}

/* Four pixels, `rows` kernel rows from the aligned start x, rw apart: stride 2, pixel p at x + 2p
 * with set 0; stride 1, pixels 0 and 1 at x with sets 0 and 1 (set 1 = w + set1), pixels 2 and 3
 * at x + 2. */
NAS_INLINE const int16_t *nas_blk4(const int16_t *x,
                                   int32_t rw,
                                   int32_t rows,
                                   const int16_t *w,
                                   int32_t set1,
                                   const int32_t sx,
                                   const int32_t np,
                                   int32_t *a)
{
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
    for (int32_t r = rows; r > 0; r--)
    {
        NAS_UNROLL
        for (int32_t j = 0; j < np; j++)
        {
            const int16_t *wb = sx == 2 ? w : w + set1;
            a0 = nas_dot2(x + 2 * j, w + 2 * j, a0);
            a1 = nas_dot2(x + 2 * j + (sx == 2 ? 2 : 0), wb + 2 * j, a1);
            a2 = nas_dot2(x + 2 * j + (sx == 2 ? 4 : 2), w + 2 * j, a2);
            a3 = nas_dot2(x + 2 * j + (sx == 2 ? 6 : 2), wb + 2 * j, a3);
        }
        x += rw;
        w += 2 * np;
    }
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
    a[3] = a3;
    return w;
}

/* Requantise four accumulators of a fast channel into dst[0, step, 2 step, 3 step]. */
NAS_INLINE void nas_finish4(const int32_t *a, const nas_chan *c, int32_t lo, int32_t hi, int8_t *dst, int32_t step)
{
    const int32_t mult = c->mult, add = c->add, e = c->shift;
    if (lo == -128 && hi == 127)
    {
        NAS_UNROLL
        for (int32_t k = 0; k < 4; k++)
        {
            dst[k * step] = (int8_t)nas_sat8(nas_fast(a[k], mult, add, e));
        }
    }
    else
    {
        NAS_UNROLL
        for (int32_t k = 0; k < 4; k++)
        {
            const int32_t v = nas_fast(a[k], mult, add, e);
            dst[k * step] = (int8_t)NAS_MIN(NAS_MAX(v, lo), hi);
        }
    }
}

/* A row of a fast channel in blocks of four pixels (stride 1 or 2): the kernel rows in two runs,
 * from ring row r->slot to the ring's end, then from its first row. */
NAS_INLINE void nas_row_blocks(const nas_geom *g,
                               const int16_t *ring,
                               const nas_rows *r,
                               const int16_t *w,
                               const nas_chan *c,
                               const nas_out *o,
                               int8_t *out,
                               int32_t out_step,
                               const int32_t sx,
                               const int32_t np)
{
    const int32_t whole = g->out_w & ~3, set1 = g->kh * 2 * np, rw = g->rw;
    const int32_t start = c->start, lo = o->lo, hi = o->hi;
    const int32_t run1 = NAS_MIN(r->rows, g->kh - r->slot), run2 = r->rows - run1;
    const int16_t *x1 = ring + r->slot * rw;
    int32_t ox = 0;
    for (; ox < whole; ox += 4)
    {
        int32_t a[4] = {start, start, start, start};
        nas_blk4(ring + ox * sx, rw, run2, nas_blk4(x1 + ox * sx, rw, run1, w, set1, sx, np, a), set1, sx, np, a);
        nas_finish4(a, c, lo, hi, out, out_step);
        out += 4 * out_step;
    }
    if (ox < g->out_w)
    {
        int32_t a[4] = {start, start, start, start};
        int8_t tail[4];
        nas_blk4(ring + ox * sx, rw, run2, nas_blk4(x1 + ox * sx, rw, run1, w, set1, sx, np, a), set1, sx, np, a);
        nas_finish4(a, c, lo, hi, tail, 1);
        for (int32_t k = 0; k < g->out_w - ox; k++)
        {
            out[k * out_step] = tail[k];
        }
    }
}

/* One pixel at a time: any stride, and channels on the exact requantisation. */
static void nas_row_pixels(const nas_geom *g,
                           const int16_t *ring,
                           const nas_rows *rr,
                           const int16_t *w,
                           const nas_chan *c,
                           const nas_out *o,
                           int8_t *out,
                           int32_t out_step)
{
    const int32_t np = g->np, set1 = g->kh * 2 * np;
    for (int32_t ox = 0; ox < g->out_w; ox++)
    {
        const int32_t b0 = ox * g->sx;
        const int16_t *wp = w + (b0 & 1) * set1;
        int32_t a = c->start;
        for (int32_t r = 0; r < rr->rows; r++)
        {
            const int16_t *x = ring + ((rr->slot + r) % g->kh) * g->rw + (b0 & ~1);
            for (int32_t j = 0; j < np; j++)
            {
                a = nas_dot2(x + 2 * j, wp + 2 * j, a);
            }
            wp += 2 * np;
        }
        *out = nas_finish(a, c, o);
        out += out_step;
    }
}

void nas_plane_row(const nas_geom *g,
                   const int16_t *ring,
                   const nas_rows *r,
                   const int16_t *w,
                   const nas_chan *c,
                   const nas_out *o,
                   int8_t *out,
                   int32_t out_step)
{
    const int32_t blocks = c->fast && (g->sx == 1 || g->sx == 2);
    switch (blocks ? g->sx * 8 + g->np : 0)
    {
    case 2 * 8 + 2:
        nas_row_blocks(g, ring, r, w, c, o, out, out_step, 2, 2);
        break;
    case 2 * 8 + 3:
        nas_row_blocks(g, ring, r, w, c, o, out, out_step, 2, 3);
        break;
    case 1 * 8 + 2:
        nas_row_blocks(g, ring, r, w, c, o, out, out_step, 1, 2);
        break;
    case 1 * 8 + 3:
        nas_row_blocks(g, ring, r, w, c, o, out, out_step, 1, 3);
        break;
    default:
        nas_row_pixels(g, ring, r, w, c, o, out, out_step);
        break;
    }
}
