"""Shared helpers for the kernel tests and bench: random int8 layers, a C layer driver, builds.

A *case* is one layer invocation (conv / depthwise / FC / pools / softmax) with random shapes and
quantisation parameters, its arrays, and the output expected from :mod:`nas.int8.intref`.
Cases are serialised into one binary blob that a small C driver (``DRIVER_C`` below) reads; the
driver calls the CMSIS-NN API (portable kernels or a real CMSIS-NN checkout, host gcc or Cortex-M4
under QEMU) and prints one ``@<tag> <case> <value>`` line per result.

Builds are cached under ``$TMPDIR/nas_cbuild_cache/<hash of sources+flags+compiler>`` so that a
real CMSIS-NN library (113 files) is compiled once, not per test session.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nas.export import qemu
from nas.int8 import intref  # noqa: E402
from nas.libraries import addon_sources, library  # noqa: E402

HOST_CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")
CACHE_DIR = Path(tempfile.gettempdir()) / "nas_cbuild_cache"

OP_CONV, OP_DW, OP_FC, OP_MAXPOOL, OP_AVGPOOL, OP_SOFTMAX, OP_ADD = 1, 2, 3, 4, 5, 6, 7
# conv entry points (CONV_NAS_*: the project's own kernels, nas/libraries/csrc/nas_kernels)
CONV_WRAPPER, CONV_S8, CONV_1X1_FAST, CONV_1X1, CONV_1XN, CONV_NAS_C1, CONV_NAS_1X1 = 0, 1, 2, 3, 4, 5, 6
# depthwise entry points
DW_WRAPPER, DW_GENERIC, DW_3X3, DW_OPT, DW_NAS = 0, 1, 2, 3, 4

DRIVER_C = r"""
/* layer driver: runs serialized layer cases through the CMSIS-NN API */
#include <stdint.h>
#include <string.h>
#include "arm_nnfunctions.h"
#include "nas_kernels.h"

#if defined(PNN_QEMU)
#include "qemu_harness.h"
#define IN_CAP (2u * 1024u * 1024u)
#define ARENA_CAP (1024u * 1024u)
#else
#include <stdio.h>
#include <stdlib.h>
#define IN_CAP (16u * 1024u * 1024u)
#define ARENA_CAP (16u * 1024u * 1024u)
#endif

static int32_t g_in[IN_CAP / 4];
static int32_t g_arena[ARENA_CAP / 4];
static int32_t g_case;

static void out_int(const char *tag, int64_t v)
{
#if defined(PNN_QEMU)
    char name[12];
    int32_t c = g_case, n = 0;
    char tmp[12];
    do { tmp[n++] = (char)('0' + c % 10); c /= 10; } while (c);
    for (int32_t i = 0; i < n; i++) name[i] = tmp[n - 1 - i];
    name[n] = 0;
    qh_report_int(tag, name, v);
#else
    printf("@%s %d %lld\n", tag, (int)g_case, (long long)v);
#endif
}

static void out_hex(const int8_t *p, int32_t n)
{
#if defined(PNN_QEMU)
    char name[12];
    int32_t c = g_case, k = 0;
    char tmp[12];
    do { tmp[k++] = (char)('0' + c % 10); c /= 10; } while (c);
    for (int32_t i = 0; i < k; i++) name[i] = tmp[k - 1 - i];
    name[k] = 0;
    qh_report_hex(name, p, (uint32_t)n);
#else
    printf("@hex %d ", (int)g_case);
    for (int32_t i = 0; i < n; i++) printf("%02x", (unsigned)(uint8_t)p[i]);
    printf("\n");
#endif
}

static uint64_t now(void)
{
#if defined(PNN_QEMU)
    return qh_insn_count();
#else
    return 0;
#endif
}

typedef struct { const int32_t *p; int32_t np; const int8_t *blob[6]; int32_t nb[6]; } case_t;

static const int32_t *parse_case(const int32_t *w, case_t *c)
{
    c->np = *w++;
    c->p = w;
    w += c->np;
    int32_t nblobs = *w++;
    for (int32_t i = 0; i < 6; i++) { c->blob[i] = 0; c->nb[i] = 0; }
    for (int32_t i = 0; i < nblobs; i++) {
        int32_t n = *w++;
        if (i < 6) { c->blob[i] = (const int8_t *)w; c->nb[i] = n; }
        w += (n + 3) / 4;
    }
    return w;
}

#define GUARD 32
static int8_t *arena_ptr;
static int8_t *take(int32_t n)
{
    int8_t *p = arena_ptr;
    arena_ptr += ((n + GUARD + 7) / 8) * 8;
    memset(p, 0x5a, (size_t)(n + GUARD));
    return p;
}
static int guard_ok(const int8_t *p, int32_t n)
{
    for (int32_t i = 0; i < GUARD; i++) if ((uint8_t)p[n + i] != 0x5a) return 0;
    return 1;
}

static void run_case(int32_t op, const case_t *c)
{
    const int32_t *p = c->p;
    int32_t status = 0, out_n = 0, buf_n = 0, buf_dsp = 0;
    int8_t *out = 0, *buf = 0;
    uint64_t t0 = 0, t1 = 0;
    arena_ptr = (int8_t *)g_arena;
    if (op == 1 || op == 2) {
        cmsis_nn_dims in_d = {p[0], p[1], p[2], p[3]};
        cmsis_nn_dims out_d, f_d, b_d;
        cmsis_nn_per_channel_quant_params q = {(int32_t *)c->blob[3], (int32_t *)c->blob[4]};
        const int32_t *bias = c->p[19] ? (const int32_t *)c->blob[2] : 0;
        int32_t entry = p[20], null_buf = p[21];
        cmsis_nn_context ctx;
        if (op == 1) {
            cmsis_nn_conv_params cp;
            cp.input_offset = p[15]; cp.output_offset = p[16];
            cp.stride.h = p[7]; cp.stride.w = p[8]; cp.padding.h = p[9]; cp.padding.w = p[10];
            cp.dilation.h = p[11]; cp.dilation.w = p[12]; cp.activation.min = p[17]; cp.activation.max = p[18];
            f_d.n = p[4]; f_d.h = p[5]; f_d.w = p[6]; f_d.c = p[22];
            out_d.n = p[0]; out_d.h = p[13]; out_d.w = p[14]; out_d.c = p[4];
            b_d.n = 1; b_d.h = 1; b_d.w = 1; b_d.c = p[4];
            buf_n = entry == 1 ? arm_convolve_s8_get_buffer_size(&in_d, &f_d)
                  : entry == 5 ? nas_convolve_c1_s8_get_buffer_size(&cp, &in_d, &f_d, &out_d)
                  : entry == 6 ? nas_convolve_1x1_s8_get_buffer_size(&cp, &in_d, &f_d, &out_d)
                               : arm_convolve_wrapper_s8_get_buffer_size(&cp, &in_d, &f_d, &out_d);
            buf_dsp = arm_convolve_wrapper_s8_get_buffer_size_dsp(&cp, &in_d, &f_d, &out_d);
            out_n = out_d.n * out_d.h * out_d.w * out_d.c;
            out = take(out_n);
            buf = take(buf_n);
            ctx.buf = (buf_n > 0 && !null_buf) ? buf : 0; ctx.size = buf_n;
            t0 = now();
            switch (entry) {
            case 0: status = arm_convolve_wrapper_s8(&ctx, &cp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            case 1: status = arm_convolve_s8(&ctx, &cp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, 0, &out_d, out); break;
            case 2: status = arm_convolve_1x1_s8_fast(&ctx, &cp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            case 3: status = arm_convolve_1x1_s8(&ctx, &cp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            case 5: status = nas_convolve_c1_s8(&ctx, &cp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            case 6: status = nas_convolve_1x1_s8(&ctx, &cp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            default: status = arm_convolve_1_x_n_s8(&ctx, &cp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            }
            t1 = now();
        } else {
            cmsis_nn_dw_conv_params dp;
            dp.input_offset = p[15]; dp.output_offset = p[16]; dp.ch_mult = p[4];
            dp.stride.h = p[7]; dp.stride.w = p[8]; dp.padding.h = p[9]; dp.padding.w = p[10];
            dp.dilation.h = p[11]; dp.dilation.w = p[12]; dp.activation.min = p[17]; dp.activation.max = p[18];
            f_d.n = 1; f_d.h = p[5]; f_d.w = p[6]; f_d.c = p[3] * p[4];
            out_d.n = p[0]; out_d.h = p[13]; out_d.w = p[14]; out_d.c = p[3] * p[4];
            b_d.n = 1; b_d.h = 1; b_d.w = 1; b_d.c = out_d.c;
            buf_n = entry == 3 ? arm_depthwise_conv_s8_opt_get_buffer_size(&in_d, &f_d)
                  : entry == 4 ? nas_depthwise_conv_s8_get_buffer_size(&dp, &in_d, &f_d, &out_d)
                               : arm_depthwise_conv_wrapper_s8_get_buffer_size(&dp, &in_d, &f_d, &out_d);
            buf_dsp = arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp(&dp, &in_d, &f_d, &out_d);
            out_n = out_d.n * out_d.h * out_d.w * out_d.c;
            out = take(out_n);
            buf = take(buf_n);
            ctx.buf = (buf_n > 0 && !null_buf) ? buf : 0; ctx.size = buf_n;
            t0 = now();
            switch (entry) {
            case 0: status = arm_depthwise_conv_wrapper_s8(&ctx, &dp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            case 1: status = arm_depthwise_conv_s8(&ctx, &dp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            case 2: status = arm_depthwise_conv_3x3_s8(&ctx, &dp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            case 4: status = nas_depthwise_conv_s8(&ctx, &dp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            default: status = arm_depthwise_conv_s8_opt(&ctx, &dp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d, bias, &out_d, out); break;
            }
            t1 = now();
        }
    } else if (op == 3) {
        cmsis_nn_dims in_d = {p[0], 1, 1, p[1]};
        cmsis_nn_dims f_d = {p[1], 1, 1, p[2]};
        cmsis_nn_dims b_d = {1, 1, 1, p[2]};
        cmsis_nn_dims out_d = {p[0], 1, 1, p[2]};
        cmsis_nn_fc_params fp;
        cmsis_nn_per_tensor_quant_params q;
        cmsis_nn_context ctx;
        fp.input_offset = p[3]; fp.filter_offset = p[4]; fp.output_offset = p[5];
        fp.activation.min = p[6]; fp.activation.max = p[7];
        q.multiplier = p[8]; q.shift = p[9];
        buf_n = arm_fully_connected_s8_get_buffer_size(&f_d);
        buf_dsp = arm_fully_connected_s8_get_buffer_size_dsp(&f_d);
        out_n = p[0] * p[2];
        out = take(out_n);
        buf = take(buf_n);
        ctx.buf = buf_n > 0 ? buf : 0; ctx.size = buf_n;
        t0 = now();
        status = arm_fully_connected_s8(&ctx, &fp, &q, &in_d, c->blob[0], &f_d, c->blob[1], &b_d,
                                        p[10] ? (const int32_t *)c->blob[2] : 0, &out_d, out);
        t1 = now();
    } else if (op == 4 || op == 5) {
        cmsis_nn_dims in_d = {p[0], p[1], p[2], p[3]};
        cmsis_nn_dims f_d = {1, p[4], p[5], 1};
        cmsis_nn_dims out_d = {p[0], p[10], p[11], p[3]};
        cmsis_nn_pool_params pp;
        cmsis_nn_context ctx;
        pp.stride.h = p[6]; pp.stride.w = p[7]; pp.padding.h = p[8]; pp.padding.w = p[9];
        pp.activation.min = p[12]; pp.activation.max = p[13];
        buf_n = op == 5 ? arm_avgpool_s8_get_buffer_size(out_d.w, in_d.c) : 0;
        buf_dsp = op == 5 ? arm_avgpool_s8_get_buffer_size_dsp(out_d.w, in_d.c) : 0;
        out_n = out_d.n * out_d.h * out_d.w * out_d.c;
        out = take(out_n);
        buf = take(buf_n);
        ctx.buf = (buf_n > 0 && !p[14]) ? buf : 0; ctx.size = buf_n;
        t0 = now();
        status = op == 4 ? arm_max_pool_s8(&ctx, &pp, &in_d, c->blob[0], &f_d, &out_d, out)
                         : arm_avgpool_s8(&ctx, &pp, &in_d, c->blob[0], &f_d, &out_d, out);
        t1 = now();
    } else if (op == 6) {
        out_n = p[0] * p[1];
        out = take(out_n);
        buf = take(0);
        t0 = now();
        arm_softmax_s8(c->blob[0], p[0], p[1], p[2], p[3], p[4], out);
        t1 = now();
    } else if (op == 7) {
        out_n = p[0];
        out = take(out_n);
        buf = take(0);
        t0 = now();
        status = arm_elementwise_add_s8(c->blob[0], c->blob[1], p[1], p[2], p[3], p[4], p[5], p[6], p[7], out,
                                        p[8], p[9], p[10], p[11], p[12], p[0]);
        t1 = now();
    }
    out_int("status", status);
    out_int("buf", buf_n);
    out_int("bufdsp", buf_dsp);
    out_int("guard", guard_ok(out, out_n) && guard_ok(buf, buf_n));
    out_int("insn", (int64_t)(t1 - t0));
    out_hex(out, out_n);
}

#if defined(PNN_QEMU)
int main(void)
{
    int32_t n = qh_read_input(g_in, IN_CAP);
    if (n < 12) { qh_puts("no input\n"); return 2; }
#else
int main(int argc, char **argv)
{
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : stdin;
    if (!f) return 2;
    size_t n = fread(g_in, 1, IN_CAP, f);
    if (n < 12) return 2;
#endif
    const int32_t *w = g_in;
    if (w[0] != 0x544e4e50) return 3; /* "PNNT" */
    int32_t ncases = w[1];
    w += 2;
    for (g_case = 0; g_case < ncases; g_case++) {
        case_t c;
        int32_t op = *w++;
        w = parse_case(w, &c);
        run_case(op, &c);
    }
#if defined(PNN_QEMU)
    qh_report_int("done", "cases", ncases);
#else
    printf("@done cases %d\n", (int)ncases);
#endif
    return 0;
}
"""


# --------------------------------------------------------------------------- cases

@dataclass
class Case:
    """One layer invocation: op code, int32 params, byte blobs, expected output and status."""

    op: int
    params: list[int]
    blobs: list[bytes]
    expected: np.ndarray | None
    expected_status: int = 0
    name: str = ""
    macs: int = 0
    info: dict = field(default_factory=dict)


def _arr(a, dtype) -> bytes:
    return np.ascontiguousarray(np.asarray(a, dtype=dtype)).tobytes()


def random_quant(rng: np.random.Generator, n: int, depth: int, *, allow_left_shift: bool = True):
    """Per-channel (mult, shift) arrays giving outputs that spread over the int8 range."""
    base = 1.0 / (np.sqrt(max(depth, 1)) * 60.0)
    m = base * np.exp(rng.uniform(-1.0, 1.0, size=n))
    if allow_left_shift and rng.random() < 0.15:
        m[rng.integers(0, n)] = rng.uniform(1.0, 3.0)  # exercises shift > 0
    return intref.quantize_multipliers(m)


def _act(rng: np.random.Generator, out_off: int) -> tuple[int, int]:
    r = rng.random()
    if r < 0.6:
        return -128, 127
    if r < 0.85:
        return max(-128, out_off), 127
    lo = max(-128, out_off)
    return lo, int(min(127, lo + rng.integers(20, 120)))


def conv_case(rng: np.random.Generator, *, h: int, w: int, cin: int, cout: int, kh: int, kw: int,
              stride=(1, 1), padding=(0, 0), out_hw=None, dilation=(1, 1), entry: int = CONV_WRAPPER,
              batch: int = 1, bias: bool = True, groups: int = 1, null_buf: bool = False,
              expected_status: int = 0, name: str = "") -> Case:
    kc = cin // groups
    x = rng.integers(-128, 128, size=(batch, h, w, cin), dtype=np.int64).astype(np.int8)
    wt = rng.integers(-127, 128, size=(cout, kh, kw, kc), dtype=np.int64).astype(np.int8)
    b = rng.integers(-3000, 3000, size=cout).astype(np.int32) if bias else None
    mult, shift = random_quant(rng, cout, kh * kw * kc)
    in_off = int(rng.integers(-127, 129))
    out_off = int(rng.integers(-128, 128))
    amin, amax = _act(rng, out_off)
    if out_hw is None:
        out_hw = (intref.conv_output_size(h, kh, stride[0], padding[0], dilation=dilation[0]),
                  intref.conv_output_size(w, kw, stride[1], padding[1], dilation=dilation[1]))
    exp = None
    if expected_status == 0:
        exp = intref.conv2d(x, wt, b, mult, shift, stride=stride, padding=padding, out_hw=out_hw,
                            dilation=dilation, input_offset=in_off, output_offset=out_off,
                            act_min=amin, act_max=amax)
    params = [batch, h, w, cin, cout, kh, kw, stride[0], stride[1], padding[0], padding[1],
              dilation[0], dilation[1], out_hw[0], out_hw[1], in_off, out_off, amin, amax,
              int(bias), entry, int(null_buf), kc]
    blobs = [_arr(x, np.int8), _arr(wt, np.int8), _arr(b if bias else [], np.int32),
             _arr(mult, np.int32), _arr(shift, np.int32)]
    macs = batch * out_hw[0] * out_hw[1] * cout * kh * kw * kc
    return Case(OP_CONV, params, blobs, exp, expected_status, name or f"conv{kh}x{kw}", macs,
                {"h": h, "w": w, "cin": cin, "cout": cout, "k": (kh, kw), "stride": stride, "pad": padding,
                 "out_hw": out_hw, "dilation": dilation})


def dw_case(rng: np.random.Generator, *, h: int, w: int, c: int, kh: int, kw: int, ch_mult: int = 1,
            stride=(1, 1), padding=(0, 0), out_hw=None, dilation=(1, 1), entry: int = DW_WRAPPER,
            batch: int = 1, bias: bool = True, null_buf: bool = False, expected_status: int = 0,
            name: str = "") -> Case:
    cout = c * ch_mult
    x = rng.integers(-128, 128, size=(batch, h, w, c), dtype=np.int64).astype(np.int8)
    wt = rng.integers(-127, 128, size=(1, kh, kw, cout), dtype=np.int64).astype(np.int8)
    b = rng.integers(-3000, 3000, size=cout).astype(np.int32) if bias else None
    mult, shift = random_quant(rng, cout, kh * kw)
    in_off = int(rng.integers(-127, 129))
    out_off = int(rng.integers(-128, 128))
    amin, amax = _act(rng, out_off)
    if out_hw is None:
        out_hw = (intref.conv_output_size(h, kh, stride[0], padding[0], dilation=dilation[0]),
                  intref.conv_output_size(w, kw, stride[1], padding[1], dilation=dilation[1]))
    exp = None
    if expected_status == 0:
        exp = intref.depthwise_conv2d(x, wt, b, mult, shift, ch_mult=ch_mult, stride=stride, padding=padding,
                                      out_hw=out_hw, dilation=dilation, input_offset=in_off,
                                      output_offset=out_off, act_min=amin, act_max=amax)
    params = [batch, h, w, c, ch_mult, kh, kw, stride[0], stride[1], padding[0], padding[1],
              dilation[0], dilation[1], out_hw[0], out_hw[1], in_off, out_off, amin, amax,
              int(bias), entry, int(null_buf)]
    blobs = [_arr(x, np.int8), _arr(wt, np.int8), _arr(b if bias else [], np.int32),
             _arr(mult, np.int32), _arr(shift, np.int32)]
    macs = batch * out_hw[0] * out_hw[1] * cout * kh * kw
    return Case(OP_DW, params, blobs, exp, expected_status, name or f"dw{kh}x{kw}", macs,
                {"h": h, "w": w, "c": c, "k": (kh, kw), "ch_mult": ch_mult, "stride": stride, "pad": padding,
                 "out_hw": out_hw})


def fc_case(rng: np.random.Generator, *, depth: int, cout: int, batch: int = 1, bias: bool = True,
            filter_offset: int = 0, name: str = "") -> Case:
    x = rng.integers(-128, 128, size=(batch, depth), dtype=np.int64).astype(np.int8)
    wt = rng.integers(-127, 128, size=(cout, depth), dtype=np.int64).astype(np.int8)
    b = rng.integers(-3000, 3000, size=cout).astype(np.int32) if bias else None
    m, s = random_quant(rng, 1, depth)
    mult, shift = int(m[0]), int(s[0])
    in_off = int(rng.integers(-127, 129))
    out_off = int(rng.integers(-128, 128))
    amin, amax = _act(rng, out_off)
    exp = intref.fully_connected(x, wt, b, mult, shift, input_offset=in_off, filter_offset=filter_offset,
                                 output_offset=out_off, act_min=amin, act_max=amax)
    params = [batch, depth, cout, in_off, filter_offset, out_off, amin, amax, mult, shift, int(bias)]
    blobs = [_arr(x, np.int8), _arr(wt, np.int8), _arr(b if bias else [], np.int32)]
    return Case(OP_FC, params, blobs, exp, 0, name or f"fc{depth}x{cout}", batch * depth * cout,
                {"depth": depth, "cout": cout})


def pool_case(rng: np.random.Generator, kind: str, *, h: int, w: int, c: int, kh: int, kw: int,
              stride=None, padding=(0, 0), out_hw=None, batch: int = 1, null_buf: bool = False,
              expected_status: int = 0, name: str = "") -> Case:
    stride = (kh, kw) if stride is None else stride
    x = rng.integers(-128, 128, size=(batch, h, w, c), dtype=np.int64).astype(np.int8)
    amin, amax = (-128, 127) if rng.random() < 0.7 else (int(rng.integers(-128, 0)), int(rng.integers(0, 128)))
    if out_hw is None:
        out_hw = (intref.conv_output_size(h, kh, stride[0], padding[0]),
                  intref.conv_output_size(w, kw, stride[1], padding[1]))
    fn = intref.max_pool if kind == "max" else intref.avg_pool
    exp = None
    if expected_status == 0:
        exp = fn(x, (kh, kw), stride=stride, padding=padding, out_hw=out_hw, act_min=amin, act_max=amax)
    params = [batch, h, w, c, kh, kw, stride[0], stride[1], padding[0], padding[1], out_hw[0], out_hw[1],
              amin, amax, int(null_buf)]
    return Case(OP_MAXPOOL if kind == "max" else OP_AVGPOOL, params, [_arr(x, np.int8)], exp,
                expected_status, name or f"{kind}pool{kh}x{kw}", batch * out_hw[0] * out_hw[1] * c * kh * kw,
                {"h": h, "w": w, "c": c})


def softmax_case(rng: np.random.Generator, *, rows: int, row_size: int, input_scale: float | None = None,
                 beta: float = 1.0, name: str = "") -> Case:
    scale = float(input_scale if input_scale is not None else np.exp(rng.uniform(np.log(0.01), np.log(0.5))))
    mult, shift, diff_min = intref.softmax_params(scale, beta)
    center = rng.integers(-100, 100)
    spread = rng.integers(1, 128)
    x = np.clip(center + rng.integers(-spread, spread + 1, size=(rows, row_size)), -128, 127).astype(np.int8)
    exp = intref.softmax(x, mult, shift, diff_min)
    params = [rows, row_size, mult, shift, diff_min]
    return Case(OP_SOFTMAX, params, [_arr(x, np.int8)], exp, 0, name or f"softmax{row_size}", rows * row_size,
                {"scale": scale, "mult": mult, "shift": shift, "diff_min": diff_min})


def add_case(rng: np.random.Generator, *, n: int, name: str = "") -> Case:
    """arm_elementwise_add_s8 over `n` elements with TFLite's Add parameters for random scales."""
    s1, s2, so = (float(np.exp(rng.uniform(np.log(0.01), np.log(0.5)))) for _ in range(3))
    zp1, zp2, zpo = (int(v) for v in rng.integers(-128, 128, 3))
    act = _act(rng, zpo)
    p = intref.add_params(s1, s2, so)
    x1, x2 = (rng.integers(-128, 128, n).astype(np.int8) for _ in range(2))
    exp = intref.elementwise_add(x1, x2, in1_offset=-zp1, in2_offset=-zp2, out_offset=zpo, act_min=act[0],
                                 act_max=act[1], **p)
    params = [n, -zp1, p["in1_mult"], p["in1_shift"], -zp2, p["in2_mult"], p["in2_shift"], p["left_shift"], zpo,
              p["out_mult"], p["out_shift"], act[0], act[1]]
    return Case(OP_ADD, params, [_arr(x1, np.int8), _arr(x2, np.int8)], exp, 0, name or f"add{n}", 0, {})


def encode_cases(cases: Sequence[Case]) -> bytes:
    """Serialise cases for the C driver (little-endian int32 words, blobs padded to 4 bytes)."""
    parts = [struct.pack("<ii", 0x544E4E50, len(cases))]
    for c in cases:
        parts.append(struct.pack("<ii", c.op, len(c.params)))
        parts.append(struct.pack(f"<{len(c.params)}i", *[int(v) for v in c.params]))
        parts.append(struct.pack("<i", len(c.blobs)))
        for b in c.blobs:
            parts.append(struct.pack("<i", len(b)))
            parts.append(b + b"\0" * (-len(b) % 4))
    return b"".join(parts)


@dataclass
class Result:
    status: int
    out: bytes
    insn: int
    buf: int
    bufdsp: int
    guard_ok: bool


def parse_results(text: str, n: int) -> list[Result]:
    tags = qemu.parse_tagged(text)
    if tags.get("done", {}).get("cases") != n:
        raise AssertionError(f"driver did not finish all {n} cases; output tail:\n{text[-1500:]}")
    res = []
    for i in range(n):
        k = str(i)
        res.append(Result(int(tags["status"][k]), tags["hex"].get(k, b""), int(tags["insn"][k]),
                          int(tags["buf"][k]), int(tags["bufdsp"][k]), bool(tags["guard"][k])))
    return res


def check_results(cases: Sequence[Case], results: Sequence[Result], label: str) -> None:
    """Assert status, guard bytes and bit-exact outputs; the message names the first bad case."""
    for i, (c, r) in enumerate(zip(cases, results)):
        where = f"[{label}] case {i} ({c.name}, params={c.params})"
        assert r.status == c.expected_status, f"{where}: status {r.status} != {c.expected_status}"
        assert r.guard_ok, f"{where}: wrote past the output or scratch buffer"
        if c.expected is not None:
            got = np.frombuffer(r.out, dtype=np.int8)
            exp = c.expected.ravel()
            assert got.shape == exp.shape, f"{where}: {got.shape} outputs, expected {exp.shape}"
            bad = np.flatnonzero(got != exp)
            assert bad.size == 0, (f"{where}: {bad.size}/{exp.size} outputs differ, first at {bad[0]}: "
                                   f"got {got[bad[0]]} expected {exp[bad[0]]}")


# --------------------------------------------------------------------------- builds

def _digest(files: Sequence[Path], extra: Sequence[str]) -> str:
    h = hashlib.sha256()
    for f in sorted(set(map(Path, files))):
        h.update(str(f).encode())
        h.update(f.read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:20]


def _compiler_id(cc: str) -> str:
    return subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def _headers(include_dirs: Sequence[Path]) -> list[Path]:
    return [p for d in include_dirs for p in Path(d).rglob("*.h")]


def _compile_all(cc: str, flags: Sequence[str], sources: Sequence[Path], obj_dir: Path) -> list[Path]:
    obj_dir.mkdir(parents=True, exist_ok=True)

    def one(item):
        i, src = item
        obj = obj_dir / f"{i:04d}_{src.stem}.o"
        r = subprocess.run([cc, *flags, "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"compile failed: {src}\n{r.stderr}")
        if r.stderr.strip():
            raise RuntimeError(f"compiler warnings for {src}:\n{r.stderr}")
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, enumerate(sources)))


def _library_for(lib: str) -> tuple[list[Path], list[Path], bool]:
    """(sources, include dirs, strict) for 'portable' or 'cmsis' (needs CMSIS_NN_PATH), each with the
    add-on libraries (the project's own kernels) beside it."""
    own, own_inc = addon_sources()
    if lib == "portable":
        srcs, incs = library("portable").sources()
        return srcs + own, incs + own_inc, True
    if lib == "cmsis":
        root = os.environ.get("CMSIS_NN_PATH")
        if not root:
            raise RuntimeError("CMSIS_NN_PATH is not set")
        srcs, incs = library("cmsis-nn").sources(root)
        return srcs + own, incs + own_inc, False
    raise ValueError(lib)


def build_host_driver(lib: str = "portable") -> Path:
    """Host (x86) executable of the driver linked with the chosen kernel library (cached)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no host C compiler")
    srcs, incs, strict = _library_for(lib)
    flags = list(HOST_CFLAGS if strict else ("-std=c99", "-O2")) + [f"-I{d}" for d in incs]
    key = _digest(srcs + _headers(incs), [DRIVER_C, *flags, _compiler_id(cc), "host"])
    out = CACHE_DIR / f"host_{lib}_{key}"
    exe = out / "driver"
    if exe.exists():
        return exe
    tmp = Path(tempfile.mkdtemp(prefix="build_", dir=_ensure_cache()))
    drv = tmp / "driver.c"
    drv.write_text(DRIVER_C)
    objs = _compile_all(cc, flags, srcs, tmp / "lib")
    drv_obj = _compile_all(cc, list(HOST_CFLAGS) + [f"-I{d}" for d in incs], [drv], tmp / "drv")
    r = subprocess.run([cc, *map(str, drv_obj + objs), "-o", str(tmp / "driver")], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"host link failed:\n{r.stderr}")
    return _publish(tmp, out) / "driver"


def build_qemu_driver(lib: str = "portable", opt: str = "-O2", isa: str = "cortex-m4") -> Path:
    """ELF of the driver + chosen kernel library + harness for `isa` (a `qemu.CPU_FLAGS` key; the
    mps2-an386 Cortex-M4 runs all of them), cached."""
    tc = qemu.find_toolchain()
    if tc is None:
        raise RuntimeError(qemu.toolchain_problem())
    srcs, incs, strict = _library_for(lib)
    key = _digest(srcs + _headers(incs) + qemu.harness_sources() + [qemu.LINKER_SCRIPT]
                  + list(qemu.HARNESS_DIR.glob("*.h")),
                  [DRIVER_C, opt, isa, _compiler_id(tc.gcc), "qemu", Path(qemu.__file__).read_text()])
    out = CACHE_DIR / f"{isa}_{lib}_{key}"
    elf = out / "driver.elf"
    if elf.exists():
        return elf
    tmp = Path(tempfile.mkdtemp(prefix="build_", dir=_ensure_cache()))
    drv = tmp / "driver.c"
    drv.write_text(DRIVER_C)
    cflags = ["-Wall", "-Wextra", "-Werror"] if strict else []
    # library + harness with strict warnings (portable), driver alongside
    qemu.build_elf([drv, *srcs], incs, tmp, defines=["PNN_QEMU"], name="driver",
                   options=qemu.BuildOptions(opt=opt, cpu_flags=qemu.CPU_FLAGS[isa], cflags=cflags))
    return _publish(tmp, out) / "driver.elf"


def _ensure_cache() -> Path:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return CACHE_DIR


def _publish(tmp: Path, final: Path) -> Path:
    try:
        tmp.rename(final)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def run_host(exe: Path, cases: Sequence[Case], timeout: float = 120.0) -> list[Result]:
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(encode_cases(cases))
        path = f.name
    try:
        r = subprocess.run([str(exe), path], capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise AssertionError(f"host driver exited {r.returncode}: {r.stderr[-2000:]}")
    return parse_results(r.stdout, len(cases))


def run_qemu(elf: Path, cases: Sequence[Case], timeout: float = 120.0) -> list[Result]:
    text, code = qemu.run_elf(elf, encode_cases(cases), timeout=timeout)
    if code != 0:
        raise AssertionError(f"QEMU driver exited {code}; output tail:\n{text[-2000:]}")
    return parse_results(text, len(cases))
