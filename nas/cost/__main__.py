"""`python -m nas.cost --budget B --arch A`: the per-layer int8 cost of an architecture against a budget.

Exit 0 if it fits, 1 if not, 2 for a bad file.
"""
from __future__ import annotations

import argparse

from nas.arch.spec import ArchSpec
from nas.budget import Budget
from nas.core.errors import run_cli
from nas.cost.analytic import estimate, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas.cost",
                                     description="Per-layer int8 cost of an architecture against a budget. "
                                                 "Exit 0 if it fits, 1 if not.")
    parser.add_argument("--budget", required=True, help="budget YAML, e.g. budgets/stm32l476.yaml")
    parser.add_argument("--arch", required=True, help="architecture spec YAML, e.g. specs/thesis/stride-ds-24.yaml")
    args = parser.parse_args(argv)
    budget = Budget.load(args.budget)
    spec = ArchSpec.load(args.arch)
    cost = estimate(spec, budget)
    print(report(spec, budget, cost))
    return 0 if cost.fits(budget) else 1


if __name__ == "__main__":
    run_cli(main)
