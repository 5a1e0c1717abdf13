"""nas.cost.cpu / codesize / frontend: the CPU and code-size models against QEMU counts and ELFs of exported models.

The portable kernels are checked always (with arm-none-eabi-gcc + QEMU); the real CMSIS-NN when
CMSIS_NN_PATH names a checkout (the shipped data was fitted on v7.0.0). The full sweep (60 random
networks + the thesis models, three optimisation levels) is bench/bench_chip.py.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from nas.arch.space import InvalidArchitecture, SearchSpace
from nas.arch.spec import ArchSpec
from nas.calibrate import DEFAULT_SPACE, REPO
from nas.cost import analytic as costmodel
from nas.cost import codesize, cpu, frontend
from nas.cost.cpu import KernelCall, dispatch
from nas.export import qemu
from nas.libraries import library

INSN_TOLERANCE = 0.05     # predicted instructions per inference within 5 % of the QEMU count
FLASH_TOLERANCE = 0.03    # ELF FLASH within 3 % below the estimate (and never above)


def test_data_covers_every_configuration_with_provenance():
    insn, sizes = cpu.instruction_data(), codesize.codesize_data()
    for lib in cpu.LIBRARIES:
        for isa in cpu.ISAS:
            for opt in cpu.OPT_LEVELS:
                key = cpu.config_key(lib, isa, opt)
                assert set(insn["configs"][key]["kernels"]) == set(cpu.KERNELS), key
                assert insn["configs"][key]["cflags"].endswith(f"-{opt}")
                assert set(sizes["configs"][key]["groups"]) == set(library(lib).ops), key
                assert sizes["configs"][key]["glue"]["per_layer"], key
                assert frontend.frontend_model(frontend.frontend_isa(isa, True), opt).frame
                fixed = frontend.frontend_model(isa, opt, arithmetic="fixed")
                assert fixed.frame["hop_sample"] and set(fixed.code_bytes) == set(frontend.FFT_LENGTHS), key
    assert "CMSIS-NN v7.0.0" in insn["configs"]["cmsis-nn/cortex-m4/O2"]["library"]
    assert "arm-none-eabi-gcc" in insn["compiler"] and "QEMU" in insn["qemu"]


def _brute_valid(n_out, size, k, s, p):
    taps = [sum(0 <= o * s - p + t < size for t in range(k)) for o in range(n_out)]
    return sum(taps), sum(v == k for v in taps), sum(v == 3 for v in taps)


@pytest.mark.parametrize("seed", range(40))
def test_valid_tap_counts(seed):
    rng = random.Random(seed)
    size, k, s = rng.randint(1, 30), rng.randint(1, 7), rng.randint(1, 3)
    p = rng.randint(0, k - 1)
    n_out = (size + 2 * p - k) // s + 1
    if n_out < 1:
        return
    assert cpu._valid(n_out, size, k, s, p) == _brute_valid(n_out, size, k, s, p)


def test_dispatch_follows_the_cmsis_nn_v7_wrappers():
    conv = dict(h=8, w=8, cin=4, cout=8, oh=8, ow=8)
    assert dispatch(KernelCall("conv", **conv)) == "conv_1x1_fast"
    assert dispatch(KernelCall("conv", kh=1, kw=1, sh=2, sw=2, **{**conv, "oh": 4, "ow": 4})) == "conv_1x1"
    assert dispatch(KernelCall("conv", kh=3, kw=3, ph=1, pw=1, **conv)) == "conv"
    assert dispatch(KernelCall("dw", kh=3, kw=3, ph=1, pw=1, **{**conv, "cout": 4})) == "dw_3x3"
    assert dispatch(KernelCall("dw", kh=3, kw=3, **{**conv, "cout": 4, "oh": 6, "ow": 6})) == "dw_3x3"
    assert dispatch(KernelCall("dw", kh=5, kw=5, ph=2, pw=2, **{**conv, "cout": 4})) == "dw_opt"
    with pytest.raises(ValueError, match="multiplier"):
        dispatch(KernelCall("dw", kh=3, kw=3, ph=1, pw=1, **conv))


def test_kernel_code_counts_shared_functions_once():
    m = codesize.codesize_model("cmsis-nn", "cortex-m4", "O2")
    both = m.kernel_bytes(["conv", "max_pool"])
    assert both < m.kernel_bytes(["conv"]) + m.kernel_bytes(["max_pool"])      # memcpy is in both groups
    assert both == sum(m.symbols[s] for s in set(m.groups["conv"]) | set(m.groups["max_pool"]))
    assert m.kernel_bytes(["conv", "conv"]) == m.kernel_bytes(["conv"])


def _sample_specs(n: int, seed: int) -> list[ArchSpec]:
    space = SearchSpace.load(DEFAULT_SPACE)
    rng, out = random.Random(seed), []
    while len(out) < n:
        try:
            spec = space.build(space.sample(rng), name=f"t{len(out)}")
        except InvalidArchitecture:
            continue
        if sum(c.macs for c in cpu.kernel_calls(spec)) < 3_000_000:     # keep the test quick
            out.append(spec)
    return out + [ArchSpec.load(REPO / "specs" / "thesis" / "stride-ds-12.yaml")]


@pytest.fixture(scope="module")
def toolchain():
    tc = qemu.find_toolchain()
    if tc is None:
        pytest.skip(f"Cortex-M toolchain unavailable: {qemu.toolchain_problem()}")
    return tc


def _check_library(lib: str, root: str | None, tmp: Path) -> None:
    """The exporter's own QEMU check (`verify.measure_m4`) on a few random networks: bit-exact, the
    instructions within INSN_TOLERANCE of the cost model, the ELF within FLASH_TOLERANCE below it."""
    from nas.calibrate.models import budget_for, random_model, write_c
    from nas.export import verify
    from nas.quant.quantize import run_int8

    budget = budget_for("cortex-m4")
    for k, spec in enumerate(_sample_specs(3, seed=7)):
        fe = spec.frontend
        x = np.random.default_rng(k).integers(-128, 128, size=(4, fe.frames, fe.n_mels)).astype(np.int8)
        qm = random_model(spec, k)
        write_c(qm, "cortex-m4", tmp / spec.name, x)
        cost = costmodel.estimate(spec, budget, "cmsis-nn" if root else "portable")
        m = verify.measure_m4(tmp / spec.name, tmp / spec.name / "m4", cost, budget, spec, x, run_int8(qm, x), root)
        assert m["bit_exact_windows"] == len(x)
        assert abs(m["instructions_vs_predicted"] - 1) <= INSN_TOLERANCE, (spec.name, m["instructions_vs_predicted"])
        assert 1 - FLASH_TOLERANCE <= m["flash_vs_estimate"] <= 1, (spec.name, m["flash_bytes"], m["flash_estimate_bytes"])
        assert m["arena_matches_cost_model"] and m["ram_within_estimate"]


def test_portable_kernels_predicted_within_tolerance(toolchain, tmp_path):
    _check_library("portable", None, tmp_path)


def test_cmsis_nn_predicted_within_tolerance(toolchain, tmp_path):
    from nas.calibrate.provenance import library_version

    root = os.environ.get("CMSIS_NN_PATH")
    if not root:
        pytest.skip("CMSIS_NN_PATH is not set (a CMSIS-NN v7.0.0 checkout): real-library accuracy not checked")
    fitted = cpu.instruction_data()["configs"]["cmsis-nn/cortex-m4/O2"]["library"]
    if library_version("cmsis-nn", root) != fitted:
        pytest.skip(f"CMSIS_NN_PATH is {library_version('cmsis-nn', root)}; the shipped data is {fitted}")
    _check_library("cmsis-nn", root, tmp_path)


def test_shipped_json_is_plain_data():
    for path in (cpu.INSTRUCTIONS_FILE, codesize.CODESIZE_FILE, frontend.FRONTEND_FILE):
        data = json.loads(Path(path).read_text())
        assert data["format"] == 1 and data["tool"] == "python -m nas.calibrate"
