"""ONNX twins of an exported model, built node by node from the weights (no tracing): each layer's
nodes are its kind's (`LayerKind.onnx_float`, `onnx_int8`), written with `_Graph`'s patterns.

* `float_model(net)`: the folded (deploy-form) float network, opset 17. Input ``features``
  float32 [N, 1, frames, mels] (normalised log-mel, as training feeds the net), output
  ``probabilities`` float32 [N, classes] (the spec's softmax). Equal to torch within 1e-5.
* `int8_model(qm)`: the same graph in QDQ form with *the* scales and zero points of the
  `QuantizedModel`: the input is quantised with the network's input (scale, zero point), weights are
  int8 initialisers with per-channel (conv, depthwise: axis 0) or per-tensor (dense) scales and
  zero point 0, biases int32 with scale s_in*s_w, every activation goes through
  QuantizeLinear/DequantizeLinear with its int8 parameters, and the output ``scores`` is the int8
  softmax (scale 1/256, zero point -128) that `nas_model_invoke` writes. ONNX Runtime requantises
  with float scales and rounds half to even, so each layer agrees with the CMSIS-NN integer path to
  within one LSB, not bit for bit (shared deploy.md section 2.5); `layerwise_int8_diff` measures
  that. End to end the +-1 differences propagate, and the softmax magnifies a 1-LSB logit change by
  up to about 64 * logit scale LSB, so whole-model scores differ by more on confident windows.

Dense layers flatten NHWC (Transpose to NHWC, then Flatten), exactly as the torch builder and
CMSIS-NN do, so the weight matrices need no column permutation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from nas.arch.net import Net, fold_batchnorm
from nas.core.atomic import atomic_write_bytes
from nas.kinds import kind_of
from nas.quant.quantize import QuantizedModel

OPSET = 17
IR_VERSION = 8          # the IR version of opset 17: readable by every ONNX Runtime since 1.11
INPUT = "features"
FLOAT_OUTPUT = "probabilities"
INT8_OUTPUT = "scores"


class _Graph:
    """The graph being built, and the node patterns the layer kinds' ONNX facets write with it."""

    float_output = FLOAT_OUTPUT

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0
        self._flat: set[str] = set()

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base: str, array: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, out: str | None = None, **attrs) -> str:
        out = out or self.name(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(f"{base}_{op}"), **attrs))
        if op == "Gemm" or (op in ("Relu", "Softmax", "Add") and inputs[0] in self._flat):
            self._flat.add(out)
        return out

    def flatten_nhwc(self, x: str, base: str) -> str:
        """[N, C, H, W] → [N, H*W*C] in NHWC order (as CMSIS-NN reads a dense layer's input); a tensor
        already flat (a dense layer's output, or the input of a graph cut after one) is returned as is."""
        if x in self._flat:
            return x
        t = self.node("Transpose", [x], base, perm=[0, 2, 3, 1])
        flat = self.node("Flatten", [t], base, axis=1)
        self._flat.add(flat)
        return flat

    def mark_flat(self, x: str) -> str:
        self._flat.add(x)
        return x

    def qdq(self, x: str, scale: float, zp: int, base: str, out: str | None = None) -> tuple[str, str]:
        """QuantizeLinear then DequantizeLinear with per-tensor int8 (scale, zero point): (q, dq)."""
        s = self.const(f"{base}_scale", np.array(scale, dtype=np.float32))
        z = self.const(f"{base}_zero_point", np.array(zp, dtype=np.int8))
        q = self.node("QuantizeLinear", [x, s, z], f"{base}_q", out=out)
        return self._keep_flat(x, q), self._keep_flat(x, self.node("DequantizeLinear", [q, s, z], f"{base}_dq"))

    def dequantize(self, xq: str, scale: float, zp: int, base: str) -> str:
        s = self.const(f"{base}_scale", np.array(scale, dtype=np.float32))
        z = self.const(f"{base}_zero_point", np.array(zp, dtype=np.int8))
        return self._keep_flat(xq, self.node("DequantizeLinear", [xq, s, z], f"{base}_dq"))

    def dq_weights(self, base: str, w: np.ndarray, scales: np.ndarray, bias: np.ndarray, in_scale: float,
                   per_channel: bool) -> tuple[str, str]:
        """Dequantized int8 weights (ONNX layout, zero point 0, per channel along axis 0 or per tensor)
        and int32 bias (scale s_in * s_w)."""
        ws = np.asarray(scales, dtype=np.float32)
        bs = (np.float32(in_scale) * ws).astype(np.float32)
        if per_channel:
            w_s, w_z = self.const(f"{base}_w_scale", ws), self.const(f"{base}_w_zp", np.zeros(len(ws), np.int8))
            b_s, b_z = self.const(f"{base}_b_scale", bs), self.const(f"{base}_b_zp", np.zeros(len(bs), np.int32))
            kw = {"axis": 0}
        else:
            w_s, w_z = self.const(f"{base}_w_scale", ws[0]), self.const(f"{base}_w_zp", np.array(0, np.int8))
            b_s, b_z = self.const(f"{base}_b_scale", bs[0]), self.const(f"{base}_b_zp", np.array(0, np.int32))
            kw = {}
        wq = self.const(f"{base}_weight_int8", np.asarray(w, np.int8))
        bq = self.const(f"{base}_bias_int32", np.asarray(bias, np.int32))
        return (self.node("DequantizeLinear", [wq, w_s, w_z], f"{base}_w", **kw),
                self.node("DequantizeLinear", [bq, b_s, b_z], f"{base}_b", **kw))

    def _keep_flat(self, src: str, dst: str) -> str:
        if src in self._flat:
            self._flat.add(dst)
        return dst

    def model(self, inp: onnx.ValueInfoProto, out: onnx.ValueInfoProto, name: str, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, [inp], [out], initializer=self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="nas.export", doc_string=doc)
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        return model


def _input(spec, dtype=TensorProto.FLOAT) -> onnx.ValueInfoProto:
    fe = spec.frontend
    return helper.make_tensor_value_info(INPUT, dtype, ["N", 1, fe.frames, fe.n_mels])


def float_model(net: Net) -> onnx.ModelProto:
    """The folded float network as ONNX (see the module docstring)."""
    folded = fold_batchnorm(net)
    spec = folded.spec
    g = _Graph()
    x = INPUT
    for (name, module), layer in zip(folded.layers.items(), spec.layers):
        x = kind_of(layer).onnx_float(g, layer, module, x, name)
    out = helper.make_tensor_value_info(FLOAT_OUTPUT, TensorProto.FLOAT, ["N", spec.num_classes])
    return g.model(_input(spec), out, spec.name, f"{spec.name}: folded float network, normalised log-mel input")


def _is_flat(spec, index: int) -> bool:
    """Whether layer `index`'s input is already 2-D [N, K] in the ONNX graph (it follows a kind that
    flattens, i.e. a dense layer)."""
    return index > 0 and kind_of(spec.layers[index - 1]).flattens


def _io_info(qm: QuantizedModel, first: int, last: int) -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    """Input and output of the int8 graph of layers [first, last): NCHW, or [N, K] around dense layers."""
    spec, q0 = qm.spec, qm.layers[first]
    if first == 0:
        inp = _input(spec)
    elif _is_flat(spec, first):
        inp = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", int(np.prod(q0.in_shape))])
    else:
        h, w_, c = q0.in_shape
        inp = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", c, h, w_])
    ql = qm.layers[last - 1]
    out_shape = ["N", spec.num_classes] if last == len(qm.layers) else (
        ["N", ql.out_shape[2]] if kind_of(spec.layers[last - 1]).flattens
        else ["N", ql.out_shape[2], ql.out_shape[0], ql.out_shape[1]])
    return inp, helper.make_tensor_value_info(INT8_OUTPUT, TensorProto.INT8, out_shape)


def int8_model(qm: QuantizedModel, first: int = 0, last: int | None = None) -> onnx.ModelProto:
    """QDQ int8 model with the QuantizedModel's parameters (see the module docstring).

    `first`/`last` cut out layers [first, last) (default: all), for layer-by-layer comparisons: the
    input ``features`` is then layer `first`'s dequantized input (NCHW, or [N, K] after a dense
    layer) and the output ``scores`` layer `last - 1`'s int8 output (NCHW or [N, K])."""
    spec = qm.spec
    last = len(qm.layers) if last is None else last
    if not 0 <= first < last <= len(qm.layers):
        raise ValueError(f"layer range [{first}, {last}) outside 0..{len(qm.layers)}")
    g = _Graph()
    q0 = qm.layers[first]
    xq, x = g.qdq(g.mark_flat(INPUT) if _is_flat(spec, first) else INPUT, q0.in_scale, q0.in_zero_point, "input")
    for i in range(first, last):
        q = qm.layers[i]
        xq, x = kind_of(spec.layers[i]).onnx_int8(g, q, xq, x, INT8_OUTPUT if i == last - 1 else None)
    fe = spec.frontend
    inp, out = _io_info(qm, first, last)
    whole = first == 0 and last == len(qm.layers)
    return g.model(inp, out, f"{spec.name}_int8" if whole else f"{spec.name}_int8_layers_{first}_{last}",
                   f"{spec.name}: int8 QDQ network (CMSIS-NN parameters); input normalised log-mel "
                   f"[N, 1, {fe.frames}, {fe.n_mels}], output int8 softmax scores (scale 1/256, zero point -128)")


def save(model: onnx.ModelProto, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_bytes(path, model.SerializeToString())
    return path


# --------------------------------------------------------------------------- running

def session(model: onnx.ModelProto | str | Path, optimize: bool = True, qdq_fusion: bool = False):
    """An ONNX Runtime session on one thread. QDQ fusion is off by default, so the int8 model runs
    with the ONNX QDQ semantics (float op between exact Quantize/DequantizeLinear): ORT's fused int8
    kernels on x86 CPUs without VNNI multiply u8 x s8 pairs into saturating int16 sums (vpmaddubsw),
    which on this project's layers moved scores by up to 250 LSB (measured on AVX2 without VNNI)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if not qdq_fusion:
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, opts, providers=["CPUExecutionProvider"])


def run_float(sess, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Probabilities [N, classes] of normalised windows [N, 1, frames, mels] (or [N, frames, mels])."""
    x = np.asarray(x.numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    return sess.run([FLOAT_OUTPUT], {INPUT: x})[0]


def run_int8(sess, qm: QuantizedModel, x_int8: np.ndarray) -> np.ndarray:
    """int8 scores of int8 network inputs [N, frames, mels]: the inputs are fed dequantized, which
    the model's input QuantizeLinear maps back to the same integers."""
    x = np.asarray(x_int8)
    if x.dtype != np.int8 or x.ndim != 3:
        raise ValueError(f"expected int8 [N, frames, mels], got {x.dtype} {x.shape}")
    xf = ((x.astype(np.float32) - np.float32(qm.input_zero_point)) * np.float32(qm.input_scale))[:, None]
    return sess.run([INT8_OUTPUT], {INPUT: xf})[0]


def logits_int8_diff(qm: QuantizedModel, x_int8: np.ndarray) -> np.ndarray:
    """|ONNX Runtime - integer reference| (LSB) of the int8 logits (the input of the softmax), with the
    whole network chained: how far per-layer rounding differences drift before the softmax."""
    from nas.quant.quantize import run_layer

    x = np.asarray(x_int8, dtype=np.int8)
    a = x.reshape(-1, *qm.input_shape, 1)
    for q in qm.layers[:-1]:
        a = run_layer(q, a)
    q0 = qm.layers[0]
    xf = ((x.astype(np.float32) - np.float32(q0.in_zero_point)) * np.float32(q0.in_scale))[:, None]
    got = session(int8_model(qm, 0, len(qm.layers) - 1)).run([INT8_OUTPUT], {INPUT: np.ascontiguousarray(xf)})[0]
    return np.abs(got.reshape(a.shape).astype(np.int32) - a.astype(np.int32)).reshape(len(x), -1)


def layerwise_int8_diff(qm: QuantizedModel, x_int8: np.ndarray) -> list[int]:
    """Max |ONNX Runtime - integer reference| (LSB) of every layer, each layer fed the reference's
    own int8 input (so differences do not propagate): ORT's float requantisation against CMSIS-NN's
    fixed point."""
    from nas.quant.quantize import run_layer

    x = np.asarray(x_int8, dtype=np.int8)
    a = x.reshape(-1, *qm.input_shape, 1)
    spec = qm.spec
    out = []
    for i, q in enumerate(qm.layers):
        y = run_layer(q, a)
        sess = session(int8_model(qm, i, i + 1))
        af = (a.astype(np.float32) - np.float32(q.in_zero_point)) * np.float32(q.in_scale)
        feed = af.reshape(len(a), -1) if _is_flat(spec, i) else af.transpose(0, 3, 1, 2)
        got = sess.run([INT8_OUTPUT], {INPUT: np.ascontiguousarray(feed)})[0]
        if got.ndim == 4:
            got = got.transpose(0, 2, 3, 1)
        out.append(int(np.abs(got.reshape(y.shape).astype(np.int32) - y.astype(np.int32)).max()))
        a = y
    return out
