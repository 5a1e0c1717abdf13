"""Running trials: claim, ask, tell — safely across threads, processes and machines.

`study.optimize` counts trials per process, so N workers on one study overshoot the requested total;
this loop instead claims each new trial under the study-wide lock (`nas.study.claim`) after counting
what the study already holds (`nas.study.trials.counted`). A trial interrupted by Ctrl-C/SIGTERM is
failed without a reason and not counted, so a resumed run redoes that work.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import optuna
from optuna.trial import TrialState

from nas.search.objective import Interrupted
from nas.search.progress import Progress
from nas.study.trials import WORKER, counted, finished


def run_trials(study: optuna.Study, objective, total: int, claim, jobs: int = 1, timeout: float | None = None,
               stop: threading.Event | None = None, progress: Progress | None = None) -> None:
    """Run trials until the study holds `total` counted trials, `timeout` passes or `stop` is set.

    With jobs > 1 the trials run in threads; Ctrl-C sets `stop`, running trials end at their next
    epoch (failed, uncounted) and KeyboardInterrupt is re-raised once every thread has told its trial.
    """
    stop = stop or threading.Event()
    progress = progress or Progress.off()
    progress.start(finished(study))
    deadline = time.monotonic() + timeout if timeout else None

    def loop() -> None:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            with claim:
                if counted(study) >= total:
                    return
                trial = study.ask()
                trial.set_user_attr("worker", WORKER)
            progress.trial_started(trial.number)
            _run_one(study, objective, trial, progress)
            progress.trial_finished(trial.number, finished(study))

    if jobs == 1:
        try:
            loop()
        except KeyboardInterrupt:
            stop.set()
            raise
        return
    threads = [threading.Thread(target=_guarded, args=(loop, stop), name=f"trial-worker-{i}") for i in range(jobs)]
    for t in threads:
        t.start()
    interrupted = False
    while any(t.is_alive() for t in threads):
        try:
            for t in threads:
                t.join(0.2)
        except KeyboardInterrupt:
            interrupted = True
            stop.set()
    if interrupted:
        raise KeyboardInterrupt


def _guarded(loop: Callable[[], None], stop: threading.Event) -> None:
    try:
        loop()
    except KeyboardInterrupt:
        stop.set()
    except BaseException:
        stop.set()  # one broken worker stops the others instead of leaving them spinning
        raise


def _run_one(study: optuna.Study, objective, trial: optuna.Trial, progress: Progress) -> None:
    try:
        values = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except (Interrupted, KeyboardInterrupt):
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=TrialState.FAIL)
        raise KeyboardInterrupt from None
    except Exception as exc:  # the study goes on; the objective stored the reason of its own failures
        if "fail_reason" not in trial.user_attrs:  # e.g. the sampler: counted, so the loop cannot spin on it
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {exc}")
            progress.log(f"trial {trial.number:>4} FAILED     {type(exc).__name__}: {exc}")
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, values)
