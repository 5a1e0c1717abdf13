"""`python -m nas.chip.measure --cmsis-nn PATH`: regenerate the chip cost data shipped in nas/chip/data/.

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
  lengths 64..2048 -> ``frontend.json``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import tempfile
from pathlib import Path

from nas.chip import cpu
from nas.errors import UserError, run_cli

STEPS = ("kernels", "codesize", "glue", "frontend")
DEFAULT_WORK = Path(tempfile.gettempdir()) / "nas_chip_measure"


def configs(libraries, isas, opts) -> list[tuple[str, str, str]]:
    return [(lib, isa, opt) for lib in libraries for isa in isas for opt in opts]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nas.chip.measure", description=__doc__.split("\n\n")[0])
    p.add_argument("--cmsis-nn", default=os.environ.get("CMSIS_NN_PATH") or None,
                   help="CMSIS-NN checkout measured as the 'cmsis-nn' library (default $CMSIS_NN_PATH)")
    p.add_argument("--cmsis-dsp", default=os.environ.get("CMSIS_DSP_PATH") or None,
                   help="CMSIS-DSP tree for the front-end step (default $CMSIS_DSP_PATH)")
    p.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated subset of {','.join(STEPS)}")
    p.add_argument("--libraries", default=",".join(cpu.LIBRARIES))
    p.add_argument("--isas", default=",".join(cpu.ISAS))
    p.add_argument("--opts", default=",".join(cpu.OPT_LEVELS))
    p.add_argument("--work", default=str(DEFAULT_WORK), help="cache of builds and raw counts (default %(default)s)")
    p.add_argument("--out", default=str(cpu.DATA_DIR), help="where the JSON files go (default: the package's data/)")
    return p


def _write(path: Path, data: dict) -> None:
    from nas.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    steps = [s for s in args.steps.split(",") if s]
    bad = [s for s in steps if s not in STEPS]
    if bad:
        raise UserError(f"--steps: unknown {', '.join(bad)} (have {', '.join(STEPS)})")
    libs = [x for x in args.libraries.split(",") if x]
    if "cmsis-nn" in libs and not args.cmsis_nn:
        raise UserError("--cmsis-nn: the cmsis-nn library needs a checkout (or pass --libraries portable)")
    roots = {"cmsis-nn": args.cmsis_nn, "portable": None}
    cfgs = configs(libs, [x for x in args.isas.split(",") if x], [x for x in args.opts.split(",") if x])
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    from nas.chip import codesize

    insn_file, size_file = out / cpu.INSTRUCTIONS_FILE.name, out / codesize.CODESIZE_FILE.name
    if "kernels" in steps:
        from nas.chip.measure import instructions

        _write(insn_file, instructions.regenerate(cfgs, roots, work, stamp, insn_file))
    if "codesize" in steps:
        from nas.chip.measure import sizes

        _write(size_file, sizes.regenerate(cfgs, roots, work, stamp, size_file))
    if "glue" in steps:
        from nas.chip.measure import glue

        insn, size = json.loads(insn_file.read_text()), json.loads(size_file.read_text())
        for cfg in cfgs:
            key = cpu.config_key(*cfg)
            print(f"glue of the generated code on {key} ...", flush=True)
            insn["configs"][key]["glue"], size["configs"][key]["glue"] = glue.measure(
                cfg, roots, work, codesize.codesize_model(*cfg, path=size_file))
        _write(insn_file, insn)
        _write(size_file, size)
    if "frontend" in steps:
        from nas.chip import frontend
        from nas.chip.measure import frontend as fe_measure

        dsp = args.cmsis_dsp
        if not dsp:
            raise UserError("--cmsis-dsp: the frontend step needs a CMSIS-DSP tree (or CMSIS_DSP_PATH)")
        _write(out / frontend.FRONTEND_FILE.name,
               fe_measure.regenerate(sorted({(isa, opt) for _, isa, opt in cfgs}), dsp, work, stamp))
    return 0


if __name__ == "__main__":
    run_cli(main)
