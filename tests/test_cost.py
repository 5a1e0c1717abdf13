"""The cost model against independent references: torch's own parameter and FLOP counts, hand
arithmetic, and the thesis's published per-model figures."""
from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.arch.net import build, count_parameters, fold_batchnorm
from nas.arch.space import InvalidArchitecture, SearchSpace
from nas.arch.spec import ArchSpec, AvgPool2D, Conv2D, Dense, DepthwiseConv2D, FrontEnd, MaxPool2D, Softmax
from nas.budget import Budget
from nas.cost.analytic import align4, estimate, frontend_ram_bytes
from nas.kinds import kind_of
from nas.libraries import library

ROOT = Path(__file__).resolve().parents[1]
BUDGET = Budget.load(ROOT / "budgets/stm32l476.yaml")
SPACE = SearchSpace.load(ROOT / "search_spaces/default.yaml")


def random_specs(n: int, seed: int = 0) -> list[ArchSpec]:
    rng = random.Random(seed)
    specs: list[ArchSpec] = []
    while len(specs) < n:
        try:
            specs.append(SPACE.build(SPACE.sample(rng), f"random{len(specs)}"))
        except InvalidArchitecture:
            continue
    return specs


def torch_counts(spec: ArchSpec) -> tuple[int, int]:
    net = fold_batchnorm(build(spec))
    x = torch.zeros(1, 1, spec.frontend.frames, spec.frontend.n_mels)
    with FlopCounterMode(display=False) as counter:
        net(x)
    return count_parameters(net), counter.get_total_flops() // 2


def test_params_and_macs_match_torch_on_200_random_specs():
    for spec in random_specs(200):
        cost = estimate(spec, BUDGET)
        params, macs = torch_counts(spec)
        assert cost.params == params, spec.name
        assert cost.macs == macs, spec.name


def test_thesis_standard_conv_macs_within_one_percent_of_published():
    # X-CUBE-AI's MACC also counts BatchNorm/ReLU/pooling, so ours is slightly lower, never far off.
    published = {"baseline": 10_185_806, "stride-5x5": 2_980_798}
    for name, macc in published.items():
        cost = estimate(ArchSpec.load(ROOT / f"specs/thesis/{name}.yaml"), BUDGET)
        assert 0.99 * macc < cost.macs <= macc, (name, cost.macs)


def test_thesis_baseline_is_over_budget_and_strided_models_fit():
    over = estimate(ArchSpec.load(ROOT / "specs/thesis/baseline.yaml"), BUDGET)
    assert over.violations(BUDGET)["macs_per_second"] > 2.0  # more than 3x the 4.5 M MAC/s
    for name in ["stride-ds-24", "stride-ds-20", "stride-ds-16", "stride-ds-12", "stride-ds-3x3", "stride-5x5"]:
        cost = estimate(ArchSpec.load(ROOT / f"specs/thesis/{name}.yaml"), BUDGET)
        assert cost.fits(BUDGET), name


def test_space_references_reproduce_thesis_costs():
    files = {"Stride-DS-24": "stride-ds-24", "Stride-DS-12": "stride-ds-12", "Stride-DS-3x3": "stride-ds-3x3",
             "Stride-5x5": "stride-5x5", "Baseline-DS": "baseline-ds", "Baseline": "baseline"}
    refs = SPACE.reference_params()
    for name, fname in files.items():
        ours = estimate(SPACE.build(refs[name], name), BUDGET)
        thesis = estimate(ArchSpec.load(ROOT / f"specs/thesis/{fname}.yaml"), BUDGET)
        assert ours.summary() == thesis.summary(), name


FE = FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40, frames=32, overlap=0.5)


def test_hand_computed_small_network():
    spec = ArchSpec(name="hand", frontend=FE, layers=(
        Conv2D(filters=8, kernel=(3, 3), stride=(2, 2)),      # 32x40x1 -> 16x20x8
        DepthwiseConv2D(kernel=(5, 5)),                       # 16x20x8 -> 16x20x8 (s8_opt, DSP scratch)
        Conv2D(filters=16, kernel=(1, 1)),                    # -> 16x20x16
        MaxPool2D(pool=(2, 2)),                               # -> 8x10x16
        Dense(units=10, activation="none"), Softmax()))
    cost = estimate(spec, BUDGET, own=False)            # CMSIS-NN's kernels only: its scratch contract
    conv, dw, pw, pool, fc, sm = cost.layers
    assert (conv.macs, conv.params, conv.scratch_bytes) == (16 * 20 * 8 * 9, 9 * 8 + 8, 4 * 12)
    assert conv.flash_bytes == 72 + 4 * 8 + 8 * 8
    assert (dw.macs, dw.scratch_bytes) == (16 * 20 * 8 * 25, 2 * 8 * 25)
    assert (pw.macs, pw.scratch_bytes) == (16 * 20 * 16 * 8, 0)
    assert fc.macs == 8 * 10 * 16 * 10 and fc.flash_bytes == 1280 * 10 + 40 + 8
    # arena: the first layer reads the feature buffer; afterwards input + output + scratch
    assert conv.arena_bytes == 16 * 20 * 8 + 48
    assert dw.arena_bytes == 2 * 2560 + 400
    assert pw.arena_bytes == 2560 + 5120
    assert cost.arena_bytes == max(lc.arena_bytes for lc in cost.layers) == 7680
    assert cost.windows_per_second == pytest.approx(16000 / (256 * 16))
    assert cost.macs_per_second == pytest.approx(cost.macs * 16000 / (256 * 16))
    assert frontend_ram_bytes(FE) == 2 * 512 + 4 * 512 * 2 + 4 * 40 + 32 * 40 + 4
    assert cost.ram_bytes == 7680 + frontend_ram_bytes(FE) + 2048


def test_overlap_multiplies_compute_not_memory():
    base = estimate(ArchSpec.load(ROOT / "specs/thesis/stride-ds-24.yaml"), BUDGET)
    spec = ArchSpec.load(ROOT / "specs/thesis/stride-ds-24.yaml")
    dense = estimate(spec.replace(frontend=FrontEnd(**{**spec.frontend.__dict__, "overlap": 0.9})), BUDGET)
    assert dense.macs == base.macs and dense.ram_bytes == base.ram_bytes
    assert dense.macs_per_second == pytest.approx(base.macs_per_second * 31 / 3)


@pytest.mark.parametrize("name", ["cmsis-nn", "portable"])
def test_scratch_without_dsp_drops_depthwise_and_avgpool_buffers(name):
    def scratch_bytes(layer, in_shape, dsp):
        kind = kind_of(layer)
        (call,) = kind.calls(layer, in_shape, kind.output_shape(layer, in_shape))
        return library(name).scratch_bytes(call, dsp)

    dw = DepthwiseConv2D(kernel=(5, 5))
    assert scratch_bytes(dw, (10, 10, 32), dsp=True) == 2 * 32 * 25
    assert scratch_bytes(dw, (10, 10, 32), dsp=False) == 0
    assert scratch_bytes(DepthwiseConv2D(kernel=(3, 3)), (10, 10, 32), dsp=True) == 0
    assert scratch_bytes(Conv2D(filters=4, kernel=(3, 3)), (10, 10, 3), dsp=False) == 4 * align4(27)
    assert scratch_bytes(AvgPool2D(pool=(2, 2)), (10, 10, 12), dsp=True) == 4 * 12
    assert scratch_bytes(AvgPool2D(pool=(2, 2)), (10, 10, 12), dsp=False) == 0


def test_violations_are_normalised_usage_minus_one():
    cost = estimate(ArchSpec.load(ROOT / "specs/thesis/baseline.yaml"), BUDGET)
    v = cost.violations(BUDGET)
    assert v["ram"] == pytest.approx(cost.ram_bytes / 65536 - 1)
    assert v["flash"] == pytest.approx(cost.flash_bytes / 524288 - 1)
    assert v["macs_per_second"] == pytest.approx(cost.macs_per_second / 4.5e6 - 1)


def test_suggest_and_build_are_deterministic_under_optuna():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        trial = study.ask()
        params = SPACE.suggest(trial)
        assert ("pool" in params) == (params["downsampling"] == "maxpool")
        try:
            a, b = SPACE.build(params), SPACE.build(dict(params))
        except InvalidArchitecture:
            continue
        assert a == b and a.fingerprint() == b.fingerprint()
        study.tell(trial, 0.0)


def test_spec_round_trips_through_yaml_and_json(tmp_path):
    for spec in random_specs(20, seed=1):
        spec.save(tmp_path / "s.yaml")
        assert ArchSpec.load(tmp_path / "s.yaml") == spec
        assert ArchSpec.from_json(spec.to_json()) == spec


def run_cost(argv: list[str], capsys) -> tuple[int, str, str]:
    from nas.core.errors import run_cli
    from nas.cost.__main__ import main

    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cost_cli_prices_a_trial_of_a_study(tmp_path, capsys):
    from dataclasses import asdict

    from nas.cost.analytic import report
    from nas.study.study import load_study

    budget = Budget.load(ROOT / "budgets/stm32l476.yaml")
    space = SearchSpace.load(ROOT / "search_spaces/default.yaml")
    spec = space.build(space.reference_params()["Stride-DS-24"], "Stride-DS-24")
    journal = tmp_path / "s" / "journal.log"
    study = load_study("s", str(journal), seed=0)
    study.set_user_attr("budget", asdict(budget))
    study.add_trial(optuna.trial.create_trial(values=[0.5, 1.0, 1.0], user_attrs={"spec": spec.to_json()}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED,
                                              user_attrs={"reject_reason": "invalid architecture: too small"}))
    code, out, _ = run_cost(["--study", "s", "--storage", str(journal), "--trial", "0"], capsys)
    assert code == 0 and out == f"study s, trial 0: Stride-DS-24\n{report(spec, budget, estimate(spec, budget))}\n"
    tight = tmp_path / "tight.yaml"
    tight.write_text((ROOT / "budgets/stm32l476.yaml").read_text().replace("ram_bytes: 65536", "ram_bytes: 16384"))
    assert run_cost(["--study", "s", "--storage", str(journal), "--trial", "0", "--budget", str(tight)], capsys)[0] == 1
    for argv, message in ((["--trial", "3"], "--trial 3: not in study 's' (trials 0..1)"),
                          (["--trial", "1"], "has no architecture (invalid architecture: too small)"),
                          ([], "--trial: required with --study")):
        code, _, err = run_cost(["--study", "s", "--storage", str(journal), *argv], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    code, _, err = run_cost(["--arch", str(ROOT / "specs/thesis/stride-ds-24.yaml")], capsys)
    assert code == 2 and "--budget: required with --arch" in err
