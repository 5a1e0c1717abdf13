"""Portable CMSIS-NN kernels: warning-free builds, bit-exact with intref on host gcc and on a
Cortex-M4 under QEMU, CMSIS-NN argument errors, DSP scratch sizes, and (with CMSIS_NN_PATH)
identical behaviour to a real CMSIS-NN checkout."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import _cbuild as cb
from nas.export import qemu
from nas.int8 import intref
from nas.libraries import library
from nas.libraries.cmsis_nn import PORTABLE_DIR

SEED = 20240611
STRICT = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]


def _need_qemu():
    if qemu.find_toolchain() is None:
        pytest.skip(f"Cortex-M4 toolchain unavailable: {qemu.toolchain_problem()}")


def _need_cmsis():
    root = os.environ.get("CMSIS_NN_PATH")
    if not root:
        pytest.skip("CMSIS_NN_PATH not set (point it at a CMSIS-NN v7 checkout to compare with the real library)")
    if not (Path(root) / "Include" / "arm_nnfunctions.h").is_file():
        pytest.skip(f"CMSIS_NN_PATH={root} has no Include/arm_nnfunctions.h")


# --------------------------------------------------------------------------- random layers

def _same(rng, h, w, kh, kw, stride):
    oh, pt, _ = intref.same_padding(h, kh, stride[0])
    ow, pl, _ = intref.same_padding(w, kw, stride[1])
    return (pt, pl), (oh, ow)


def random_cases(rng: np.random.Generator) -> list[cb.Case]:
    cases: list[cb.Case] = []
    # regular convolutions: odd kernels with TF 'SAME' (asymmetric) padding, stride 1/2, valid padding
    for _ in range(40):
        kh, kw = [(3, 3), (5, 5), (3, 1), (1, 3), (10, 4), (2, 2), (5, 3)][rng.integers(0, 7)]
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        h, w = int(rng.integers(kh, kh + 12)), int(rng.integers(kw, kw + 10))
        cin, cout = int(rng.integers(1, 13)), int(rng.integers(1, 11))
        if rng.random() < 0.7:
            pad, out_hw = _same(rng, h, w, kh, kw, stride)
        else:
            pad, out_hw = (0, 0), None
        cases.append(cb.conv_case(rng, h=h, w=w, cin=cin, cout=cout, kh=kh, kw=kw, stride=stride, padding=pad,
                                  out_hw=out_hw, bias=bool(rng.random() < 0.85),
                                  batch=2 if rng.random() < 0.1 else 1))
    # 1x1 (fast path and strided path)
    for _ in range(14):
        stride = (1, 1) if rng.random() < 0.6 else (2, 2)
        cases.append(cb.conv_case(rng, h=int(rng.integers(1, 10)), w=int(rng.integers(1, 10)),
                                  cin=int(rng.integers(1, 40)), cout=int(rng.integers(1, 20)), kh=1, kw=1,
                                  stride=stride, batch=2 if rng.random() < 0.2 else 1))
    # H = 1 inputs (arm_convolve_1_x_n_s8 dispatch), dilation, groups, direct entry points
    cases.append(cb.conv_case(rng, h=1, w=20, cin=4, cout=6, kh=1, kw=5, padding=(0, 2)))
    cases.append(cb.conv_case(rng, h=1, w=17, cin=8, cout=3, kh=1, kw=3, stride=(1, 2), padding=(0, 1), out_hw=(1, 9)))
    cases.append(cb.conv_case(rng, h=9, w=9, cin=3, cout=4, kh=3, kw=3, dilation=(2, 2), padding=(2, 2)))
    cases.append(cb.conv_case(rng, h=6, w=7, cin=6, cout=4, kh=3, kw=3, padding=(1, 1), groups=2))
    cases.append(cb.conv_case(rng, h=8, w=6, cin=5, cout=7, kh=3, kw=3, padding=(1, 1), entry=cb.CONV_S8))
    cases.append(cb.conv_case(rng, h=5, w=5, cin=8, cout=5, kh=1, kw=1, entry=cb.CONV_1X1_FAST))
    cases.append(cb.conv_case(rng, h=7, w=7, cin=8, cout=5, kh=1, kw=1, stride=(2, 3), entry=cb.CONV_1X1))
    cases.append(cb.conv_case(rng, h=1, w=12, cin=4, cout=5, kh=1, kw=3, padding=(0, 1), entry=cb.CONV_1XN))
    # depthwise: ch_mult 1 3x3 (3x3 kernel) and 5x5 (opt kernel), stride 2, ch_mult > 1, dilation, batch 2
    for _ in range(30):
        k = [3, 5, 3, 5, 1, 7][rng.integers(0, 6)]
        stride = (1, 1) if rng.random() < 0.6 else (2, 2)
        h, w, c = int(rng.integers(k, k + 10)), int(rng.integers(k, k + 8)), int(rng.integers(1, 19))
        ch_mult = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
        pad, out_hw = _same(rng, h, w, k, k, stride) if rng.random() < 0.8 else ((0, 0), None)
        cases.append(cb.dw_case(rng, h=h, w=w, c=c, kh=k, kw=k, ch_mult=ch_mult, stride=stride, padding=pad,
                                out_hw=out_hw, bias=bool(rng.random() < 0.85)))
    cases.append(cb.dw_case(rng, h=10, w=6, c=5, kh=3, kw=3, dilation=(2, 2), padding=(2, 2)))
    cases.append(cb.dw_case(rng, h=6, w=6, c=7, kh=3, kw=3, padding=(1, 1), batch=2))
    cases.append(cb.dw_case(rng, h=9, w=5, c=8, kh=3, kw=5, padding=(1, 2), stride=(2, 1), out_hw=(5, 5)))
    cases.append(cb.dw_case(rng, h=7, w=7, c=6, kh=3, kw=3, padding=(1, 1), entry=cb.DW_GENERIC))
    cases.append(cb.dw_case(rng, h=7, w=7, c=6, kh=3, kw=3, padding=(1, 0), entry=cb.DW_3X3))
    cases.append(cb.dw_case(rng, h=7, w=7, c=9, kh=5, kw=5, padding=(2, 2), entry=cb.DW_OPT))
    # fully connected
    for _ in range(16):
        cases.append(cb.fc_case(rng, depth=int(rng.integers(1, 300)), cout=int(rng.integers(1, 40)),
                                batch=int(rng.integers(1, 4)), bias=bool(rng.random() < 0.85),
                                filter_offset=int(rng.integers(-5, 6)) if rng.random() < 0.2 else 0))
    # pooling
    for _ in range(16):
        kind = "max" if rng.random() < 0.5 else "avg"
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        h, w, c = int(rng.integers(k[0], 12)), int(rng.integers(k[1], 12)), int(rng.integers(1, 20))
        pad, out_hw = _same(rng, h, w, k[0], k[1], stride) if rng.random() < 0.5 else ((0, 0), None)
        cases.append(cb.pool_case(rng, kind, h=h, w=w, c=c, kh=k[0], kw=k[1], stride=stride, padding=pad,
                                  out_hw=out_hw, batch=2 if rng.random() < 0.15 else 1))
    cases.append(cb.pool_case(rng, "avg", h=8, w=4, c=24, kh=8, kw=4, name="global_avg"))
    # softmax
    for _ in range(10):
        cases.append(cb.softmax_case(rng, rows=int(rng.integers(1, 5)), row_size=int(rng.integers(1, 120))))
    cases.append(cb.softmax_case(rng, rows=2, row_size=50, input_scale=1 / 16))
    # element-wise add (residual blocks): lengths of every residue mod 4
    for n in (1, 2, 3, 4, 5, 7, 64, 301, 1200):
        cases.append(cb.add_case(rng, n=n))
    return cases


@pytest.fixture(scope="module")
def cases() -> list[cb.Case]:
    return random_cases(np.random.default_rng(SEED))


def arg_error_cases(dsp: bool) -> list[cb.Case]:
    """Calls that CMSIS-NN rejects with ARM_CMSIS_NN_ARG_ERROR (-1); some only on a DSP target."""
    rng = np.random.default_rng(5)
    err = -1
    cs = [
        cb.conv_case(rng, h=6, w=6, cin=3, cout=4, kh=3, kw=3, padding=(1, 1), entry=cb.CONV_S8, null_buf=True,
                     expected_status=err, name="conv_s8 NULL buf"),
        cb.conv_case(rng, h=6, w=6, cin=3, cout=4, kh=3, kw=3, padding=(1, 1), null_buf=True, expected_status=err,
                     name="wrapper generic NULL buf"),
        cb.conv_case(rng, h=5, w=5, cin=4, cout=4, kh=1, kw=1, padding=(1, 1), entry=cb.CONV_1X1_FAST,
                     expected_status=err, name="1x1 fast with pad"),
        cb.conv_case(rng, h=5, w=5, cin=4, cout=4, kh=1, kw=1, stride=(2, 2), padding=(1, 1), entry=cb.CONV_1X1,
                     expected_status=err, name="1x1 with pad"),
        cb.conv_case(rng, h=2, w=8, cin=4, cout=4, kh=1, kw=3, entry=cb.CONV_1XN, expected_status=err,
                     name="1xn with H=2"),
        cb.dw_case(rng, h=6, w=6, c=4, kh=3, kw=3, padding=(2, 2), out_hw=(8, 8), entry=cb.DW_3X3,
                   expected_status=err, name="dw3x3 pad 2"),
        cb.dw_case(rng, h=6, w=6, c=4, kh=3, kw=3, ch_mult=2, entry=cb.DW_OPT, expected_status=err,
                   name="dw opt ch_mult 2"),
        cb.pool_case(rng, "max", h=4, w=4, c=3, kh=2, kw=2, batch=0, expected_status=err, name="maxpool n=0"),
        cb.pool_case(rng, "avg", h=4, w=4, c=3, kh=2, kw=2, batch=0, expected_status=err, name="avgpool n=0"),
    ]
    # target-dependent scratch requirements: NULL is fine where the target needs no buffer
    dw_null = cb.dw_case(rng, h=7, w=7, c=8, kh=5, kw=5, padding=(2, 2), null_buf=True,
                         expected_status=err if dsp else 0, name="dw opt NULL buf")
    avg_null = cb.pool_case(rng, "avg", h=6, w=6, c=5, kh=2, kw=2, null_buf=True,
                            expected_status=err if dsp else 0, name="avgpool NULL buf")
    pw_null = cb.conv_case(rng, h=4, w=4, cin=8, cout=3, kh=1, kw=1, null_buf=True, name="1x1 fast NULL buf")
    for c in (dw_null, avg_null, pw_null):
        if c.expected_status != 0:
            c.expected = None
        cs.append(c)
    return cs


# --------------------------------------------------------------------------- scratch-size contract

def _ceil4(v: int) -> int:
    return (v + 3) // 4 * 4


def dsp_buffer_size(c: cb.Case) -> int:
    """Cortex-M4 (GCC) scratch sizes of CMSIS-NN v7, shared deploy.md section 1.5."""
    p = c.params
    if c.op == cb.OP_CONV:
        n, h, w, cin, cout, kh, kw, sh, sw, ph, pw, dh, dw = p[:13]
        if ph == 0 and pw == 0 and kh == 1 and kw == 1 and dh == 1 and dw == 1:
            return 0
        return 4 * _ceil4(kh * kw * cin)
    if c.op == cb.OP_DW:
        n, h, w, cin, mult, kh, kw, sh, sw, ph, pw, dh, dw = p[:13]
        if mult == 1 and n == 1 and dh == 1 and dw == 1:
            return 0 if (kh == 3 and kw == 3 and ph <= 1 and pw <= 1) else 2 * cin * kh * kw
        return 0
    if c.op == cb.OP_AVGPOOL:
        return 4 * p[3]
    return 0


def host_buffer_size(c: cb.Case) -> int:
    """Pure-C (no DSP) sizes: only the generic convolution needs scratch."""
    return dsp_buffer_size(c) if c.op == cb.OP_CONV else 0


def _check_sizes(cases, results, dsp: bool):
    for c, r in zip(cases, results):
        assert r.bufdsp == dsp_buffer_size(c), f"{c.name} {c.params}: _dsp size {r.bufdsp}"
        entry = c.params[20] if c.op in (cb.OP_CONV, cb.OP_DW) else None
        if (c.op == cb.OP_CONV and entry == cb.CONV_S8) or (c.op == cb.OP_DW and entry == cb.DW_OPT):
            continue  # the driver asked that kernel's own size function
        exp = dsp_buffer_size(c) if dsp else host_buffer_size(c)
        assert r.buf == exp, f"{c.name} {c.params}: target size {r.buf}, expected {exp}"


# --------------------------------------------------------------------------- builds

def _compile(cc: list[str], flags: list[str]) -> None:
    for src in library("portable").sources()[0]:
        res = subprocess.run([*cc, *flags, f"-I{PORTABLE_DIR}", "-c", str(src), "-o", os.devnull],
                             capture_output=True, text=True)
        assert res.returncode == 0 and not res.stderr.strip(), f"{' '.join(cc)} {src.name}:\n{res.stderr}"


def test_host_build_is_warning_free():
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("host gcc not found")
    _compile([cc], STRICT)
    _compile([cc], STRICT + ["-pedantic", "-O0"])


def test_cortex_m_builds_are_warning_free():
    _need_qemu()
    gcc = qemu.find_toolchain().gcc
    _compile([gcc], [*qemu.M4_CFLAGS, *STRICT])  # DSP (SIMD) path
    _compile([gcc], ["-mcpu=cortex-m3", "-mthumb", *STRICT])  # pure-C path on a target


def test_public_headers_only_declare_cmsis_names():
    text = (PORTABLE_DIR / "arm_nnfunctions.h").read_text()
    for name in ("arm_convolve_wrapper_s8", "arm_convolve_s8", "arm_convolve_1x1_s8_fast",
                 "arm_depthwise_conv_wrapper_s8", "arm_depthwise_conv_s8", "arm_fully_connected_s8",
                 "arm_max_pool_s8", "arm_avgpool_s8", "arm_softmax_s8",
                 "arm_convolve_wrapper_s8_get_buffer_size_dsp", "arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp",
                 "arm_fully_connected_s8_get_buffer_size_dsp", "arm_avgpool_s8_get_buffer_size_dsp"):
        assert f" {name}(" in text, name
    assert "const cmsis_nn_dims *upscale_dims" in text  # 12-argument v7 arm_convolve_s8


# --------------------------------------------------------------------------- host

@pytest.fixture(scope="module")
def host_portable(cases):
    exe = cb.build_host_driver("portable")
    return cb.run_host(exe, cases)


def test_host_bit_exact_with_intref(cases, host_portable):
    assert len(cases) >= 100
    cb.check_results(cases, host_portable, "host portable")


def test_host_buffer_sizes(cases, host_portable):
    _check_sizes(cases, host_portable, dsp=False)


def test_host_argument_errors():
    cs = arg_error_cases(dsp=False)
    cb.check_results(cs, cb.run_host(cb.build_host_driver("portable"), cs), "host portable")


# --------------------------------------------------------------------------- QEMU (Cortex-M4, DSP path)

@pytest.fixture(scope="module")
def qemu_portable(cases):
    _need_qemu()
    return cb.run_qemu(cb.build_qemu_driver("portable"), cases)


def test_qemu_bit_exact_with_intref(cases, qemu_portable):
    cb.check_results(cases, qemu_portable, "qemu portable")


def test_qemu_buffer_sizes(cases, qemu_portable):
    _check_sizes(cases, qemu_portable, dsp=True)


def test_qemu_reports_instruction_counts(cases, qemu_portable):
    lines = []
    for c, r in zip(cases, qemu_portable):
        assert r.insn > 0, f"{c.name}: no instruction count"
        if c.op in (cb.OP_CONV, cb.OP_DW, cb.OP_FC) and c.macs >= 2000:
            per_mac = r.insn / c.macs
            assert 0.5 < per_mac < 60, f"{c.name}: {per_mac:.2f} instructions/MAC"
            lines.append(f"{c.name:10s} {c.macs:7d} MACs {per_mac:6.2f} insn/MAC")
    print("\n".join(lines))


def test_qemu_argument_errors():
    _need_qemu()
    cs = arg_error_cases(dsp=True)
    cb.check_results(cs, cb.run_qemu(cb.build_qemu_driver("portable"), cs), "qemu portable")


# --------------------------------------------------------------------------- real CMSIS-NN

def _same_as_portable(cases, mine, real, label):
    cb.check_results(cases, real, label)  # real library vs intref
    for c, a, b in zip(cases, mine, real):
        assert (a.status, a.out, a.buf, a.bufdsp) == (b.status, b.out, b.buf, b.bufdsp), f"{label}: {c.name} {c.params}"


def test_real_cmsis_nn_host_identical(cases, host_portable):
    _need_cmsis()
    real = cb.run_host(cb.build_host_driver("cmsis"), cases)
    _same_as_portable(cases, host_portable, real, "host CMSIS-NN")
    errs = arg_error_cases(dsp=False)
    cb.check_results(errs, cb.run_host(cb.build_host_driver("cmsis"), errs), "host CMSIS-NN")


def test_real_cmsis_nn_qemu_identical(cases, qemu_portable):
    _need_cmsis()
    _need_qemu()
    elf = cb.build_qemu_driver("cmsis")
    real = cb.run_qemu(elf, cases)
    _same_as_portable(cases, qemu_portable, real, "qemu CMSIS-NN")
    errs = arg_error_cases(dsp=True)
    cb.check_results(errs, cb.run_qemu(elf, errs), "qemu CMSIS-NN")
