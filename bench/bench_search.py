"""Search throughput on the CPU: trials per hour on the demo set, training windows/s, rejection latency."""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run() -> list[tuple[str, float, str]]:
    import optuna
    import yaml

    from nas.arch.space import SearchSpace
    from nas.budget import Budget
    from nas.data.synth import generate
    from nas.data.urbansound import FoldSplit
    from nas.search.objective import Objective
    from nas.study.record import TrialRecord
    from nas.study.study import DIRECTIONS
    from nas.train.recipe import Recipe
    from nas.train.trialdata import TrialData

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = SearchSpace.load(ROOT / "search_spaces/default.yaml")
    budget = Budget.load(ROOT / "budgets/stm32l476.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = generate(tmp / "demo", seed=0, clips_per_class=20, progress=False)
        data = TrialData(root, FoldSplit.for_test_fold(10, 9), tmp / "cache", progress=False)

        tight = yaml.safe_load((ROOT / "budgets/stm32l476.yaml").read_text())
        tight["limits"]["macs_per_second"] = 1000
        (tmp / "tight.yaml").write_text(yaml.safe_dump(tight))
        reject = Objective(space, Budget.load(tmp / "tight.yaml"), data, Recipe(epochs=1), tmp / "ck",
                           log=lambda *_: None)
        study = optuna.create_study(directions=list(DIRECTIONS), sampler=optuna.samplers.TPESampler(seed=0))
        study.optimize(reject, n_trials=100)
        reject_ms = statistics.median((t.datetime_complete - t.datetime_start).total_seconds() * 1e3
                                      for t in study.trials)

        objective = Objective(space, budget, data, Recipe(epochs=6), tmp / "ck", log=lambda *_: None)
        study = optuna.create_study(directions=list(DIRECTIONS), sampler=optuna.samplers.TPESampler(seed=0))
        data.get(space.build(space.reference_params()["Stride-DS-24"]).frontend)  # features cached, as in a long run
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=12)
        wall = time.perf_counter() - t0
        trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        wps = [TrialRecord.of(t).train_windows_per_second for t in trained]
    return [("rejection latency, median (ms per over-budget candidate)", reject_ms, "ms"),
            ("trials per hour (demo, 200 clips, 6 epochs, incl. rejections)", 12 / wall * 3600, "1/h"),
            ("trained share of those trials", len(trained) / 12, ""),
            ("training windows/s on CPU, median over trained candidates", statistics.median(wps) if wps else 0.0,
             "1/s")]
