"""What one search run is asked to do: `python -m nas.search`'s flags as one typed object.

`SearchOptions` is what `nas.search.run.search` takes; the CLI builds it from its flags (field names
are the flags' names), a script or a test builds it directly. `resolved` fills the defaults that
depend on other options (the demo data trains shorter and fewer candidates) and checks the numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from nas.core.errors import UserError
from nas.study.folders import DEFAULT_CACHE, DEMO

DEFAULT_SPACE = "search_spaces/default.yaml"
DEFAULT_MODE = "accuracy"


@dataclass(frozen=True)
class SearchOptions:
    """One search run; None means the default said in each field's comment."""

    budget: str                              # budget YAML
    space: str = DEFAULT_SPACE               # search-space YAML (its training: and search: sections too)
    data: str = DEMO                         # UrbanSound8K root, or the demo dataset
    trials: int | None = None                # distinct candidates the study should hold (24 demo / 200)
    timeout: float | None = None             # stop starting trials after this many seconds
    study: str = "nas"
    storage: str | None = None               # journal file or URL (default studies/<study>/journal.log)
    seed: int = 0
    epochs: int | None = None                # full training (8 demo / the recipe's epochs)
    jobs: int = 1                            # trials in parallel threads of this process
    threads: int | None = None               # torch threads per trial ($OMP_NUM_THREADS, else cores / jobs)
    train_folds: str | None = None           # default: every fold that neither validates nor tests
    val_folds: str = "9"
    test_folds: str = "10"
    cache: str | Path = DEFAULT_CACHE
    teacher: str | None = None               # default: the space file's training.distillation.teacher
    export: bool = False                     # export the Pareto front at the end
    progress: str = "auto"
    mode: str = DEFAULT_MODE                 # accuracy (most accurate within the budget) or pareto

    @property
    def demo(self) -> bool:
        return self.data == DEMO

    def resolved(self, recipe_epochs: int, threads: int) -> "SearchOptions":
        """Defaults that depend on other options filled in (`threads`: the default thread count), the
        counts checked: one line naming the flag when one is not a positive integer."""
        done = replace(self, trials=self.trials if self.trials is not None else (24 if self.demo else 200),
                       epochs=self.epochs if self.epochs is not None else (8 if self.demo else recipe_epochs),
                       threads=self.threads if self.threads is not None else threads)
        for flag, value in (("--trials", done.trials), ("--epochs", done.epochs), ("--jobs", done.jobs),
                            ("--threads", done.threads)):
            if value < 1:
                raise UserError(f"{flag}: expected a positive integer, got {value}")
        return done
