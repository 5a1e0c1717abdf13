"""Property-based tests of the spec and the cost model on arbitrary (not only search-space) networks."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nas.arch.spec import (ArchSpec, AvgPool2D, Conv2D, Dense, DepthwiseConv2D, FrontEnd, GlobalAvgPool2D, MaxPool2D,
                           Softmax)
from nas.budget import Budget
from nas.cost.analytic import align4, estimate

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = [Budget.load(ROOT / "budgets/stm32l476.yaml"), Budget.load(ROOT / "budgets/rp2040.yaml")]

kernels = st.tuples(st.integers(1, 7), st.integers(1, 7))
strides = st.tuples(st.integers(1, 3), st.integers(1, 3))
spatial = st.one_of(
    st.builds(Conv2D, filters=st.integers(1, 48), kernel=kernels, stride=strides,
              padding=st.sampled_from(["same", "valid"]), activation=st.sampled_from(["relu", "none"]),
              batchnorm=st.booleans()),
    st.builds(DepthwiseConv2D, kernel=kernels, stride=strides, padding=st.sampled_from(["same", "valid"]),
              activation=st.sampled_from(["relu", "none"]), batchnorm=st.booleans()),
    st.builds(MaxPool2D, pool=st.tuples(st.integers(1, 3), st.integers(1, 3))),
    st.builds(AvgPool2D, pool=st.tuples(st.integers(1, 3), st.integers(1, 3))),
)
frontends = st.builds(FrontEnd, sample_rate=st.sampled_from([8000, 16000, 22050]), n_fft=st.sampled_from([256, 512, 1024]),
                      hop_length=st.sampled_from([64, 128, 256]), n_mels=st.integers(8, 40), frames=st.integers(4, 40),
                      overlap=st.sampled_from([0.0, 0.5, 0.75, 0.9]))


@st.composite
def specs(draw) -> ArchSpec:
    layers = draw(st.lists(spatial, min_size=1, max_size=5))
    if draw(st.booleans()):
        layers.append(GlobalAvgPool2D())
    layers += [Dense(units=u) for u in draw(st.lists(st.integers(1, 64), max_size=2))]
    layers += [Dense(units=10, activation="none"), Softmax()]
    try:
        return ArchSpec(name="prop", frontend=draw(frontends), layers=tuple(layers))
    except ValueError:
        assume(False)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much,
                                                                           HealthCheck.too_slow])


@SETTINGS
@given(specs(), st.sampled_from(BUDGETS))
def test_arena_covers_every_layer_and_totals_add_up(spec, budget):
    cost = estimate(spec, budget)
    assert cost.arena_bytes % 4 == 0 and cost.arena_bytes == max(lc.arena_bytes for lc in cost.layers)
    for i, lc in enumerate(cost.layers):
        need = (align4(lc.in_bytes) if i else 0) + align4(lc.out_bytes) + align4(lc.scratch_bytes)
        assert lc.arena_bytes == need and cost.arena_bytes >= need
        assert lc.flash_bytes >= lc.params  # every parameter takes at least one byte
    assert cost.flash_bytes == (cost.network_flash_bytes + cost.frontend_flash_bytes + cost.code_bytes
                                + budget.reserves.flash_bytes)
    assert cost.code_bytes > 0 and all(lc.instructions > 0 for lc in cost.layers)
    # + invoke glue (fitted together with the softmax call's: every network has one, so it may be 0)
    assert cost.instructions_per_window >= sum(lc.instructions for lc in cost.layers)
    assert cost.cpu_share == pytest.approx(cost.instructions_per_second * budget.target.cycles_per_instruction
                                           / budget.target.clock_hz)
    assert cost.ram_bytes == cost.arena_bytes + cost.frontend_ram_bytes + budget.reserves.ram_bytes
    assert cost.macs_per_second == pytest.approx(cost.macs * spec.frontend.windows_per_second)


@SETTINGS
@given(specs(), st.sampled_from(BUDGETS), st.data())
def test_wider_conv_never_costs_less(spec, budget, data):
    convs = [i for i, layer in enumerate(spec.layers) if isinstance(layer, Conv2D)]
    assume(convs)
    i = data.draw(st.sampled_from(convs))
    layers = list(spec.layers)
    layers[i] = Conv2D(**{**layers[i].__dict__, "filters": layers[i].filters * 2})
    wider = spec.replace(layers=tuple(layers))
    a, b = estimate(spec, budget), estimate(wider, budget)
    assert b.params >= a.params and b.macs >= a.macs and b.network_flash_bytes >= a.network_flash_bytes
    # with one kernel library the arena grows with the width; the per-layer choice of the own kernels
    # trades scratch for instructions, so a narrow layer may take a kernel with more scratch
    assert estimate(wider, budget, own=False).arena_bytes >= estimate(spec, budget, own=False).arena_bytes


@SETTINGS
@given(specs(), st.sampled_from(BUDGETS))
def test_more_overlap_costs_compute_not_memory(spec, budget):
    fe = spec.frontend
    more = spec.replace(frontend=FrontEnd(**{**fe.__dict__, "overlap": min(0.95, fe.overlap + 0.3)}))
    a, b = estimate(spec, budget), estimate(more, budget)
    assert b.macs_per_second >= a.macs_per_second and b.instructions_per_second >= a.instructions_per_second
    assert (b.ram_bytes, b.flash_bytes, b.macs) == (a.ram_bytes, a.flash_bytes, a.macs)
    assert b.instructions_per_window == a.instructions_per_window
    # the front-end computes a frame per hop whatever the overlap; only its window slides get more frequent
    assert a.chip.frontend_instructions_per_second <= b.chip.frontend_instructions_per_second
    assert b.chip.frontend_instructions_per_second <= 1.05 * a.chip.frontend_instructions_per_second


@SETTINGS
@given(specs())
def test_specs_round_trip_through_json(spec):
    assert ArchSpec.from_json(spec.to_json()) == spec
    assert ArchSpec.from_json(spec.to_json()).fingerprint() == spec.fingerprint()
