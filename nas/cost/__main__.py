"""`python -m nas.cost --budget B --arch A` or `--study S --trial N`: the per-layer int8 cost of an
architecture against a budget.

Exit 0 if it fits, 1 if not, 2 for a bad file, flag or trial.
"""
from __future__ import annotations

from nas.core import flags
from nas.core.errors import UserError, run_cli


def main(argv: list[str] | None = None) -> int:
    parser = flags.Parser(prog="python -m nas.cost",
                          description="Per-layer int8 cost of an architecture against a budget. "
                                                 "Exit 0 if it fits, 1 if not.")
    parser.add_argument("--budget", help="budget YAML, e.g. budgets/stm32l476.yaml (with --study: default "
                                         "the budget the study was searched with)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--arch", help="architecture spec YAML, e.g. specs/thesis/stride-ds-24.yaml")
    which.add_argument("--study", type=flags.name, help="a study of nas.search: price its trial --trial")
    parser.add_argument("--trial", type=flags.index, help="trial number in --study")
    parser.add_argument("--storage", help="Optuna storage of --study (default studies/<study>/journal.log)")
    args = parser.parse_args(argv)
    from nas.arch.spec import ArchSpec  # the layer kinds load torch: after the flags parse, so --help is instant
    from nas.budget import Budget
    from nas.cost.analytic import estimate, report

    if args.study:
        spec, budget = _from_study(args)
        print(f"study {args.study}, trial {args.trial}: {spec.name}")
    else:
        if not args.budget:
            raise UserError("--budget: required with --arch")
        spec, budget = ArchSpec.load(args.arch), Budget.load(args.budget)
    cost = estimate(spec, budget)
    print(report(spec, budget, cost))
    return 0 if cost.fits(budget) else 1


def _from_study(args):
    from nas.budget import Budget
    from nas.study.settings import recorded_budget
    from nas.study.study import open_study
    from nas.study.trials import trial_spec

    if args.trial is None:
        raise UserError("--trial: required with --study")
    study, _ = open_study(args.study, args.storage)
    return trial_spec(study, args.trial), Budget.load(args.budget) if args.budget else recorded_budget(study)


if __name__ == "__main__":
    run_cli(main)
