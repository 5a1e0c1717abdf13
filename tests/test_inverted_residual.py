"""The inverted residual block end to end: its exact arena (the block lays out four calls itself) equals
the C's compile-time check and the ELF's arena symbol, and the C is bit-exact with the integer reference
on the host and on the Cortex-M4 under QEMU, with its input in the arena or in the caller's buffer,
with and without the residual add, through CMSIS-NN's API (the portable kernels; real CMSIS-NN v7 when
CMSIS_NN_PATH is set)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from nas.arch.spec import ArchSpec, Conv2D, Dense, FrontEnd, GlobalAvgPool2D, Softmax
from nas.budget import Budget
from nas.calibrate.models import random_model
from nas.cost import analytic as costmodel
from nas.export import codegen, qemu, verify
from nas.kinds import InvertedResidual
from nas.quant.quantize import run_int8

from _proc import ROOT

BUDGET = Budget.load(ROOT / "budgets" / "stm32l476.yaml")
FE = FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=20, frames=16)
HEAD = (GlobalAvgPool2D(), Dense(units=10, activation="none"), Softmax())
NETWORKS = {
    # residual blocks after a stem; a strided block (no residual) and a wider one (no residual)
    "stem": (Conv2D(filters=8, kernel=(3, 3), stride=(2, 2)), InvertedResidual(filters=8, expansion=3),
             InvertedResidual(filters=8, expansion=2, kernel=(5, 5)),
             InvertedResidual(filters=12, expansion=2, stride=(2, 2)), InvertedResidual(filters=16, expansion=1)),
    # the block reads the caller's feature buffer and its output goes to the arena's bottom end
    "first": (InvertedResidual(filters=4, expansion=4, stride=(2, 2)), InvertedResidual(filters=4, expansion=2)),
    # the first block is residual on the 1-channel input itself
    "first_residual": (InvertedResidual(filters=1, expansion=6), Conv2D(filters=6, kernel=(3, 3), stride=(2, 2))),
}
M4_PROBLEM = qemu.toolchain_problem()


def _spec(name: str) -> ArchSpec:
    return ArchSpec(name=name, frontend=FE, layers=(*NETWORKS[name], *HEAD))


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_arena_is_the_largest_block_layout(name):
    """Whatever the block's own layout needs, the whole model's arena is the largest layer's need."""
    cost = costmodel.estimate(_spec(name), BUDGET)
    assert cost.arena_bytes == max(lc.arena_bytes for lc in cost.layers)
    blocks = [lc for lc in cost.layers if lc.kind == "inverted_residual"]
    assert blocks and all(len(lc.calls) == (4 if lc.in_shape == lc.out_shape else 3) for lc in blocks)


@pytest.mark.skipif(verify.host_compiler() is None, reason="no host C compiler (gcc/cc)")
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_c_is_bit_exact_on_the_host(name, tmp_path):
    spec = _spec(name)
    qm = random_model(spec, seed=11)
    cost = costmodel.estimate(spec, BUDGET)
    x = np.random.default_rng(2).integers(-128, 128, (24, FE.frames, FE.n_mels)).astype(np.int8)
    ref = run_int8(qm, x)
    codegen.write_model_c(qm, cost, tmp_path, selftest=(x[0], ref[0]))
    codegen.write_build_files(tmp_path)
    got = verify.run_host(verify.build_host(tmp_path, tmp_path / "host", os.environ.get("CMSIS_NN_PATH") or None),
                          x, qm.num_classes)
    assert np.array_equal(got, ref)


@pytest.mark.skipif(M4_PROBLEM is not None, reason=f"Cortex-M4 toolchain: {M4_PROBLEM}")
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_cortex_m4_bit_exact_and_the_arena_symbol_is_the_cost_model(name, tmp_path):
    spec = _spec(name)
    qm = random_model(spec, seed=12)
    nn_path = os.environ.get("CMSIS_NN_PATH") or None
    cost = costmodel.estimate(spec, BUDGET, "cmsis-nn" if nn_path else "portable")
    x = np.random.default_rng(3).integers(-128, 128, (8, FE.frames, FE.n_mels)).astype(np.int8)
    ref = run_int8(qm, x)
    codegen.write_model_c(qm, cost, tmp_path, selftest=(x[0], ref[0]))
    codegen.write_build_files(tmp_path)
    m = verify.measure_m4(tmp_path, tmp_path / "m4", cost, BUDGET, spec, x, ref, nn_path)
    assert m["bit_exact_windows"] == len(x)
    assert m["arena_symbol_bytes"] == cost.arena_bytes and m["network_const_matches_cost_model"]
    assert m["flash_within_estimate"] and abs(m["instructions_vs_predicted"] - 1) < 0.02
