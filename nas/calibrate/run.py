"""One regeneration run: the requested steps over the requested configurations, in order."""
from __future__ import annotations

import datetime as _dt
import json
import tempfile
from pathlib import Path

from nas.core.atomic import atomic_write_text
from nas.core.errors import UserError
from nas.cost import codesize, cpu, frontend, nas_kernels

STEPS = ("kernels", "codesize", "glue", "frontend")
DEFAULT_WORK = Path(tempfile.gettempdir()) / "nas_chip_measure"


def _write(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}", flush=True)


def _glue(cfgs, roots, work: Path, insn_file: Path, size_file: Path) -> None:
    from nas.calibrate import glue

    insn, size = json.loads(insn_file.read_text()), json.loads(size_file.read_text())
    _unfitted_glue_as_zero(cfgs, size, size_file)
    for cfg in cfgs:
        key = cpu.config_key(*cfg)
        print(f"glue of the generated code on {key} ...", flush=True)
        insn["configs"][key]["glue"], size["configs"][key]["glue"] = glue.measure(
            cfg, roots, work, codesize.codesize_model(*cfg, path=size_file))
    _write(insn_file, insn)
    _write(size_file, size)


def _unfitted_glue_as_zero(cfgs, size: dict, size_file: Path) -> None:
    """The exported models measured here are priced first (their arena and kernels): an op whose glue
    was never fitted (a new op) counts 0 bytes until this step fits it."""
    from nas.libraries import library

    for lib, isa, opt in cfgs:
        per_op = size["configs"][cpu.config_key(lib, isa, opt)].setdefault("glue", {}).setdefault("per_layer", {})
        for op in library(lib).ops:
            per_op.setdefault(op, 0.0)
    _write(size_file, size)
    cpu._load.cache_clear()
    codesize.codesize_model.cache_clear()


def regenerate(steps, libraries, isas, opts, cmsis_nn: str | None, cmsis_dsp: str | None, work: Path,
               out: Path, kernels: tuple[str, ...] = (), arithmetics=("float", "fixed")) -> None:
    """Run `steps` (a subset of `STEPS`) and write the JSON files into `out`; `kernels` limits the
    kernels step to those kernels (the others keep their fits), the frontend step measures the
    front-ends of `arithmetics` and keeps the others' data of the existing file."""
    bad = [s for s in steps if s not in STEPS]
    if bad:
        raise UserError(f"--steps: unknown {', '.join(bad)} (have {', '.join(STEPS)})")
    bad = [k for k in kernels if k not in cpu.KERNELS]
    if bad:
        raise UserError(f"--kernels: unknown {', '.join(bad)} (have {', '.join(cpu.KERNELS)})")
    wrong = [a for a in arithmetics if a not in ("float", "fixed")]
    if wrong or not arithmetics:
        raise UserError(f"--arithmetics: expected float and/or fixed, got {','.join(arithmetics) or 'nothing'}")
    if "cmsis-nn" in libraries and not cmsis_nn:
        raise UserError("--cmsis-nn: the cmsis-nn library needs a checkout (or pass --libraries portable)")
    if "frontend" in steps and not cmsis_dsp:
        raise UserError("--cmsis-dsp: the frontend step needs a CMSIS-DSP tree (or CMSIS_DSP_PATH)")
    roots = {"cmsis-nn": cmsis_nn, "portable": None}
    own = [(isa, opt) for isa in isas for opt in opts] if nas_kernels.LIBRARY in libraries else []
    cfgs = [(lib, isa, opt) for lib in libraries if lib != nas_kernels.LIBRARY for isa in isas for opt in opts]
    work.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    insn_file, size_file = out / cpu.INSTRUCTIONS_FILE.name, out / codesize.CODESIZE_FILE.name
    if "kernels" in steps:
        from nas.calibrate import instructions, own as own_kernels

        data = instructions.regenerate(cfgs, roots, work, stamp, insn_file, tuple(kernels))
        own_kernels.regenerate_instructions(own, work, data)
        _write(insn_file, data)
    if "codesize" in steps:
        from nas.calibrate import own as own_kernels, sizes

        data = sizes.regenerate(cfgs, roots, work, stamp, size_file)
        own_kernels.regenerate_sizes(own, work, data)
        _write(size_file, data)
    if "glue" in steps:
        _glue(cfgs, roots, work, insn_file, size_file)
    if "frontend" in steps:
        from nas.calibrate import frontend as fe_measure

        path = out / frontend.FRONTEND_FILE.name
        old = json.loads(path.read_text()) if path.is_file() else None
        _write(path, fe_measure.regenerate(sorted({(isa, opt) for _, isa, opt in cfgs}), cmsis_dsp, work, stamp,
                                           tuple(arithmetics), old))
