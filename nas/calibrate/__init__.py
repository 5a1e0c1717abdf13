"""Measure the chip and refit the data in nas/cost/data/: `python -m nas.calibrate --cmsis-nn PATH`.

Builds CMSIS-NN (a checkout) and the portable kernels for each instruction set and optimisation
level, counts instructions exactly under QEMU and reads code sizes from linker maps; the fits land
in ``nas/cost/data/*.json`` with their provenance. A maintainer's tool: it needs the cross
toolchain, QEMU, a CMSIS-NN checkout and a CMSIS-DSP tree, and about 30 minutes of 2 CPU cores.
"""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPACE = REPO / "search_spaces" / "default.yaml"
