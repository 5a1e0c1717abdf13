"""CMSIS-NN v7 (a user's checkout, `CMSIS_NN_PATH`) and the portable kernels shipped here, which
implement the same functions with the same names, signatures, dispatch and scratch rules in plain C.

Dispatch and scratch sizes are CMSIS-NN v7's on a core without MVE (deploy.md sections 1.4, 1.5):
a 1x1 unpadded conv runs `arm_convolve_1x1_s8_fast` (stride 1) or `arm_convolve_1x1_s8` without a
buffer, other convs `arm_convolve_s8` with an im2col buffer of 4 * align4(kh * kw * cin) bytes; a 3x3
depthwise conv with padding <= 1 runs `arm_depthwise_conv_3x3_s8`, other depthwise convs
`arm_depthwise_conv_s8_opt` with 2 * c * kh * kw bytes on DSP cores; average pooling needs 4 * c
bytes on DSP cores.
"""
from __future__ import annotations

from pathlib import Path

from nas.kinds.base import KernelCall, align4
from nas.libraries.base import Kernel, KernelLibrary, LibraryMissing

PORTABLE_DIR = Path(__file__).resolve().parent / "csrc" / "cmsisnn_portable"

# The CMSIS-NN files (under Source/) the generated calls link: the wrappers, every kernel they dispatch
# to and their helpers (the closure of model.c's undefined symbols on DSP and non-DSP cores, identical for
# v7.0.0 and the main branch). Compiling only these keeps builds fast and lets a checkout whose other
# sources need options (main's float API #errors without ARM_NN_ENABLE_F32/F16) build as it is.
CMSIS_NN_SOURCES: tuple[str, ...] = (
    "ConvolutionFunctions/arm_convolve_1_x_n_s8.c",
    "ConvolutionFunctions/arm_convolve_1x1_s8.c",
    "ConvolutionFunctions/arm_convolve_1x1_s8_fast.c",
    "ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c",
    "ConvolutionFunctions/arm_convolve_s8.c",
    "ConvolutionFunctions/arm_convolve_wrapper_s8.c",
    "ConvolutionFunctions/arm_depthwise_conv_3x3_s8.c",
    "ConvolutionFunctions/arm_depthwise_conv_get_buffer_sizes_s8.c",
    "ConvolutionFunctions/arm_depthwise_conv_s8.c",
    "ConvolutionFunctions/arm_depthwise_conv_s8_opt.c",
    "ConvolutionFunctions/arm_depthwise_conv_wrapper_s8.c",
    "ConvolutionFunctions/arm_nn_mat_mult_kernel_row_offset_s8_s16.c",
    "ConvolutionFunctions/arm_nn_mat_mult_kernel_s8_s16.c",
    "FullyConnectedFunctions/arm_fully_connected_get_buffer_sizes_s8.c",
    "FullyConnectedFunctions/arm_fully_connected_s8.c",
    "NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c",
    "NNSupportFunctions/arm_nn_vec_mat_mult_t_s8.c",
    "NNSupportFunctions/arm_q7_to_q15_with_offset.c",
    "NNSupportFunctions/arm_s8_to_s16_unordered_with_offset.c",
    "PoolingFunctions/arm_avgpool_get_buffer_sizes_s8.c",
    "PoolingFunctions/arm_avgpool_s8.c",
    "PoolingFunctions/arm_max_pool_s8.c",
    "SoftmaxFunctions/arm_nn_softmax_common_s8.c",
    "SoftmaxFunctions/arm_softmax_s8.c",
    "BasicMathFunctions/arm_elementwise_add_s8.c",
)

# op -> (C function model.c calls, its buffer-size query)
FUNCTIONS: dict[str, tuple[str, str | None]] = {
    "conv": ("arm_convolve_wrapper_s8", "arm_convolve_wrapper_s8_get_buffer_size"),
    "dw": ("arm_depthwise_conv_wrapper_s8", "arm_depthwise_conv_wrapper_s8_get_buffer_size"),
    "fc": ("arm_fully_connected_s8", "arm_fully_connected_s8_get_buffer_size"),
    "max_pool": ("arm_max_pool_s8", None),
    "avg_pool": ("arm_avgpool_s8", "arm_avgpool_s8_get_buffer_size"),
    "softmax": ("arm_softmax_s8", None),
    "add": ("arm_elementwise_add_s8", None),
}


def dispatch(call: KernelCall) -> str:
    """The kernel CMSIS-NN v7's wrapper runs for `call` on a core without MVE (deploy notes 1.4).
    ``conv`` also covers ``arm_convolve_1_x_n_s8``, which calls ``arm_convolve_s8`` there."""
    if call.op == "conv":
        if (call.kh, call.kw, call.ph, call.pw) == (1, 1, 0, 0):
            return "conv_1x1_fast" if (call.sh, call.sw) == (1, 1) else "conv_1x1"
        return "conv"
    if call.op == "dw":
        if call.cout != call.cin:
            raise ValueError("depthwise channel multiplier > 1 (arm_depthwise_conv_s8) is not modelled")
        return "dw_3x3" if (call.kh, call.kw) == (3, 3) and call.ph <= 1 and call.pw <= 1 else "dw_opt"
    if call.op in FUNCTIONS:
        return call.op
    raise ValueError(f"unknown op {call.op!r}")


class CmsisNN(KernelLibrary):
    name = "cmsis-nn"
    description = "CMSIS-NN v7 (a checkout: CMSIS_NN_PATH)"
    ops = tuple(FUNCTIONS)

    def kernel(self, call, dsp):
        function, size = FUNCTIONS[call.op]
        return Kernel(dispatch(call), call.op, function, size)

    def scratch_bytes(self, call, dsp):
        name = dispatch(call)
        if name == "conv":
            return 4 * align4(call.kh * call.kw * call.cin)     # arm_convolve_s8 im2col, DSP and C alike
        if name == "dw_opt":
            return 2 * call.cin * call.kh * call.kw if dsp else 0
        if name == "avg_pool":
            return 4 * call.cin if dsp else 0
        return 0   # 1x1 convs (no buffer with GCC), dw_3x3, max pool, fully connected (non-MVE), softmax

    def entry_points(self, op):
        return tuple(f for f in FUNCTIONS[op] if f)

    def sources(self, root=None):
        if not root:
            raise LibraryMissing("the cmsis-nn library needs a CMSIS-NN checkout (CMSIS_NN_PATH)")
        root = Path(root)
        inc = root / "Include"
        if not (inc / "arm_nnfunctions.h").is_file():
            raise LibraryMissing(f"{root} is not a CMSIS-NN checkout (no Include/arm_nnfunctions.h)")
        srcs = [root / "Source" / s for s in CMSIS_NN_SOURCES]
        missing = [s for s, p in zip(CMSIS_NN_SOURCES, srcs) if not p.is_file()]
        if missing:
            raise LibraryMissing(f"{root}: CMSIS-NN sources missing under Source/: {', '.join(missing)}")
        return srcs, [inc]


class Portable(CmsisNN):
    """CMSIS-NN's functions in portable C (`csrc/cmsisnn_portable`), bit-exact with the library: the
    exported folder builds and self-tests anywhere, and it is the library of cores without one."""

    name = "portable"
    description = "portable C kernels shipped with nas (CMSIS-NN's API)"

    def sources(self, root=None):
        return sorted(PORTABLE_DIR.glob("*.c")), [PORTABLE_DIR]

