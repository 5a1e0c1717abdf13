"""`python -m nas.export --study S [--trial N | --pareto]`: trained models -> deployable folders.

Flags → `nas.export.pipeline.export_study`: per trial, ONNX (float, int8) and C calling CMSIS-NN and
CMSIS-DSP, verified bit-exact on the host and measured on a Cortex-M4 where the tools exist. Exit 1
when a check of the generated C fails.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from nas.core import flags
from nas.core.errors import run_cli
from nas.quant import defaults as Q

DEFAULT_EXPORT_ROOT = Path("export")


def build_parser() -> flags.Parser:
    p = flags.Parser(prog="python -m nas.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--study", required=True, type=flags.name, help="study name (as given to nas.search)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=flags.index, action="append", metavar="N",
                       help="export trial N (repeatable); default: the Pareto front")
    which.add_argument("--pareto", action="store_true", help="export every model of the Pareto front (default)")
    p.add_argument("--out", default=None, help="output folder (default export/<study>/)")
    p.add_argument("--storage", default=None, help="Optuna storage (default studies/<study>/journal.log)")
    p.add_argument("--calibration-windows", type=flags.positive_int, default=Q.DEFAULT_CALIBRATION_WINDOWS,
                   help=f"training windows the int8 ranges are calibrated on (default {Q.DEFAULT_CALIBRATION_WINDOWS})")
    p.add_argument("--calibration", choices=Q.METHODS, default=Q.DEFAULT_METHOD,
                   help=f"activation ranges: full min/max or the [{100 - Q.DEFAULT_PERCENTILE:g}, "
                        f"{Q.DEFAULT_PERCENTILE:g}] percentiles (default {Q.DEFAULT_METHOD})")
    p.add_argument("--budget", default=None, help="budget YAML (default: the one the study was searched with)")
    p.add_argument("--data", default=None, help="dataset root (default: the study's)")
    p.add_argument("--cache", default=None, help="feature cache folder (default: the study's)")
    p.add_argument("--checkpoints", default=None,
                   help="checkpoint folder (default: checkpoints/ beside the journal, else studies/<study>/checkpoints)")
    p.add_argument("--cmsis-nn", default=os.environ.get("CMSIS_NN_PATH") or None,
                   help="CMSIS-NN checkout to verify against (default $CMSIS_NN_PATH, else the portable kernels)")
    p.add_argument("--cmsis-dsp", default=os.environ.get("CMSIS_DSP_PATH") or None,
                   help="CMSIS-DSP tree: also run front-end + model on the Cortex-M4 (default $CMSIS_DSP_PATH)")
    p.add_argument("--no-verify", action="store_true", help="do not build or run the generated C")
    p.add_argument("--force", action="store_true", help="replace a trial folder even when it holds files the "
                   "export did not write (by default such a folder is left alone and the export refuses)")
    p.add_argument("--flash-over-estimate", choices=("fail", "warn"), default="fail",
                   help="an ELF above the cost model's FLASH estimate fails the export (default) or warns")
    p.add_argument("--target-precision", type=flags.share, default=None, metavar="P", help="answer 'unknown' below the "
                   "lowest confidence whose validation precision reaches P, e.g. 0.9 (model_decide.h; default: never)")
    p.add_argument("--prefix", action="append", metavar="NAME", help="C API name, once per exported model in "
                   "--trial order: nas_NAME_invoke, NAS_NAME_*, nas_NAME_frontend_* (default nas_model_invoke), "
                   "so several models link into one firmware")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from nas.budget import Budget  # torch, optuna and the rest load after the flags parse: --help is instant
    from nas.export import pipeline, verify
    from nas.study import artifacts, folders
    from nas.study.study import open_study
    study, storage = open_study(args.study, args.storage)
    ckpts = Path(args.checkpoints) if args.checkpoints else folders.checkpoint_dir(args.study, storage)
    budget = Budget.load(args.budget) if args.budget else None
    out = Path(args.out) if args.out else DEFAULT_EXPORT_ROOT / args.study
    what = pipeline.StudyExport(trials=args.trial, budget=budget, data=args.data, cache=args.cache,
                                checkpoints=ckpts, prefixes=args.prefix)
    options = pipeline.ExportOptions(args.calibration_windows, args.calibration, not args.no_verify, args.cmsis_nn,
                                     args.cmsis_dsp, args.force, args.flash_over_estimate, args.target_precision)
    try:
        pipeline.export_study(study, out, what, options,
                              artifacts=artifacts.artifact_store(folders.output_dir(args.study, storage)))
    except verify.VerifyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_cli(main)
