"""The layer-kind seam: every kind complete, checked at import; each kind alone through every facet.

A kind missing a facet (an abstract method, its C template or a template macro) is refused by the
registry check that runs when `nas.kinds` is imported, so before any search. Each kind's facets agree
with each other on a network holding it: torch vs ONNX float, integer reference vs ONNX int8 within
1 LSB, constants vs the quantised arrays, calls vs the torch module's MACs.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.arch.net import build, fold_batchnorm
from nas.arch.spec import ArchSpec, AvgPool2D, Conv2D, Dense, DepthwiseConv2D, FrontEnd, GlobalAvgPool2D, MaxPool2D, Softmax
from nas.kinds import InvertedResidual
from nas.calibrate.models import random_model
from nas.export import onnx_export
from nas.kinds import KINDS, TEMPLATE_DIR, check_registry, kind_of
from nas.kinds.conv2d import Conv2DKind
from nas.quant.quantize import run_int8

ROOT = Path(__file__).resolve().parents[1]
FE = FrontEnd(sample_rate=8000, n_fft=256, hop_length=128, n_mels=20, frames=16)


def _net(*body) -> ArchSpec:
    return ArchSpec(name="k", frontend=FE, layers=(*body, Dense(units=10, activation="none"), Softmax()))


NETWORKS = {
    "conv2d": _net(Conv2D(filters=6, kernel=(3, 3), stride=(2, 2))),
    "depthwise_conv2d": _net(Conv2D(filters=4, kernel=(3, 3)), DepthwiseConv2D(kernel=(5, 5), stride=(2, 2))),
    "max_pool2d": _net(Conv2D(filters=4, kernel=(3, 3)), MaxPool2D(pool=(2, 3))),
    "avg_pool2d": _net(Conv2D(filters=4, kernel=(3, 3)), AvgPool2D(pool=(2, 2))),
    "global_avg_pool2d": _net(Conv2D(filters=4, kernel=(3, 3)), GlobalAvgPool2D()),
    "dense": _net(Dense(units=12)),
    "softmax": _net(),
    "inverted_residual": _net(Conv2D(filters=8, kernel=(3, 3), stride=(2, 2)),
                              InvertedResidual(filters=8, expansion=3, kernel=(5, 5)),
                              InvertedResidual(filters=12, expansion=2, stride=(2, 2))),
}


def test_every_registered_kind_has_a_network_here():
    assert set(NETWORKS) == {k.type for k in KINDS}


def _import_kinds_from_a_copy(tmp_path, edit) -> subprocess.CompletedProcess:
    """`import nas.kinds` in a fresh interpreter from a copy of the package that `edit` changed."""
    shutil.copytree(ROOT / "nas", tmp_path / "nas", ignore=shutil.ignore_patterns("__pycache__", "data"))
    edit(tmp_path / "nas" / "kinds")
    return subprocess.run([sys.executable, "-c", "import nas.kinds"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)})


def test_importing_the_kinds_fails_when_a_kind_misses_a_facet(tmp_path):
    def drop_reference(kinds):
        src = (kinds / "dense.py").read_text()
        start = src.index("    def run_int8(")
        end = src.index("    def onnx_float(")
        (kinds / "dense.py").write_text(src[:start] + src[end:])

    res = _import_kinds_from_a_copy(tmp_path, drop_reference)
    assert res.returncode != 0 and "run_int8" in res.stderr and "DenseKind" in res.stderr


def test_importing_the_kinds_fails_when_a_kind_has_no_template(tmp_path):
    res = _import_kinds_from_a_copy(tmp_path, lambda kinds: (kinds / "dense.c.j2").unlink())
    assert res.returncode != 0 and "dense: no C template dense.c.j2" in res.stderr


def test_the_check_names_a_missing_facet():
    namespace = {k: v for k, v in Conv2DKind.__dict__.items() if k != "run_int8"}
    broken = type("BrokenKind", Conv2DKind.__bases__, namespace)
    with pytest.raises(TypeError, match="run_int8"):
        broken()
    broken.__abstractmethods__ = frozenset()        # an instance to hand to the check
    instance = broken()
    broken.__abstractmethods__ = frozenset({"run_int8"})
    with pytest.raises(TypeError, match="BrokenKind: no run_int8"):
        check_registry((instance,))


def test_a_kind_without_its_template_or_a_template_macro_is_refused(tmp_path):
    for path in TEMPLATE_DIR.glob("*.j2"):
        shutil.copy(path, tmp_path / path.name)
    check_registry(KINDS, tmp_path)
    (tmp_path / "dense.c.j2").write_text((tmp_path / "dense.c.j2").read_text().replace("macro invoke", "macro call"))
    with pytest.raises(TypeError, match="dense.c.j2 defines no macro invoke"):
        check_registry(KINDS, tmp_path)
    (tmp_path / "conv2d.c.j2").unlink()
    with pytest.raises(TypeError, match="conv2d: no C template"):
        check_registry(KINDS, tmp_path)


def test_two_kinds_may_not_share_a_name_prefix():
    class Twin(Conv2DKind):
        pass
    with pytest.raises(TypeError, match="share a type"):
        check_registry((Conv2DKind(), Twin()))


@pytest.mark.parametrize("type_", sorted(NETWORKS))
def test_each_kinds_facets_agree(type_):
    spec = NETWORKS[type_]
    qm = random_model(spec, seed=3)
    net = fold_batchnorm(build(spec))
    x = torch.randn(32, 1, FE.frames, FE.n_mels)
    ref = torch.softmax(net(x), dim=-1).detach().numpy()
    got = onnx_export.run_float(onnx_export.session(onnx_export.float_model(net)), x)
    assert np.abs(got - ref).max() < 1e-5
    x8 = np.random.default_rng(0).integers(-128, 128, (32, FE.frames, FE.n_mels)).astype(np.int8)
    assert max(onnx_export.layerwise_int8_diff(qm, x8)) <= 1
    for layer, q, (i, o) in zip(spec.layers, qm.layers, spec.layer_shapes()):
        kind = kind_of(layer)
        consts = kind.constants(layer, i, o)
        arrays = [p for p in (q, *q.parts) if p.weights is not None]
        assert (consts.weights, consts.biases) == (sum(p.weights.size for p in arrays),
                                                   sum(p.bias.size for p in arrays)), layer
        assert sum(c.macs for c in kind.calls(layer, i, o)) == sum(
            p.weights.size * (p.out_shape[0] * p.out_shape[1] if p.kind != "dense" else 1) for p in arrays), layer
        assert kind_of(q) is kind
    assert run_int8(qm, x8).shape == (32, 10)
