"""Export (issue #5): int8 quantisation, ONNX twins, CMSIS-NN C proven bit-exact on the host and on a
Cortex-M4 (QEMU), memory against the cost model, and the `python -m nas.export` CLI.

One small model (every layer kind: conv 3x3/2, max-pool, depthwise 5x5 (the DSP "opt" kernel with
scratch), pointwise 1x1, avg-pool, conv 'valid', NHWC flatten into dense, dense, softmax) is trained
briefly on the generated demo set and shared by the tests (module fixtures), as are its C builds.
Tests needing gcc-arm/QEMU skip with the toolchain's reason when it is absent.
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import optuna
import pytest
import torch

from nas.arch.net import build, fold_batchnorm
from nas.arch.space import InvalidArchitecture, SearchSpace
from nas.arch.spec import (ArchSpec, AvgPool2D, Conv2D, Dense, DepthwiseConv2D, FrontEnd, GlobalAvgPool2D, MaxPool2D,
                           Softmax)
from nas.budget import Budget
from nas.calibrate.models import random_net
from nas.cost import analytic as costmodel
from nas.data.urbansound import FoldSplit
from nas.export import codegen, onnx_export, qemu, verify
from nas.int8 import intref
from nas.quant import confidence
from nas.quant import quantize as Q
from nas.export import frontend_c
from nas.export.api import Api, c_name
from nas.train.clips import eval_windows
from nas.train.loop import train
from nas.train.recipe import Augment, Recipe
from nas.train.trialdata import TrialData
from nas.libraries import LibraryMissing, addon_sources, library
from nas.libraries.cmsis_nn import CMSIS_NN_SOURCES, PORTABLE_DIR

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

ROOT = Path(__file__).resolve().parents[1]
BUDGET = Budget.load(ROOT / "budgets" / "stm32l476.yaml")
SPLIT = FoldSplit.for_test_fold(10, 9)
FE = FrontEnd(sample_rate=16000, n_fft=512, hop_length=256, n_mels=40, frames=32, overlap=0.5)
M4_PROBLEM = qemu.toolchain_problem()
needs_m4 = pytest.mark.skipif(M4_PROBLEM is not None, reason=f"Cortex-M4 toolchain: {M4_PROBLEM}")
needs_gcc = pytest.mark.skipif(verify.host_compiler() is None, reason="no host C compiler (gcc/cc)")


def small_spec(fe: FrontEnd = FE) -> ArchSpec:
    return ArchSpec(name="export-test", frontend=fe, layers=(
        Conv2D(filters=8, kernel=(3, 3), stride=(2, 2)),
        MaxPool2D(pool=(2, 2)),
        DepthwiseConv2D(kernel=(5, 5)),
        Conv2D(filters=16, kernel=(1, 1)),
        AvgPool2D(pool=(2, 2)),
        Conv2D(filters=16, kernel=(3, 3), padding="valid", batchnorm=False),
        Dense(units=16),
        Dense(units=10, activation="none"),
        Softmax()))


def dense_windows(data, fe: FrontEnd, hop: int = 2) -> tuple[torch.Tensor, np.ndarray]:
    clips, starts = eval_windows(data, fe.frames, hop)
    offsets = starts[:, None] + torch.arange(fe.frames)
    return data.x[clips[:, None], offsets].unsqueeze(1), data.y[clips].numpy()


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def features(demo_root, tmp_path_factory):
    td = TrialData(demo_root, SPLIT, tmp_path_factory.mktemp("export_cache"), progress=False)
    return td.get(FE)


@pytest.fixture(scope="module")
def trained(features):
    train_set, val_set, norm = features
    spec = small_spec()
    torch.manual_seed(0)
    light = Augment(gain_db=6.0, tilt_db=0.0, mel_shift=0, mixup_alpha=0.0)  # a model that learns 60 clips fast
    res = train(spec, train_set, val_set, Recipe(epochs=10, windows_per_clip=24, batch_size=64, lr=5e-3, seed=0,
                                                 schedule="onecycle", warmup_share=0.3, select_smoothing=1,
                                                 selection_metric="accuracy", augment=light),
                norm_std=norm.std, device="cpu")
    net = build(spec)
    net.load_state_dict(res.state_dict)
    return net.eval(), norm, res


@pytest.fixture(scope="module")
def model(trained, features, tmp_path_factory):
    """The quantised model, its C folder, and check windows (int8) with reference scores."""
    net, norm, _ = trained
    train_set, val_set, _ = features
    qm = Q.quantize(net, (norm.mean, norm.std), Q.calibration_windows(train_set, FE, 1000))
    cost = costmodel.estimate(qm.spec, BUDGET)
    w_val, _ = dense_windows(val_set, FE)
    w_train, _ = dense_windows(train_set, FE, hop=7)
    windows = torch.cat([w_val, w_train])[:160]
    rng = np.random.default_rng(5)
    x_int8 = np.concatenate([Q.quantize_input(qm, windows[:, 0]),
                             rng.integers(-128, 128, size=(16, FE.frames, FE.n_mels)).astype(np.int8)])
    ref = Q.run_int8(qm, x_int8)
    folder = tmp_path_factory.mktemp("export_model")
    codegen.write_model_c(qm, cost, folder, selftest=(x_int8[0], ref[0]))
    codegen.write_build_files(folder)
    return {"qm": qm, "cost": cost, "folder": folder, "windows": windows, "x": x_int8, "ref": ref,
            "folded": fold_batchnorm(net), "net": net}


@pytest.fixture(scope="module")
def host_exe(model, tmp_path_factory):
    if verify.host_compiler() is None:
        pytest.skip("no host C compiler (gcc/cc)")
    return verify.build_host(model["folder"], tmp_path_factory.mktemp("export_host"))


@pytest.fixture(scope="module")
def m4_batch(model, tmp_path_factory):
    if M4_PROBLEM is not None:
        pytest.skip(f"Cortex-M4 toolchain: {M4_PROBLEM}")
    n = 100
    elf = verify.build_m4(model["folder"], tmp_path_factory.mktemp("export_m4"), max_inputs=n, name="batch")
    return verify.run_m4(elf, model["x"][:n], model["qm"].num_classes), n


# --------------------------------------------------------------------------- quantisation

def test_quantized_model_follows_tflite_int8_rules(model):
    qm = model["qm"]
    assert qm.input_quant.scale == qm.input_scale and qm.input_quant.zero_point == qm.input_zero_point
    prev = (qm.input_scale, qm.input_zero_point)
    for q, layer in zip(qm.layers, qm.spec.layers):
        assert (q.in_scale, q.in_zero_point) == prev, f"{q.name}: input params must be the previous output's"
        assert np.float32(q.out_scale) == q.out_scale and -128 <= q.out_zero_point <= 127
        if isinstance(layer, (Conv2D, DepthwiseConv2D, Dense)):
            assert q.weights.dtype == np.int8 and q.weights.min() >= -127
            expected_shape = {Conv2D: (q.out_shape[2], *q.kernel, q.in_shape[2]),
                              DepthwiseConv2D: (1, *q.kernel, q.out_shape[2]),
                              Dense: (q.out_shape[2], int(np.prod(q.in_shape)))}[type(layer)]
            assert q.weights.shape == expected_shape
            assert len(q.weight_scales) == (1 if isinstance(layer, Dense) else q.out_shape[2])
            # every channel uses its full symmetric range
            axis = {Conv2D: (1, 2, 3), DepthwiseConv2D: (0, 1, 2), Dense: None}[type(layer)]
            assert (np.abs(q.weights.astype(int)).max(axis=axis) == 127).all()
            assert q.bias.dtype == np.int32
            m, s = intref.quantize_multipliers(intref.effective_scales(q.in_scale, q.weight_scales, q.out_scale))
            assert (q.mult == m).all() and (q.shift == s).all()
            if layer.activation == "relu":
                assert (q.act_min, q.act_max) == (max(-128, q.out_zero_point), 127)
                assert q.out_zero_point == -128      # a ReLU range starts at 0
            else:
                assert (q.act_min, q.act_max) == (-128, 127)
        elif isinstance(layer, (MaxPool2D, AvgPool2D, GlobalAvgPool2D)):
            assert (q.out_scale, q.out_zero_point) == (q.in_scale, q.in_zero_point)
        elif isinstance(layer, Softmax):
            assert (q.out_scale, q.out_zero_point) == (1 / 256, -128)
            assert (int(q.mult[0]), int(q.shift[0]), q.diff_min) == intref.softmax_params(q.in_scale)
        prev = (q.out_scale, q.out_zero_point)


def test_quantisation_helpers():
    assert Q.round_half_away(np.array([0.5, 1.5, 2.5, -0.5, -2.5])).tolist() == [1, 2, 3, -1, -3]
    for lo, hi in ((0.0, 6.0), (-3.0, 1.0), (0.5, 2.0), (-2.0, -1.0)):
        s, zp = Q.activation_qparams(lo, hi)
        assert -128 <= zp <= 127
        # real 0 is exactly representable and the range (widened to 0) is covered
        assert (-128 - zp) * s <= min(lo, 0) + s and (127 - zp) * s >= max(hi, 0) - s
    w = np.array([[[[1.0]], [[0.5]]], [[[-0.25]], [[0.0]]]], dtype=np.float32)  # [2, 2, 1, 1]
    q, s = Q.quantize_weights_per_channel(w, axis=0)
    assert q.reshape(2, 2).tolist() == [[127, 64], [-127, 0]] and s.dtype == np.float32
    b = Q.quantize_bias(np.array([1.0, -1.0]), 0.5, np.array([0.25, 0.5], np.float32))
    assert b.tolist() == [8, -4]


def test_int8_accuracy_within_1_5_points_of_float(model, features):
    """Window accuracy over the whole demo set (training and validation folds, windows every other
    frame: ~2000 windows, so a point is ~20 windows)."""
    qm, folded = model["qm"], model["folded"]
    train_set, val_set, _ = features
    stats = []
    for data in (train_set, val_set):
        w, y = dense_windows(data, FE)
        stats.append(Q.window_agreement(qm, folded, w, y))
    n = sum(s["windows"] for s in stats)
    acc_f = sum(s["float_accuracy"] * s["windows"] for s in stats) / n
    acc_q = sum(s["int8_accuracy"] * s["windows"] for s in stats) / n
    agree = sum(s["argmax_agreement"] * s["windows"] for s in stats) / n
    print(f"\ndemo set, {n} windows: float {100 * acc_f:.1f} %, int8 {100 * acc_q:.1f} % "
          f"({100 * (acc_q - acc_f):+.2f} points), argmax agreement {100 * agree:.1f} %")
    assert acc_f > 0.25, "the test model did not learn: the comparison would mean nothing"
    assert abs(acc_q - acc_f) <= 0.015
    assert agree >= 0.9


# --------------------------------------------------------------------------- ONNX

def test_onnx_float_equals_torch_and_int8_within_one_lsb_of_reference(model, tmp_path):
    qm, windows, x, ref = model["qm"], model["windows"], model["x"], model["ref"]
    fm = onnx_export.save(onnx_export.float_model(model["net"]), tmp_path / "model.onnx")
    im = onnx_export.save(onnx_export.int8_model(qm), tmp_path / "model_int8.onnx")
    for path in (fm, im):
        loaded = onnx.load(str(path))
        onnx.checker.check_model(loaded, full_check=True)
        assert loaded.opset_import[0].version >= 17
    with torch.no_grad():
        p_torch = torch.softmax(model["folded"](windows), dim=-1).numpy()
    p_onnx = onnx_export.run_float(onnx_export.session(fm), windows)
    assert np.abs(p_onnx - p_torch).max() < 1e-5
    got = onnx_export.run_int8(onnx_export.session(im), qm, x)
    assert got.dtype == np.int8 and got.shape == ref.shape and len(x) >= 100
    diff = np.abs(got.astype(int) - ref.astype(int))
    layerwise = onnx_export.layerwise_int8_diff(qm, x)
    print(f"\nONNX Runtime int8 vs CMSIS-NN reference on {len(x)} inputs: per layer max {layerwise} LSB; "
          f"end to end max {diff.max()} LSB, {100 * (diff > 0).mean():.1f} % of scores differ, same top class on "
          f"{100 * (got.argmax(1) == ref.argmax(1)).mean():.1f} %")
    # each layer, fed the reference's int8 input, is within one LSB (float vs fixed-point requantisation)
    assert max(layerwise) <= 1
    # chained, the logits stay within a step or two; the softmax magnifies logit steps on the scores
    assert onnx_export.logits_int8_diff(qm, x).max() <= 2
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.95


def test_onnx_int8_uses_the_quantized_model_parameters(model):
    qm = model["qm"]
    m = onnx_export.int8_model(qm)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    qnodes = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    # input, then one per layer; max pools pool the int8 tensor itself (same parameters in and out)
    got = [(float(inits[n.input[1]]), int(inits[n.input[2]])) for n in qnodes]
    want = [(qm.input_scale, qm.input_zero_point)] + [(q.out_scale, q.out_zero_point) for q in qm.layers
                                                      if q.kind != "max_pool2d"]
    assert got == want
    pools = [n for n in m.graph.node if n.op_type == "MaxPool"]
    assert len(pools) == sum(q.kind == "max_pool2d" for q in qm.layers)
    producers = {o: n for n in m.graph.node for o in n.output}
    assert all(producers[p.input[0]].op_type in ("QuantizeLinear", "MaxPool") for p in pools)  # int8 in
    per_channel = [n for n in m.graph.node if n.op_type == "DequantizeLinear"
                   and any(a.name == "axis" for a in n.attribute) and "weight" in n.input[0]]
    assert len(per_channel) == sum(q.kind in ("conv2d", "depthwise_conv2d") for q in qm.layers)
    for q in qm.layers:
        if q.weights is not None:
            w = inits[next(k for k in inits if k.startswith(f"{q.name}_weight_int8"))]
            assert w.dtype == np.int8 and np.array_equal(np.sort(w.ravel()), np.sort(q.weights.ravel()))


# --------------------------------------------------------------------------- C on the host

@needs_gcc
def test_host_c_is_bit_exact_with_the_integer_reference(model, host_exe):
    got = verify.run_host(host_exe, model["x"], model["qm"].num_classes)
    assert len(got) >= 100
    assert np.array_equal(got, model["ref"]), f"{int((got != model['ref']).any(1).sum())} windows differ"


@needs_gcc
def test_host_arena_and_weights_symbols_match_cost_model(model, host_exe):
    syms = verify.elf_symbols(host_exe, shutil.which("nm"))
    assert syms[codegen.ARENA_SYMBOL] == model["cost"].arena_bytes
    net = sum(v for k, v in syms.items() if k.startswith(codegen.WEIGHT_SYMBOL_PREFIX))
    assert net == model["cost"].network_flash_bytes


@needs_gcc
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_exported_folder_self_test_builds_with_make(model, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(model["folder"], folder)
    res = subprocess.run(["make", "-s", "check", "CFLAGS=-O1 -Werror"], cwd=folder, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "bit-exact" in res.stdout


@needs_gcc
@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_lib_says_what_it_built_and_what_it_left_out(model, tmp_path):
    """Without CMSIS_DSP_PATH the library holds no front-end: a firmware link would then fail on
    nas_frontend_*, so the build says so on stdout (make, and cmake when installed)."""
    folder = tmp_path / "m"
    shutil.copytree(model["folder"], folder)
    codegen.write_frontend(model["qm"], folder)
    res = subprocess.run(["make", "-s", "lib"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    said = res.stdout.strip().splitlines()[-1]
    assert said.startswith("built build/") and "libnas_model.a: model.c with the bundled portable CMSIS-NN" in said
    assert "LEFT OUT: the front-end (nas_frontend_* in nas_frontend.c), set CMSIS_DSP_PATH" in said
    dsp = tmp_path / "dsp"
    (dsp / "Include").mkdir(parents=True)
    (dsp / "Include" / "arm_math.h").write_text("")
    for name in frontend_c.CMSIS_DSP_SOURCES:                  # a stand-in tree: `make -n` only names the files
        (dsp / "Source" / name).parent.mkdir(parents=True, exist_ok=True)
        (dsp / "Source" / name).write_text("")
    dry = subprocess.run(["make", "-n", "lib", f"CMSIS_DSP_PATH={dsp}"], cwd=folder, capture_output=True, text=True)
    assert f"the front-end (nas_frontend.c) with CMSIS-DSP from {dsp}" in dry.stdout and "LEFT OUT" not in dry.stdout
    if shutil.which("cmake") is None:
        return
    for extra, expect in (([], "LEFT OUT: the front-end (nas_frontend_*"),
                          ([f"-DCMSIS_DSP_PATH={dsp}"], f"the front-end (nas_frontend.c) with CMSIS-DSP from {dsp}")):
        conf = subprocess.run(["cmake", "-S", str(folder), "-B", str(tmp_path / f"cm{len(extra)}"), *extra],
                              capture_output=True, text=True, timeout=120)
        assert conf.returncode == 0 and f"-- nas_model: model.c with the bundled portable" in conf.stdout, conf.stderr
        assert expect in conf.stdout, conf.stdout


@needs_gcc
def test_the_exported_unknown_threshold_decides_in_c_as_in_python(model, features, tmp_path):
    """model_decide.h on the validation clips' votes, at thresholds all over the int8 range (the one a
    target precision picks among them), decides as nas.quant.confidence does, with the default and a
    prefixed API; the self-test checks decision cases too and fails (2) when the threshold is off by one."""
    qm = model["qm"]
    _, val_set, _ = features
    votes, windows = confidence.clip_votes(qm, val_set)
    curve = confidence.curve(votes, windows, val_set.y.numpy())
    chosen = curve.threshold_for(0.8)
    rng = np.random.default_rng(1)
    extra = rng.integers(-128, 128, size=(200, qm.num_classes)) * rng.integers(1, 40, size=(200, 1))
    all_votes = np.concatenate([votes, extra])
    all_windows = np.concatenate([windows, np.maximum(1, np.abs(extra).max(axis=1) // 128)])
    for api, min_score in ((Api(), confidence.NEVER), (Api(), chosen if chosen is not None else 0), (Api("kws"), 127),
                           (Api(), int(rng.integers(-128, 128)))):
        folder = tmp_path / f"{api.name}{min_score}"
        cases = confidence.decision_cases(votes, windows, min_score)
        codegen.write_model_c(qm, model["cost"], folder, selftest=(model["x"][0], model["ref"][0]), api=api,
                              decide=codegen.DecisionCases(*cases, confidence.decide(*cases, min_score)))
        codegen.write_decide(qm, folder, min_score, "test", checked=len(votes), api=api)
        got = verify.run_decide(folder, tmp_path / "build", all_votes, all_windows, api)
        np.testing.assert_array_equal(got, confidence.decide(all_votes, all_windows, min_score))
        assert f"#define {api.MODEL}_MIN_SCORE ({min_score})" in (folder / codegen.DECIDE_H).read_text()
    codegen.write_build_files(folder)
    res = subprocess.run(["make", "-s", "check"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "bit-exact" in res.stdout, res.stdout + res.stderr
    header = folder / codegen.DECIDE_H
    header.write_text(header.read_text().replace(f"_MIN_SCORE ({min_score})", f"_MIN_SCORE ({min_score + 1})"))
    res = subprocess.run(["make", "-s", "-B", "check"], cwd=folder, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "FAILED (2)" in res.stdout, res.stdout + res.stderr


@needs_gcc
def test_arena_size_is_checked_at_compile_time(model, tmp_path):
    """A model.c whose arena disagrees with the cost model must not compile."""
    folder = tmp_path / "bad"
    shutil.copytree(model["folder"], folder)
    h = folder / codegen.MODEL_H
    arena = model["cost"].arena_bytes
    h.write_text(h.read_text().replace(f"#define NAS_MODEL_ARENA_BYTES {arena}",
                                       f"#define NAS_MODEL_ARENA_BYTES {arena + 4}"))
    with pytest.raises(verify.VerifyError, match="arena_equals_cost_model"):
        verify.build_host(folder, tmp_path / "build")


@needs_gcc
@pytest.mark.skipif(not os.environ.get("CMSIS_NN_PATH"), reason="CMSIS_NN_PATH not set (real CMSIS-NN checkout)")
def test_host_c_against_real_cmsis_nn(model, tmp_path):
    exe = verify.build_host(model["folder"], tmp_path, os.environ["CMSIS_NN_PATH"])
    assert np.array_equal(verify.run_host(exe, model["x"], model["qm"].num_classes), model["ref"])


def synthetic_cmsis_nn(root: Path) -> Path:
    """A checkout shaped like CMSIS-NN's main branch: Include/ + Source/ with every file the exporter
    lists (the portable kernels' code spread over them), plus float sources that #error unless the
    float API is enabled, as main's *_f16.c / *_f32.c do."""
    inc, src = root / "Include", root / "Source"
    inc.mkdir(parents=True)
    for h in PORTABLE_DIR.glob("*.h"):
        shutil.copy2(h, inc / h.name)
    bodies = [c.read_text() for c in sorted(PORTABLE_DIR.glob("*.c"))]
    for i, rel in enumerate(CMSIS_NN_SOURCES):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text(bodies[i] if i < len(bodies) else "typedef int nas_synthetic_empty_unit;\n")
    for rel in ("BasicMathFunctions/arm_minimum_f32.c", "ConvolutionFunctions/arm_convolve_f16.c"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text('#error "CMSIS-NN float headers require ARM_NN_ENABLE_F32 or ARM_NN_ENABLE_F16"\n')
    assert len(bodies) <= len(CMSIS_NN_SOURCES)
    return root


def test_cmsis_nn_builds_take_only_the_listed_sources(tmp_path):
    root = synthetic_cmsis_nn(tmp_path / "cmsis-nn")
    srcs, incs = library("cmsis-nn").sources(root)
    assert [s.relative_to(root / "Source").as_posix() for s in srcs] == list(CMSIS_NN_SOURCES)
    assert incs == [root / "Include"]
    (root / "Source" / CMSIS_NN_SOURCES[3]).unlink()
    with pytest.raises(LibraryMissing, match=CMSIS_NN_SOURCES[3].split("/")[-1]):
        library("cmsis-nn").sources(root)


@needs_gcc
def test_export_builds_against_a_checkout_with_float_sources(model, tmp_path):
    """Host build, generated Makefile and CMakeLists (and the Cortex-M build) against a main-branch-like
    checkout: none compiles the #error float sources, all reproduce the reference."""
    root = synthetic_cmsis_nn(tmp_path / "cmsis-nn")
    exe = verify.build_host(model["folder"], tmp_path / "host", root)
    assert np.array_equal(verify.run_host(exe, model["x"][:32], model["qm"].num_classes), model["ref"][:32])
    folder = tmp_path / "m"
    shutil.copytree(model["folder"], folder)
    if shutil.which("make"):
        res = subprocess.run(["make", "-s", "check", f"CMSIS_NN_PATH={root}"], cwd=folder, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 0 and "bit-exact" in res.stdout, res.stdout + res.stderr
    if shutil.which("cmake"):
        build = tmp_path / "cmake"
        for cmd in (["cmake", "-S", str(folder), "-B", str(build), f"-DCMSIS_NN_PATH={root}"],
                    ["cmake", "--build", str(build)], ["ctest", "--test-dir", str(build), "--output-on-failure"]):
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            assert res.returncode == 0, " ".join(cmd) + "\n" + res.stdout + res.stderr
    if M4_PROBLEM is None:
        elf = verify.build_m4(model["folder"], tmp_path / "m4", root, max_inputs=4)
        run = verify.run_m4(elf, model["x"][:4], model["qm"].num_classes)
        assert np.array_equal(run.scores, model["ref"][:4])


def random_space_specs(n: int, seed: int) -> list[ArchSpec]:
    space = SearchSpace.load(ROOT / "search_spaces" / "default.yaml")
    rng = random.Random(seed)
    specs = []
    while len(specs) < n:
        try:
            specs.append(space.build(space.sample(rng), f"random{len(specs)}"))
        except InvalidArchitecture:
            continue
    return specs


def test_arena_layout_follows_the_cost_model_for_search_space_models():
    for spec in random_space_specs(200, seed=1):
        for budget_dsp in (True, False):
            budget = BUDGET if budget_dsp else Budget.load(ROOT / "budgets" / "esp32s3.yaml")
            cost = costmodel.estimate(spec, budget)
            qm_stub = Q.QuantizedModel(spec=spec, layers=[
                Q.QLayer(name=n, kind=l.TYPE, in_shape=i, out_shape=o, in_scale=1.0, in_zero_point=0, out_scale=1.0,
                         out_zero_point=0) for n, l, (i, o) in zip(spec.layer_names(), spec.layers, spec.layer_shapes())],
                input_quant=None)
            slots = codegen.arena_layout(qm_stub, cost)
            a4 = costmodel.align4
            prev_out = None
            for i, (s, lc) in enumerate(zip(slots, cost.layers)):
                regions = [(s.scratch_offset, s.scratch_offset + a4(lc.scratch_bytes))]
                if s.in_offset is not None:
                    regions.append((s.in_offset, s.in_offset + a4(s.in_bytes)))
                    assert s.in_offset == prev_out, f"{spec.name} layer {i} reads where the previous wrote"
                else:
                    assert i == 0
                if s.out_offset is not None:
                    regions.append((s.out_offset, s.out_offset + a4(s.out_bytes)))
                for lo, hi in regions:
                    assert lo % 4 == 0 and 0 <= lo <= hi <= cost.arena_bytes
                regions.sort()
                assert all(a[1] <= b[0] for a, b in zip(regions, regions[1:])), f"{spec.name} layer {i} overlaps"
                prev_out = s.out_offset


@needs_gcc
def test_search_space_models_with_random_weights_are_bit_exact_on_host(tmp_path):
    """Random architectures of the default search space (standard/DS, strided/max-pool 2x2 or 2x3,
    flatten/global-average heads, 3x3/5x5 kernels) plus a GAP model with a 3x3 depthwise."""
    gap = ArchSpec(name="gap", frontend=FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=20, frames=24),
                   layers=(Conv2D(filters=12, kernel=(5, 5), stride=(2, 2)), DepthwiseConv2D(kernel=(3, 3), stride=(2, 2)),
                           Conv2D(filters=16, kernel=(1, 1), stride=(2, 2)), GlobalAvgPool2D(),
                           Dense(units=10, activation="none"), Softmax()))
    rng = np.random.default_rng(0)
    for k, spec in enumerate([gap, *random_space_specs(4, seed=7)]):
        net = random_net(spec, k)
        fe = spec.frontend
        calib = torch.randn(64, 1, fe.frames, fe.n_mels)
        qm = Q.quantize(net, (0.0, 1.0), calib)
        cost = costmodel.estimate(spec, BUDGET)
        folder = tmp_path / spec.name
        codegen.write_model_c(qm, cost, folder)
        x = rng.integers(-128, 128, size=(12, fe.frames, fe.n_mels)).astype(np.int8)
        got = verify.run_host(verify.build_host(folder, folder / "build", max_inputs=12), x, qm.num_classes)
        assert np.array_equal(got, Q.run_int8(qm, x)), f"{spec.name}: {spec.to_json()}"
        with torch.no_grad():
            p_torch = torch.softmax(fold_batchnorm(net)(calib[:8]), dim=-1).numpy()
        p_onnx = onnx_export.run_float(onnx_export.session(onnx_export.float_model(net)), calib[:8])
        assert np.abs(p_onnx - p_torch).max() < 1e-5, spec.name
        assert max(onnx_export.layerwise_int8_diff(qm, x)) <= 1, spec.name


@needs_gcc
def test_two_prefixed_models_link_into_one_program_and_both_run_bit_exactly(model, tmp_path):
    """Two exports with --prefix kws / siren: their headers in one file, their code (and, with a
    CMSIS-DSP tree, their front-ends) in one program, each self-test bit-exact; verify's own
    driver runs a prefixed export too."""
    spec_b = random_space_specs(1, seed=11)[0]
    torch.manual_seed(3)
    net_b = build(spec_b).eval()
    fe_b = spec_b.frontend
    qb = Q.quantize(net_b, (0.0, 1.0), torch.randn(64, 1, fe_b.frames, fe_b.n_mels))
    xb = np.random.default_rng(2).integers(-128, 128, size=(1, fe_b.frames, fe_b.n_mels)).astype(np.int8)
    models = {"kws": (model["qm"], model["cost"], model["x"][0], model["ref"][0]),
              "siren": (qb, costmodel.estimate(spec_b, BUDGET), xb[0], Q.run_int8(qb, xb)[0])}
    for name, (qm, cost, x, ref) in models.items():
        codegen.write_model_c(qm, cost, tmp_path / name, selftest=(x, ref), api=Api(name))
        codegen.write_frontend(qm, tmp_path / name, Api(name))
    main = tmp_path / "main.c"
    main.write_text("""#include <stdio.h>
#include "kws/model.h"
#include "kws/nas_frontend.h"
#include "siren/model.h"
#include "siren/nas_frontend.h"
#ifdef WITH_FRONTEND
static int first_window(int (*push)(const int16_t *), const int8_t *(*window)(void),
                        int (*invoke)(const int8_t *, int8_t *))
{
    static int16_t silence[4096];   /* longer than any hop */
    int8_t scores[16];
    int k;
    for (k = 0; k < 1000; k++)
        if (push(silence))
            return invoke(window(), scores);
    return -1000;
}
#endif
int main(void)
{
    const int a = nas_kws_selftest(), b = nas_siren_selftest();
    int fa = 0, fb = 0;
#ifdef WITH_FRONTEND
    nas_kws_frontend_init();
    nas_siren_frontend_init();
    fa = first_window(nas_kws_frontend_push, nas_kws_frontend_window, nas_kws_invoke);
    fb = first_window(nas_siren_frontend_push, nas_siren_frontend_window, nas_siren_invoke);
#endif
    printf("%d %d %d %d %d %d\\n", a, b, NAS_KWS_INPUT_BYTES, NAS_SIREN_FRONTEND_WINDOW_BYTES, fa, fb);
    return a != 0 || b != 0 || fa != 0 || fb != 0;
}
""")
    own, own_incs = addon_sources()             # one copy of each kernel library for both models
    port = sorted(PORTABLE_DIR.glob("*.c")) + own
    srcs = [main, *[tmp_path / n / f for n in models for f in ("model.c", "model_selftest.c")], *port]
    flags, libs = [*verify.STRICT, "-O2", f"-I{tmp_path}", f"-I{PORTABLE_DIR}", *(f"-I{d}" for d in own_incs)], []
    try:
        import _cmsisdsp as cd

        fes = {m[0].spec.frontend.arithmetic: m[0].spec.frontend for m in models.values()}   # one each kind
        libs = [*(str(cd.dsp_library("host", fe)) for fe in fes.values()), "-lm"]   # shared files linked once
        flags += [*cd.STRICT, *(f"-D{d}" for d in frontend_c.CMSIS_DSP_DEFINES), "-DWITH_FRONTEND",
                  *(f"-I{d}" for fe in fes.values() for d in frontend_c.cmsis_dsp_sources(cd.dsp_root(), fe)[1])]
        srcs += [tmp_path / n / "nas_frontend.c" for n in models]
    except cd.Unavailable:        # no CMSIS-DSP: the front-end headers still share one file above
        pass
    exe = tmp_path / "two_models"
    res = subprocess.run([verify.host_compiler(), *flags, *map(str, srcs), *libs, "-o", str(exe)],
                         capture_output=True, text=True)
    assert res.returncode == 0 and not res.stderr, res.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.split()[:2] == ["0", "0"] and run.stdout.split()[4:] == ["0", "0"], \
        run.stdout
    assert run.stdout.split()[2:4] == [str(FE.frames * FE.n_mels), str(fe_b.frames * fe_b.n_mels)]
    symbols = subprocess.run(["nm", str(exe)], capture_output=True, text=True).stdout
    assert " T nas_kws_invoke" in symbols and " T nas_siren_invoke" in symbols and "nas_model_invoke" not in symbols
    if libs:
        assert " T nas_kws_frontend_push" in symbols and " T nas_siren_frontend_push" in symbols
    got = verify.run_host(verify.build_host(tmp_path / "kws", tmp_path / "drv", api=Api("kws")), model["x"],
                          model["qm"].num_classes)
    assert np.array_equal(got, model["ref"])
    assert c_name("Stride-DS-24") == "stride_ds_24" and Api(c_name("Stride-DS-24")).model == "nas_stride_ds_24"


# --------------------------------------------------------------------------- Cortex-M4

@needs_m4
def test_cortex_m4_outputs_equal_host_and_reference(model, m4_batch, host_exe):
    run, n = m4_batch
    assert np.array_equal(run.scores, model["ref"][:n])
    assert np.array_equal(run.scores, verify.run_host(host_exe, model["x"][:n], model["qm"].num_classes))
    macs = model["cost"].macs
    per_mac = run.insn / macs
    print(f"\nCortex-M4 (QEMU): {int(np.median(run.insn)):,} instructions per inference on {n} inputs "
          f"(min {run.insn.min():,}, max {run.insn.max():,}), {np.median(per_mac):.2f} per MAC ({macs:,} MACs)")
    assert (run.insn > 0).all() and run.insn.max() - run.insn.min() <= 0.05 * run.insn.min()
    assert 1.0 < float(np.median(per_mac)) < 30.0


@needs_m4
def test_cortex_m4_memory_against_cost_model(model, tmp_path):
    cost, qm = model["cost"], model["qm"]
    x = model["x"][:256]
    m = verify.measure_m4(model["folder"], tmp_path, costmodel.estimate(qm.spec, BUDGET, "portable"), BUDGET, qm.spec, x,
                          model["ref"][:len(x)])
    print(f"\nCortex-M4 ELF: FLASH {m['flash_bytes']:,} B = {m['flash_vs_estimate']:.4f} x the estimate "
          f"{m['flash_estimate_bytes']:,} B, RAM {m['ram_bytes_with_stack']:,} B incl. stack "
          f"{m['stack_bytes']} B = {m['ram_vs_estimate']:.3f} x (arena {cost.arena_bytes:,} + window + reserve); "
          f"{m['instructions_per_inference']:,} instructions = {m['instructions_vs_predicted']:.4f} x predicted; "
          f"vs cost-model totals: FLASH {m['flash_vs_cost_model_total']:.3f}, RAM {m['ram_vs_cost_model_total']:.3f}")
    assert m["bit_exact_windows"] == len(x) >= 100
    assert m["arena_symbol_bytes"] == cost.arena_bytes
    assert m["network_const_bytes"] == cost.network_flash_bytes
    assert m["ram_bytes_with_stack"] <= m["ram_estimate_bytes"]
    assert 0.97 * m["flash_estimate_bytes"] <= m["flash_bytes"] <= m["flash_estimate_bytes"]
    assert abs(m["instructions_vs_predicted"] - 1) < 0.05


@needs_m4
def test_cortex_m4_mismatch_is_a_verify_error(model, tmp_path):
    qm, x = model["qm"], model["x"][:2]
    wrong = model["ref"][:2].copy()
    wrong[1, 0] += 1
    with pytest.raises(verify.VerifyError, match="differ from the integer reference on 1 of 2 windows"):
        verify.measure_m4(model["folder"], tmp_path, model["cost"], BUDGET, qm.spec, x, wrong)


def _dsp_root() -> Path:
    """A CMSIS-DSP tree (tests/_cmsisdsp.py), or a skip."""
    try:
        import importlib.util
        import sys
        name = "_nas_tests_cmsisdsp"
        dsp = sys.modules.get(name)
        if dsp is None:
            spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "_cmsisdsp.py")
            dsp = importlib.util.module_from_spec(spec)
            sys.modules[name] = dsp
            spec.loader.exec_module(dsp)
        return dsp.dsp_root()
    except Exception as exc:  # noqa: BLE001 - any reason the sources are missing is a skip
        pytest.skip(f"CMSIS-DSP sources unavailable: {exc}")


@needs_m4
def test_frontend_and_model_pipeline_on_cortex_m4(model, tmp_path):
    """Generated front-end + model, audio in: the model is bit-exact on the C front-end's windows and
    the whole ELF stays within the cost model's RAM total (stack included)."""
    root = _dsp_root()
    folder = tmp_path / "m"
    shutil.copytree(model["folder"], folder)
    assert codegen.write_frontend(model["qm"], folder), "nas.export.frontend_c is missing"
    p = verify.measure_pipeline(folder, tmp_path / "build", costmodel.estimate(model["qm"].spec, BUDGET, "portable"), model["qm"],
                                root)
    print(f"\npipeline on Cortex-M4: FLASH {p['flash_bytes']:,} B ({p['flash_bytes_without_harness']:,} B without the "
          f"harness = {p['flash_vs_cost_model_total']:.3f} x cost total), "
          f"RAM {p['ram_bytes_without_audio_buffer']:,} B = {p['ram_vs_cost_model_total']:.3f} x; front-end "
          f"{p['frontend_instructions_per_frame_max']:,} insn/frame; features equal to Python "
          f"{100 * p['features_equal_to_python_frontend']:.2f} %")
    assert p["windows"] >= 2 and p["model_bit_exact_on_c_frontend_windows"]
    assert p["ram_within_cost_model_total"] and p["flash_within_cost_model_total"]
    assert p["frontend_ram_symbol_bytes"] >= p["frontend_ram_cost_model_bytes"]
    mean, predicted = p["frontend_instructions_per_frame_mean"], p["frontend_instructions_per_frame_predicted"]
    assert abs(mean / predicted - 1) < 0.05, (mean, predicted)


def _fixed_folder(model, folder: Path) -> Q.QuantizedModel:
    """The test model behind the fixed-point front-end (same network and input quantisation)."""
    qm = model["qm"]
    qm = dataclasses.replace(qm, spec=qm.spec.replace(frontend=dataclasses.replace(FE, arithmetic="fixed")))
    shutil.copytree(model["folder"], folder)
    codegen.write_frontend(qm, folder)
    codegen.write_build_files(folder, fixed_frontend=True)
    return qm


@needs_m4
def test_fixed_frontend_and_model_pipeline_on_cortex_m4(model, tmp_path):
    """Fixed-point front-end + model, audio in: the C front-end's windows are the Python front-end's
    bit for bit, the model is bit-exact on them, RAM/FLASH within the cost model, its tables and
    buffers exactly the cost model's, its instructions per frame within 2 % of the prediction."""
    root = _dsp_root()
    qm = _fixed_folder(model, tmp_path / "m")
    p = verify.measure_pipeline(tmp_path / "m", tmp_path / "build", costmodel.estimate(qm.spec, BUDGET, "portable"), qm,
                                root)
    mean, predicted = p["frontend_instructions_per_frame_mean"], p["frontend_instructions_per_frame_predicted"]
    print(f"\nfixed-point pipeline on Cortex-M4: {p['windows']} windows, features equal to Python "
          f"{100 * p['features_equal_to_python_frontend']:.2f} %, front-end {mean:,.0f} insn/frame "
          f"(predicted {predicted:,})")
    assert p["windows"] >= 2 and p["model_bit_exact_on_c_frontend_windows"]
    assert p["features_equal_to_python_frontend"] == 1.0
    assert p["ram_within_cost_model_total"] and p["flash_within_cost_model_total"]
    assert p["frontend_ram_symbol_bytes"] == p["frontend_ram_cost_model_bytes"]
    assert p["frontend_table_symbol_bytes"] == p["frontend_flash_cost_model_bytes"]
    assert abs(mean / predicted - 1) < 0.02, (mean, predicted)


@needs_gcc
def test_fixed_frontend_builds_with_the_exported_makefile(model, tmp_path):
    """`make lib CMSIS_DSP_PATH=...`: the folder's two front-end files compile warning-free on the host
    with nothing but the include paths, and the library holds the front-end and the q15 FFT."""
    root = _dsp_root()
    _fixed_folder(model, tmp_path / "m")
    res = subprocess.run(["make", "-C", str(tmp_path / "m"), "lib", f"CMSIS_DSP_PATH={root}",
                          "CFLAGS=-O2 -Werror"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    lib = next((tmp_path / "m" / "build").rglob("libnas_model.a"))
    symbols = subprocess.run(["nm", str(lib)], capture_output=True, text=True).stdout
    assert " T nas_frontend_push" in symbols and " T arm_rfft_q15" in symbols


# --------------------------------------------------------------------------- CLI

def make_study(tmp: Path, net, norm, data_root: Path, cache: Path) -> tuple[str, Path]:
    """A study as nas.search leaves it: trained trial 0 (+ checkpoint), pruned trial 1."""
    from nas.study.study import load_study

    name = "exp"
    storage = tmp / "studies" / name / "journal.log"
    study = load_study(name, str(storage), seed=0)
    spec = net.spec
    cost = costmodel.estimate(spec, BUDGET)
    from dataclasses import asdict
    for key, value in (("budget", asdict(BUDGET)), ("data", str(data_root)),
                       ("split", {"train": SPLIT.train, "val": SPLIT.val, "test": SPLIT.test}), ("cache", str(cache))):
        study.set_user_attr(key, value)
    study.add_trial(optuna.trial.create_trial(
        values=[0.5, cost.macs_per_second, float(cost.ram_bytes)], params={}, distributions={},
        user_attrs={"spec": spec.to_json(), "input_norm": [norm.mean, norm.std], **cost.summary()}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.PRUNED, params={}, distributions={},
                                              user_attrs={"prune_reason": "not learning"}))
    ckpt = storage.parent / "checkpoints" / "trial_0.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"spec": spec.to_json(), "state_dict": net.state_dict(), "input_norm": [norm.mean, norm.std]}, ckpt)
    return name, storage


def run_export(argv: list[str]) -> int:
    from nas.core.errors import run_cli
    from nas.export.__main__ import main

    with pytest.raises(SystemExit) as exc:
        run_cli(main, argv)
    return exc.value.code


def test_export_cli_writes_a_complete_folder(trained, demo_root, tmp_path, monkeypatch, capsys):
    net, norm, _ = trained
    monkeypatch.chdir(tmp_path)
    name, storage = make_study(tmp_path, net, norm, demo_root, tmp_path / "cache")
    assert run_export(["--study", name, "--calibration-windows", "300", "--target-precision", "0.6"]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "export" / name / "trial_0"
    assert "export trial 0" in out and f"wrote {Path('export') / name / 'trial_0'}" in out
    table = out[out.index("exported 1 model(s)"):].splitlines()              # the summary table ends the export
    assert table[1].split()[:3] == ["folder", "model", "val_accuracy_int8"] and "bit-exact" in table[1]
    assert table[3].startswith(str(Path("export") / name / "trial_0"))
    for f in ("model.onnx", "model_int8.onnx", "model.c", "model.h", "model_selftest.c", "README.md", "report.json",
              "model_decide.h",
              "Makefile", "CMakeLists.txt", "cmsisnn_portable/arm_nnfunctions.h", "nas_frontend.c", "nas_frontend.h"):
        assert (folder / f).is_file(), f
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "temporary folder left behind"
    rep = json.loads((folder / "report.json").read_text())
    cost = costmodel.estimate(net.spec, BUDGET)
    assert rep["cost_model"]["arena_bytes"] == cost.arena_bytes
    assert rep["quantisation"]["windows"] == 300
    assert abs(rep["accuracy"]["delta_points"]) < 50 and rep["accuracy"]["val_clips"] > 0
    unk = rep["unknown"]                  # the threshold reaches 0.6 on validation, or is the most precise one
    assert unk["target_precision"] == 0.6 and -128 <= unk["min_score"] <= 127 and "_votes" not in unk
    assert unk["precision"] >= 0.6 or "out of reach" in unk["note"]
    assert f"_MIN_SCORE ({unk['min_score']})" in (folder / "model_decide.h").read_text()
    assert f"{unk['recall']:.3f}" in table[3] or unk["min_score"] == -128
    if verify.host_compiler():
        assert unk["host_c"]["decisions_equal"] == rep["accuracy"]["val_clips"] + 2
    assert rep["onnx"]["float_max_abs_diff"] < 1e-5 and max(rep["onnx"]["int8_layerwise_max_lsb"]) <= 1
    if verify.host_compiler():
        assert rep["host_c"]["bit_exact_windows"] >= 100
    if M4_PROBLEM is None:
        m4 = rep["cortex_m4"]
        assert m4["arena_matches_cost_model"] and m4["network_const_matches_cost_model"] and m4["ram_within_estimate"]
        assert m4["instructions_per_mac"] > 0 and m4["flash_within_estimate"]
        assert m4["bit_exact_windows"] == rep["host_c"]["bit_exact_windows"] >= 100
        assert abs(m4["instructions_vs_predicted"] - 1) < 0.05
    else:
        assert M4_PROBLEM in rep["cortex_m4"]["skipped"]
    text = (folder / "README.md").read_text()
    assert "nas_model_invoke" in text and "CMSIS_NN_PATH" in text and f"{cost.arena_bytes:,}" in text
    assert f"- unknown below score {unk['min_score']} (mean top probability" in text and "`model_decide.h`" in text
    header = (folder / "model.h").read_text()
    assert "air_conditioner" in (folder / "model.c").read_text() and "NAS_MODEL_INPUT_SCALE" in header
    assert ArchSpec.load(folder / "spec.yaml") == net.spec
    from optuna.artifacts import get_all_artifact_meta

    from nas.study.study import load_study

    names = [m.filename for m in get_all_artifact_meta(load_study(name, str(storage), None))]
    assert sorted(names) == ["trial_0_model.h", "trial_0_report.json", "trial_0_spec.yaml"]   # for the dashboard
    # a second export replaces the folder atomically
    first = (folder / "report.json").stat().st_mtime_ns
    assert run_export(["--study", name, "--trial", "0", "--no-verify", "--calibration", "minmax",
                       "--prefix", "kws"]) == 0
    rep2 = json.loads((folder / "report.json").read_text())
    assert (folder / "report.json").stat().st_mtime_ns != first and rep2["quantisation"]["method"] == "minmax"
    assert rep2["host_c"] == {"skipped": "--no-verify"} and rep2["c_api"]["invoke"] == "nas_kws_invoke"
    assert "int nas_kws_invoke(" in (folder / "model.h").read_text() and "nas_model_" not in \
        (folder / "model.h").read_text()


def test_export_cli_user_errors_are_one_line(trained, demo_root, tmp_path, monkeypatch, capsys):
    net, norm, _ = trained
    monkeypatch.chdir(tmp_path)
    name, storage = make_study(tmp_path, net, norm, demo_root, tmp_path / "cache")
    cases = [(["--study", "nope"], "no study storage"),
             (["--study", "nope", "--storage", str(storage)], "unknown study"),
             (["--study", name, "--trial", "7"], "--trial 7: not found"),
             (["--study", name, "--trial", "1"], "was not trained (PRUNED: not learning)"),
             (["--study", name, "--calibration-windows", "0"], "--calibration-windows"),
             (["--study", name, "--target-precision", "1.5"], "--target-precision: expected a share in (0, 1]"),
             (["--study", name, "--prefix", "Bad-Name"], "--prefix Bad-Name: expected a C name"),
             (["--study", name, "--prefix", "a", "--prefix", "b"], "--prefix: give one per exported model")]
    for argv, msg in cases:
        assert run_export(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and msg in err and "\n" not in err, (argv, err)
    (storage.parent / "checkpoints" / "trial_0.pt").unlink()
    assert run_export(["--study", name, "--no-verify"]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "export" / name / "trial_0").exists()


def test_search_export_flag_exports_the_pareto_front(demo_root, tmp_path):
    """`nas.search --export` hands its study to export_study (one 1-epoch trial: the reference)."""
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", "nas.search", "--budget", str(ROOT / "budgets" / "stm32l476.yaml"),
                          "--space", str(ROOT / "search_spaces" / "default.yaml"), "--data", str(demo_root),
                          "--cache", str(tmp_path / "cache"), "--trials", "1", "--epochs", "1", "--study", "sx",
                          "--export"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    folders = list((tmp_path / "export" / "sx").glob("trial_*"))
    assert len(folders) == 1 and (folders[0] / "report.json").is_file() and (folders[0] / "model.c").is_file()
    assert "export trial" in res.stdout
