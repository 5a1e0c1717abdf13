"""`python -m nas.calibrate --cmsis-nn PATH`: regenerate the chip cost data shipped in nas/cost/data/.

Steps (each cached under ``--work``, so an interrupted run resumes and a refit reruns nothing):

* ``kernels``: every layer call of 150 random networks of the default search space plus 1200 random
  calls around them, counted exactly under QEMU for each kernel library (the CMSIS-NN checkout and
  the portable kernels), instruction set (cortex-m4 DSP, cortex-m3, cortex-m0plus) and optimisation
  level (O2, Os, O3); one fit per kernel -> ``instructions.json``;
* ``codesize``: the FLASH of every function each CMSIS-NN entry point links (and the verification
  harness) -> ``codesize.json``;
* ``glue``: whole exported models (random weights) on the same configurations: the generated code's
  instructions per layer and per inference beyond the kernel calls, and its FLASH per layer kind
  (into both files);
* ``frontend``: the generated CMSIS-DSP front-end's instructions per frame and code size for FFT
  lengths 64..4096, float and fixed point (``--arithmetics``) -> ``frontend.json``.
"""
from __future__ import annotations

import os
from pathlib import Path

from nas.core import flags
from nas.core.errors import run_cli


def _list(text: str | None) -> list[str]:
    return [x for x in (text or "").split(",") if x]


def main(argv: list[str] | None = None) -> int:
    p = flags.Parser(prog="python -m nas.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--cmsis-nn", default=os.environ.get("CMSIS_NN_PATH") or None,
                   help="CMSIS-NN checkout measured as the 'cmsis-nn' library (default $CMSIS_NN_PATH)")
    p.add_argument("--cmsis-dsp", default=os.environ.get("CMSIS_DSP_PATH") or None,
                   help="CMSIS-DSP tree for the front-end step (default $CMSIS_DSP_PATH)")
    p.add_argument("--steps", default=None, help="comma-separated subset of the steps (default: every step)")
    p.add_argument("--libraries", default=None,
                   help="kernel libraries measured (default: every one; nas: the project's own kernels)")
    p.add_argument("--isas", default=None, help="instruction sets measured (default: every one)")
    p.add_argument("--opts", default=None, help="optimisation levels measured (default: every one)")
    p.add_argument("--kernels", default="", help="refit only these kernels (comma-separated, e.g. add); the "
                   "others keep their fits (default: every kernel)")
    p.add_argument("--arithmetics", default="float,fixed", help="front-ends the frontend step measures")
    p.add_argument("--work", default=None,
                   help="cache of builds and raw counts (default: nas_chip_measure in the temporary folder)")
    p.add_argument("--out", default=None, help="where the JSON files go (default: the package's data/)")
    a = p.parse_args(argv)
    from nas.calibrate.run import DEFAULT_WORK, STEPS, regenerate  # torch loads with the layer kinds: after parsing
    from nas.cost import cpu, nas_kernels

    libraries = [*cpu.LIBRARIES, nas_kernels.LIBRARY]
    regenerate(_list(a.steps) or list(STEPS), _list(a.libraries) or libraries, _list(a.isas) or list(cpu.ISAS),
               _list(a.opts) or list(cpu.OPT_LEVELS), a.cmsis_nn, a.cmsis_dsp, Path(a.work or DEFAULT_WORK),
               Path(a.out or cpu.DATA_DIR), tuple(_list(a.kernels)), _list(a.arithmetics))
    return 0


if __name__ == "__main__":
    run_cli(main)
