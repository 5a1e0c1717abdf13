"""The project's own kernels (nas/libraries/csrc/nas_kernels: the 1-channel, depthwise and pointwise
convolutions): bit-exact with the integer reference
over random shapes (odd sizes, paddings, strides, channel counts of every residue mod 4, both
requantisation paths, every activation range), on the host (gcc -Wall -Wextra -Werror), on a
Cortex-M4 (DSP paths) and a Cortex-M3 (the plain C fallback) under QEMU; argument errors; the
scratch size the cost model counts equals the C's."""
from __future__ import annotations

import numpy as np
import pytest

import _cbuild as cb
from nas.cost import nas_kernels
from nas.export import qemu
from nas.int8 import intref
from nas.kinds.base import KernelCall
from nas.libraries import ADDONS
from nas.libraries import nas_kernels as own_lib
from nas.libraries.nas_kernels import plane

OWN = ADDONS[nas_kernels.LIBRARY]

SEED = 20250120
KERNELS = [(3, 3), (5, 5), (3, 5), (5, 3), (1, 1), (2, 2), (4, 4), (7, 7), (1, 3), (3, 1), (1, 5)]


def _pad_and_out(rng, h, w, kh, kw, stride):
    """'same' as TF (asymmetric), the project's symmetric k // 2, or none."""
    r = rng.random()
    if r < 0.4:
        oh, pt, _ = intref.same_padding(h, kh, stride[0])
        ow, pl, _ = intref.same_padding(w, kw, stride[1])
        return (pt, pl), (oh, ow)
    if r < 0.8:
        pad = (kh // 2, kw // 2)
        return pad, (intref.conv_output_size(h, kh, stride[0], pad[0]),
                     intref.conv_output_size(w, kw, stride[1], pad[1]))
    return (0, 0), None


def _geometry(rng, kmax=12):
    kh, kw = KERNELS[rng.integers(0, len(KERNELS))]
    stride = tuple(int(v) for v in rng.choice([1, 1, 2, 2, 3], size=2))
    h, w = int(rng.integers(kh, kh + kmax)), int(rng.integers(kw, kw + 3 * kmax))
    pad, out_hw = _pad_and_out(rng, h, w, kh, kw, stride)
    return dict(h=h, w=w, kh=kh, kw=kw, stride=stride, padding=pad, out_hw=out_hw)


def random_cases(rng: np.random.Generator) -> list[cb.Case]:
    cases = []
    for i in range(60):
        g = _geometry(rng)
        cases.append(cb.conv_case(rng, cin=1, cout=int(rng.integers(1, 41)), entry=cb.CONV_NAS_C1,
                                  bias=bool(rng.random() < 0.85), name=f"c1_{i}", **g))
    for i in range(60):
        g = _geometry(rng)
        cases.append(cb.dw_case(rng, c=int(rng.integers(1, 41)), entry=cb.DW_NAS, bias=bool(rng.random() < 0.85),
                                name=f"dw_{i}", **g))
    for i in range(50):
        stride = [(1, 1), (1, 1), (2, 2), (1, 2), (3, 1), (2, 3)][rng.integers(0, 6)]
        cases.append(cb.conv_case(rng, h=int(rng.integers(1, 12)), w=int(rng.integers(1, 16)),
                                  cin=int(rng.integers(1, 70)), cout=int(rng.integers(1, 41)), kh=1, kw=1,
                                  stride=stride, entry=cb.CONV_NAS_1X1, bias=bool(rng.random() < 0.85),
                                  name=f"pw_{i}"))
    # the thesis's layers: the 5x5/2 spectrogram conv and both depthwise 5x5s of Stride-DS-24, 3x3/1
    cases.append(cb.conv_case(rng, h=31, w=60, cin=1, cout=24, kh=5, kw=5, stride=(2, 2), padding=(2, 2),
                              entry=cb.CONV_NAS_C1, name="stride_ds_24_conv0"))
    cases.append(cb.conv_case(rng, h=31, w=60, cin=1, cout=24, kh=3, kw=3, stride=(1, 1), padding=(1, 1),
                              entry=cb.CONV_NAS_C1, name="c1_3x3_s1"))
    cases.append(cb.dw_case(rng, h=16, w=30, c=24, kh=5, kw=5, stride=(2, 2), padding=(2, 2), entry=cb.DW_NAS,
                            name="stride_ds_24_dw1"))
    cases.append(cb.dw_case(rng, h=8, w=15, c=36, kh=5, kw=5, stride=(2, 2), entry=cb.DW_NAS, name="stride_ds_24_dw3"))
    cases.append(cb.dw_case(rng, h=15, w=20, c=24, kh=5, kw=5, stride=(1, 1), padding=(2, 2), entry=cb.DW_NAS,
                            name="dw_5x5_s1"))
    cases.append(cb.conv_case(rng, h=8, w=15, cin=24, cout=36, kh=1, kw=1, entry=cb.CONV_NAS_1X1,
                              name="stride_ds_24_conv2"))
    return cases


@pytest.fixture(scope="module")
def cases() -> list[cb.Case]:
    return random_cases(np.random.default_rng(SEED))


def arg_error_cases() -> list[cb.Case]:
    rng = np.random.default_rng(7)
    err = -1
    return [
        cb.conv_case(rng, h=8, w=8, cin=2, cout=4, kh=3, kw=3, padding=(1, 1), entry=cb.CONV_NAS_C1,
                     expected_status=err, name="c1 with 2 input channels"),
        cb.conv_case(rng, h=9, w=9, cin=1, cout=4, kh=3, kw=3, dilation=(2, 2), padding=(2, 2),
                     entry=cb.CONV_NAS_C1, expected_status=err, name="c1 dilation 2"),
        cb.conv_case(rng, h=8, w=8, cin=1, cout=4, kh=3, kw=3, padding=(1, 1), batch=2, entry=cb.CONV_NAS_C1,
                     expected_status=err, name="c1 batch 2"),
        cb.conv_case(rng, h=8, w=8, cin=1, cout=4, kh=3, kw=3, padding=(1, 1), null_buf=True,
                     entry=cb.CONV_NAS_C1, expected_status=err, name="c1 NULL buf"),
        cb.dw_case(rng, h=8, w=8, c=4, kh=3, kw=3, ch_mult=2, padding=(1, 1), entry=cb.DW_NAS,
                   expected_status=err, name="dw ch_mult 2"),
        cb.dw_case(rng, h=9, w=9, c=4, kh=3, kw=3, dilation=(2, 2), padding=(2, 2), entry=cb.DW_NAS,
                   expected_status=err, name="dw dilation 2"),
        cb.dw_case(rng, h=8, w=8, c=5, kh=5, kw=5, padding=(2, 2), null_buf=True, entry=cb.DW_NAS,
                   expected_status=err, name="dw NULL buf"),
        cb.conv_case(rng, h=8, w=8, cin=4, cout=4, kh=1, kw=1, padding=(1, 1), out_hw=(10, 10),
                     entry=cb.CONV_NAS_1X1, expected_status=err, name="pw with padding"),
        cb.conv_case(rng, h=8, w=8, cin=4, cout=4, kh=3, kw=3, padding=(1, 1), entry=cb.CONV_NAS_1X1,
                     expected_status=err, name="pw with a 3x3 kernel"),
        cb.conv_case(rng, h=8, w=8, cin=4, cout=4, kh=1, kw=1, null_buf=True, entry=cb.CONV_NAS_1X1,
                     expected_status=err, name="pw NULL buf"),
    ]


def _call(c: cb.Case) -> KernelCall:
    p = c.params
    if c.op == cb.OP_CONV:
        return KernelCall("conv", p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[13], p[14])
    return KernelCall("dw", p[1], p[2], p[3], p[3] * p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[13], p[14])


def _kernel_of(c: cb.Case) -> str:
    entry = c.params[20]
    if c.op == cb.OP_DW:
        return "nas_dw"
    return "nas_conv_c1" if entry == cb.CONV_NAS_C1 else "nas_conv_1x1"


def _check(cases, results, label):
    cb.check_results(cases, results, label)
    for c, r in zip(cases, results):
        call, k = _call(c), own_lib.KERNELS[_kernel_of(c)]
        assert k.applies(call) or (k.kernel.name == "nas_conv_c1" and own_lib.pointwise(call))
        want = k.scratch_bytes(call)
        assert r.buf == want, f"{label} {c.name} {call}: C asks {r.buf} B, the library says {want}"


def test_cases_cover_the_geometry(cases):
    pw = [_call(c) for c in cases if _kernel_of(c) == "nas_conv_1x1"]
    assert {c.cin % 4 for c in pw} == {c.cout % 4 for c in pw} == {0, 1, 2, 3}
    assert {c.oh * c.ow % 2 for c in pw} == {0, 1} and {c.sw for c in pw} >= {1, 2, 3}
    calls = [_call(c) for c in cases if _kernel_of(c) != "nas_conv_1x1"]
    assert {c.cout % 4 for c in calls if c.op == "conv"} == {0, 1, 2, 3}
    assert {c.cout % 4 for c in calls if c.op == "dw"} == {0, 1, 2, 3}
    for op in ("conv", "dw"):
        mine = [c for c in calls if c.op == op]
        assert {c.sw for c in mine} >= {1, 2, 3} and {c.ow % 4 for c in mine} == {0, 1, 2, 3}
        assert any(c.ph or c.pw for c in mine) and any(not (c.ph or c.pw) for c in mine)
        assert {plane(c).np for c in mine} >= {1, 2, 3, 4}
    shifts = np.concatenate([np.frombuffer(c.blobs[4], np.int32) for c in cases])
    assert (shifts > 0).any() and (shifts < 0).any()      # both requantisation paths


def test_host_bit_exact(cases):
    _check(cases, cb.run_host(cb.build_host_driver("portable"), cases), "host")


def test_host_argument_errors():
    errs = arg_error_cases()
    cb.check_results(errs, cb.run_host(cb.build_host_driver("portable"), errs), "host")


@pytest.mark.parametrize("isa", ["cortex-m4", "cortex-m3"])
def test_qemu_bit_exact(cases, isa):
    if qemu.find_toolchain() is None:
        pytest.skip(f"Cortex-M toolchain unavailable: {qemu.toolchain_problem()}")
    elf = cb.build_qemu_driver("portable", isa=isa)
    _check(cases, cb.run_qemu(elf, cases), f"qemu {isa}")
    errs = arg_error_cases()
    cb.check_results(errs, cb.run_qemu(elf, errs), f"qemu {isa}")


def test_cost_model_gives_layers_to_the_faster_kernel_and_counts_its_scratch():
    from nas.arch.spec import ArchSpec
    from nas.budget import Budget
    from nas.calibrate import REPO
    from nas.cost.analytic import estimate

    budget = Budget.load(REPO / "budgets" / "stm32l476.yaml")
    spec = ArchSpec.load(REPO / "specs" / "thesis" / "stride-ds-24.yaml")
    mine, cmsis = estimate(spec, budget), estimate(spec, budget, own=False)
    assert [lc.kernel for lc in mine.layers][:2] == ["nas_conv_c1", "nas_dw"]
    assert all(k.library == "cmsis-nn" for layer in cmsis.chip.choices for k in layer)
    for lc, ref, choices in zip(mine.layers, cmsis.layers, mine.chip.choices):
        assert lc.instructions <= ref.instructions      # a layer only changes kernel when it gets faster
        (choice,) = choices
        if choice.library == OWN.name:
            call = lc.calls[0]
            assert lc.scratch_bytes == OWN.scratch_bytes(call, True) and lc.kernels == (OWN.kernel(call, True),)
            assert lc.arena_bytes == ref.arena_bytes - ref.scratch_bytes + -(-lc.scratch_bytes // 4) * 4
    assert mine.instructions_per_window < 0.6 * cmsis.instructions_per_window
    assert mine.chip.kernel_code_bytes != cmsis.chip.kernel_code_bytes
    assert [lc.kernel for lc in mine.layers][2:5] == ["nas_conv_1x1", "nas_dw", "nas_conv_1x1"]
    with pytest.raises(ValueError, match="no own kernel"):
        OWN.kernel(mine.layers[5].calls[0], True)       # a dense layer


def test_own_kernels_measured_on_every_configuration_for_these_sources():
    """The fitted data names the digest of the C it measured: a change of the kernels without a new
    `python -m nas.calibrate --libraries nas` fails here instead of pricing stale code."""
    from nas.cost import codesize, cpu

    insn, sizes = cpu.instruction_data(), codesize.codesize_data()
    for isa in cpu.ISAS:
        for opt in cpu.OPT_LEVELS:
            key = cpu.config_key(nas_kernels.LIBRARY, isa, opt)
            assert insn["configs"][key]["library"] == nas_kernels.description(), key
            assert sizes["configs"][key]["library"] == nas_kernels.description(), key
            assert set(insn["configs"][key]["kernels"]) == set(nas_kernels.FEATURES), key
            assert set(sizes["configs"][key]["groups"]) == set(own_lib.KERNELS), key
            for k, v in insn["configs"][key]["kernels"].items():
                # held out (5-fold) on the default space's layers; the largest are single tiny calls
                assert v["holdout_relative_error"]["space"]["max"] <= 0.03, (key, k)
                assert v["holdout_relative_error"]["space"]["median"] <= 0.002, (key, k)


def test_report_records_each_layers_kernel_and_instructions():
    from nas.arch.spec import ArchSpec
    from nas.budget import Budget
    from nas.calibrate import REPO
    from nas.cost import analytic as costmodel
    from nas.export.measure import cost_summary

    budget = Budget.load(REPO / "budgets" / "stm32l476.yaml")
    spec = ArchSpec.load(REPO / "specs" / "thesis" / "stride-ds-24.yaml")
    cost = costmodel.estimate(spec, budget)
    layers = cost_summary(cost)["layers"]
    assert layers[0]["kernel"] == "nas_conv_c1" and layers[0]["functions"] == ["nas_convolve_c1_s8"]
    assert layers[0]["libraries"] == ["nas"] and layers[5]["libraries"] == ["cmsis-nn"]
    assert layers[5]["functions"] == ["arm_fully_connected_s8"]
    for row, lc in zip(layers, cost.layers):
        assert row["instructions"] == round(lc.instructions)
        assert row["instructions_per_mac"] == (lc.instructions / lc.macs if lc.macs else None)
    table = costmodel.report(spec, budget, cost)          # the export README's and nas.cost's table
    assert "insn/MAC" in table and "nas_conv_c1" in table
