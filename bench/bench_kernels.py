"""Kernel cost benchmark: retired instructions per MAC on a Cortex-M4 (QEMU mps2-an386, -icount).

``run()`` builds the layer driver with the portable CMSIS-NN kernels (``-mcpu=cortex-m4 -mthumb
-mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2``, DSP path), runs five representative audio-CNN layers
and returns ``(name, instructions per MAC, "insn/MAC")``.  When ``CMSIS_NN_PATH`` points at a
CMSIS-NN checkout the same layers are run against the real library, adding ``<layer>.cmsis``
(insn/MAC) and ``<layer>.ratio`` (portable / CMSIS-NN).  Outputs are checked bit-exact against
``nas.int8.intref`` before any number is reported.  Returns ``[]`` when arm-none-eabi-gcc or
qemu-system-arm is missing.  Counts are instructions, not cycles (resolution 40 instructions).
"""
from __future__ import annotations

import os

import _testlib



def _layers(cb, rng):
    same3 = (1, 1)
    same5 = (2, 2)
    return [
        cb.conv_case(rng, h=40, w=32, cin=1, cout=16, kh=5, kw=5, padding=same5, name="conv5x5_cin1_40x32x16"),
        cb.conv_case(rng, h=16, w=16, cin=16, cout=32, kh=3, kw=3, padding=same3, name="conv3x3_16x16_16to32"),
        cb.dw_case(rng, h=16, w=16, c=32, kh=5, kw=5, padding=same5, name="dw5x5_16x16_c32"),
        cb.conv_case(rng, h=16, w=16, cin=32, cout=48, kh=1, kw=1, name="pw1x1_16x16_32to48"),
        cb.fc_case(rng, depth=512, cout=64, name="fc_512to64"),
    ]


def run() -> list[tuple[str, float, str]]:
    import numpy as np

    cb = _testlib.load("_cbuild")
    if cb.qemu.find_toolchain() is None:
        return []
    cases = _layers(cb, np.random.default_rng(2024))
    libs = ["portable"] + (["cmsis"] if os.environ.get("CMSIS_NN_PATH") else [])
    per_lib = {}
    for lib in libs:
        results = cb.run_qemu(cb.build_qemu_driver(lib, opt="-O2"), cases)
        cb.check_results(cases, results, f"bench {lib}")
        per_lib[lib] = [r.insn / c.macs for c, r in zip(cases, results)]
    out: list[tuple[str, float, str]] = []
    for i, c in enumerate(cases):
        out.append((f"{c.name}.portable", round(per_lib["portable"][i], 3), "insn/MAC"))
        if "cmsis" in per_lib:
            out.append((f"{c.name}.cmsis", round(per_lib["cmsis"][i], 3), "insn/MAC"))
            out.append((f"{c.name}.ratio", round(per_lib["portable"][i] / per_lib["cmsis"][i], 3), "x"))
    return out


if __name__ == "__main__":
    for row in run():
        print(*row)
