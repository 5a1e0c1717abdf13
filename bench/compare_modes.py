"""Search modes compared at equal time: N searches of each mode for M minutes on the same data, then
where each one's trials went and what it would hand the user.

    flock /work/.heavy.lock python bench/compare_modes.py --data /work/us8k --train-folds 1 \
        --val-folds 3 --test-folds 2 --cache /work/cache --minutes 20 --seeds 0,1 --parallel 2 --out cmp
    python bench/compare_modes.py --out cmp --report-only          # the tables again, nothing run

Each search is `python -m nas.search --mode MODE --seed S --timeout M*60 --threads 1` on its own
journal (`OUT/MODE-sS/journal.log`), `--parallel` of them at a time (2 on 2 cores: the modes side
by side, one thread each). Printed per search: trials by cost band (MAC/s) x outcome, candidates
trained above 1 M MAC/s or above 32 kB RAM, the best validation scores, and the pick (the most
accurate trained model within the budget: what the accuracy mode answers; the pareto mode's front
holds it too). Nothing here reads the test folds.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BANDS = ((0, 0.25e6, "<0.25M"), (0.25e6, 1e6, "0.25-1M"), (1e6, 2.5e6, "1-2.5M"), (2.5e6, float("inf"), ">2.5M"))
OUTCOMES = ("trained", "stopped", "rejected", "reused", "failed")


def command(args, mode: str, seed: int, journal: Path) -> list[str]:
    return [sys.executable, "-m", "nas.search", "--budget", args.budget, "--data", args.data,
            "--train-folds", args.train_folds, "--val-folds", args.val_folds, "--test-folds", args.test_folds,
            "--cache", args.cache, "--epochs", str(args.epochs), "--threads", "1", "--progress", "off",
            "--mode", mode, "--seed", str(seed), "--study", journal.parent.name, "--storage", str(journal),
            "--timeout", str(args.minutes * 60), "--trials", "100000", *(["--space", args.space] if args.space else [])]


def run_all(args, runs: list[tuple[str, int]], out: Path) -> None:
    """Every (mode, seed) search, `--parallel` at a time, each logging to its folder."""
    pending = list(runs)
    active: list[tuple[subprocess.Popen, str, float]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    while pending or active:
        while pending and len(active) < args.parallel:
            mode, seed = pending.pop(0)
            folder = out / f"{mode}-s{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            log = open(folder / "search.log", "w")
            proc = subprocess.Popen(command(args, mode, seed, folder / "journal.log"), cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
            active.append((proc, folder.name, time.time()))
            print(f"started {folder.name} (pid {proc.pid})", flush=True)
        time.sleep(5)
        for item in [a for a in active if a[0].poll() is not None]:
            active.remove(item)
            print(f"finished {item[1]}: exit {item[0].returncode}, {(time.time() - item[2]) / 60:.1f} min", flush=True)


def band(compute: float) -> str:
    return next(label for lo, hi, label in BANDS if lo <= compute < hi)


def summary(folder: Path) -> list[str]:
    """The tables of one search."""
    from nas.search.report import views
    from nas.study.study import open_study

    study, _ = open_study(folder.name, str(folder / "journal.log"))
    trials = [v for v in views(study) if v.rec.macs_per_second is not None]
    table = {b[2]: {o: 0 for o in OUTCOMES} for b in BANDS}
    for v in trials:
        if v.outcome in OUTCOMES:
            table[band(v.rec.macs_per_second)][v.outcome] += 1
    replaced = sum(v.outcome == "replaced" for v in views(study))
    lines = [f"== {folder.name}: {len(trials)} priced trials; {replaced} repeated proposals replaced by fresh points", f"{'MAC/s band':<10}" + "".join(f"{o:>10}" for o in OUTCOMES)]
    lines += [f"{b:<10}" + "".join(f"{row[o]:>10}" for o in OUTCOMES) for b, row in table.items()]
    trained = [v for v in trials if v.outcome == "trained"]
    big = [v for v in trained if v.rec.macs_per_second > 1e6 or v.rec.ram_bytes > 32 * 1024]
    lines.append(f"trained {len(trained)}; above 1 M MAC/s or 32 kB RAM: {len(big)} "
                 f"(> 1 M MAC/s {sum(v.rec.macs_per_second > 1e6 for v in trained)}, "
                 f"> 32 kB {sum(v.rec.ram_bytes > 32 * 1024 for v in trained)})")
    best = sorted(trained, key=lambda v: -v.t.values[0])[:5]
    lines.append("best validation scores: " + ", ".join(
        f"t{v.t.number} {v.name} {v.t.values[0]:.3f} ({v.n_seeds} seeds, {v.rec.macs_per_second / 1e6:.2f} M, "
        f"{v.rec.ram_bytes / 1024:.1f} kB)" for v in best))
    if best:
        pick = best[0]
        lines.append(f"pick: trial {pick.t.number} {pick.name} val {pick.t.values[0]:.3f}: {pick.network}")
    return lines


def main(argv: list[str] | None = None) -> int:
    sys.path[:0] = [str(ROOT)]
    p = argparse.ArgumentParser(prog="python bench/compare_modes.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder of the searches (one subfolder each)")
    p.add_argument("--modes", default="accuracy,pareto")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--budget", default=str(ROOT / "budgets/stm32l476.yaml"))
    p.add_argument("--space", default=None)
    p.add_argument("--data", default="demo")
    p.add_argument("--train-folds", default="1")
    p.add_argument("--val-folds", default="3")
    p.add_argument("--test-folds", default="2")
    p.add_argument("--cache", default=str(ROOT / "studies/cache"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    runs = [(m, int(s)) for s in args.seeds.split(",") for m in args.modes.split(",")]
    if not args.report_only:
        run_all(args, runs, out)
    for mode, seed in runs:
        folder = out / f"{mode}-s{seed}"
        print("\n".join(summary(folder) if (folder / "journal.log").is_file() else [f"== {folder.name}: no journal"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
