"""ONNX twins of an exported model, built node by node from the weights (no tracing).

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
from nas.arch.spec import AvgPool2D, Conv2D, Dense, DepthwiseConv2D, GlobalAvgPool2D, MaxPool2D, Softmax, conv_padding
from nas.core.atomic import atomic_write_bytes
from nas.quant.quantize import QLayer, QuantizedModel

OPSET = 17
IR_VERSION = 8          # the IR version of opset 17: readable by every ONNX Runtime since 1.11
INPUT = "features"
FLOAT_OUTPUT = "probabilities"
INT8_OUTPUT = "scores"


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

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
        return out

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


def _flatten_nhwc(g: _Graph, x: str, base: str) -> str:
    t = g.node("Transpose", [x], base, perm=[0, 2, 3, 1])
    return g.node("Flatten", [t], base, axis=1)


def _pool(g: _Graph, layer, x: str, base: str, out: str | None = None) -> str:
    if isinstance(layer, MaxPool2D):
        return g.node("MaxPool", [x], base, out=out, kernel_shape=list(layer.pool), strides=list(layer.strides))
    if isinstance(layer, AvgPool2D):
        return g.node("AveragePool", [x], base, kernel_shape=list(layer.pool), strides=list(layer.strides))
    return g.node("GlobalAveragePool", [x], base)


def float_model(net: Net) -> onnx.ModelProto:
    """The folded float network as ONNX (see the module docstring)."""
    folded = fold_batchnorm(net)
    spec = folded.spec
    g = _Graph()
    x, flat = INPUT, False
    for name, layer in zip(spec.layer_names(), spec.layers):
        if isinstance(layer, Softmax):
            x = g.node("Softmax", [x], name, out=FLOAT_OUTPUT, axis=-1)
            continue
        op = folded.layers[name].op
        if isinstance(layer, (Conv2D, DepthwiseConv2D)):
            w = g.const(f"{name}_weight", op.weight.detach().numpy().astype(np.float32))
            b = g.const(f"{name}_bias", op.bias.detach().numpy().astype(np.float32))
            pt, pl = conv_padding(layer.kernel, layer.padding)
            x = g.node("Conv", [x, w, b], name, kernel_shape=list(layer.kernel), strides=list(layer.stride),
                       pads=[pt, pl, pt, pl], group=int(op.groups))
        elif isinstance(layer, (MaxPool2D, AvgPool2D, GlobalAvgPool2D)):
            x = _pool(g, layer, x, name)
        elif isinstance(layer, Dense):
            if not flat:
                x, flat = _flatten_nhwc(g, x, name), True
            w = g.const(f"{name}_weight", op.weight.detach().numpy().astype(np.float32))
            b = g.const(f"{name}_bias", op.bias.detach().numpy().astype(np.float32))
            x = g.node("Gemm", [x, w, b], name, transB=1)
        else:
            raise TypeError(f"no ONNX export for {layer!r}")
        if getattr(layer, "activation", "none") == "relu":
            x = g.node("Relu", [x], name)
    out = helper.make_tensor_value_info(FLOAT_OUTPUT, TensorProto.FLOAT, ["N", spec.num_classes])
    return g.model(_input(spec), out, spec.name, f"{spec.name}: folded float network, normalised log-mel input")


def _qdq(g: _Graph, x: str, scale: float, zp: int, base: str, out: str | None = None) -> tuple[str, str]:
    """QuantizeLinear then DequantizeLinear with per-tensor int8 (scale, zero point): (q, dq)."""
    s = g.const(f"{base}_scale", np.array(scale, dtype=np.float32))
    z = g.const(f"{base}_zero_point", np.array(zp, dtype=np.int8))
    q = g.node("QuantizeLinear", [x, s, z], f"{base}_q", out=out)
    return q, g.node("DequantizeLinear", [q, s, z], f"{base}_dq")


def _dq_weights(g: _Graph, q: QLayer) -> tuple[str, str]:
    """Dequantized weight and bias tensors of a conv/depthwise/dense layer (ONNX layouts)."""
    if q.kind == Conv2D.TYPE:
        w = np.ascontiguousarray(q.weights.transpose(0, 3, 1, 2))             # OHWI -> OIHW
    elif q.kind == DepthwiseConv2D.TYPE:
        w = np.ascontiguousarray(q.weights.transpose(3, 0, 1, 2))             # 1HWC -> C1HW
    else:
        w = q.weights                                                          # [C_OUT, K]
    per_channel = q.kind != Dense.TYPE
    ws = np.asarray(q.weight_scales, dtype=np.float32)
    bs = (np.float32(q.in_scale) * ws).astype(np.float32)
    if per_channel:
        w_s, w_z = g.const(f"{q.name}_w_scale", ws), g.const(f"{q.name}_w_zp", np.zeros(len(ws), np.int8))
        b_s, b_z = g.const(f"{q.name}_b_scale", bs), g.const(f"{q.name}_b_zp", np.zeros(len(bs), np.int32))
        kw = {"axis": 0}
    else:
        w_s, w_z = g.const(f"{q.name}_w_scale", ws[0]), g.const(f"{q.name}_w_zp", np.array(0, np.int8))
        b_s, b_z = g.const(f"{q.name}_b_scale", bs[0]), g.const(f"{q.name}_b_zp", np.array(0, np.int32))
        kw = {}
    wq = g.const(f"{q.name}_weight_int8", np.asarray(w, np.int8))
    bq = g.const(f"{q.name}_bias_int32", np.asarray(q.bias, np.int32))
    return (g.node("DequantizeLinear", [wq, w_s, w_z], f"{q.name}_w", **kw),
            g.node("DequantizeLinear", [bq, b_s, b_z], f"{q.name}_b", **kw))


def _is_flat(spec, index: int) -> bool:
    """Whether layer `index`'s input is already 2-D [N, K] in the ONNX graph (it follows a dense)."""
    return index > 0 and isinstance(spec.layers[index - 1], Dense)


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
        ["N", ql.out_shape[2]] if isinstance(spec.layers[last - 1], Dense)
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
    xq, x = _qdq(g, INPUT, q0.in_scale, q0.in_zero_point, "input")
    flat = _is_flat(spec, first)
    for i in range(first, last):
        q, layer = qm.layers[i], spec.layers[i]
        final = INT8_OUTPUT if i == last - 1 else None
        if isinstance(layer, MaxPool2D):
            # Max commutes with quantisation: pool the int8 tensor itself, as CMSIS-NN does.
            xq = _pool(g, layer, xq, q.name, out=final)
            s = g.const(f"{q.name}_scale", np.array(q.out_scale, dtype=np.float32))
            z = g.const(f"{q.name}_zero_point", np.array(q.out_zero_point, dtype=np.int8))
            x = g.node("DequantizeLinear", [xq, s, z], f"{q.name}_dq")
            continue
        if isinstance(layer, Softmax):
            y = g.node("Softmax", [x], q.name, axis=-1)
            _qdq(g, y, q.out_scale, q.out_zero_point, q.name, out=final)
            continue
        if isinstance(layer, (Conv2D, DepthwiseConv2D)):
            w, b = _dq_weights(g, q)
            pt, pl = q.padding
            y = g.node("Conv", [x, w, b], q.name, kernel_shape=list(q.kernel), strides=list(q.stride),
                       pads=[pt, pl, pt, pl], group=q.in_shape[2] if isinstance(layer, DepthwiseConv2D) else 1)
        elif isinstance(layer, (AvgPool2D, GlobalAvgPool2D)):
            y = _pool(g, layer, x, q.name)
        elif isinstance(layer, Dense):
            w, b = _dq_weights(g, q)
            if not flat:
                x, flat = _flatten_nhwc(g, x, q.name), True
            y = g.node("Gemm", [x, w, b], q.name, transB=1)
        else:
            raise TypeError(f"no ONNX export for {layer!r}")
        if q.relu:
            y = g.node("Relu", [y], q.name)
        xq, x = _qdq(g, y, q.out_scale, q.out_zero_point, q.name, out=final)
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
