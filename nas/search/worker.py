"""Running trials: claim, ask, tell — safely across threads, processes and machines.

`study.optimize` counts trials per process, so N workers on one study overshoot the requested total;
this loop instead claims each new trial under a study-wide lock (an flock beside a journal or SQLite
file, a PostgreSQL advisory lock for a server) after counting what the study already holds. A trial
interrupted by Ctrl-C/SIGTERM or left RUNNING by a killed process is failed without a reason and not
counted, so a resumed run redoes that work.
"""
from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

from nas.locks import FileLock, pid_alive
from nas.objective import Interrupted

WORKER = f"{socket.gethostname()}:{os.getpid()}"


def counted(study: optuna.Study) -> int:
    """Trials that count towards --trials: finished ones, running ones, and real failures."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
            n += 1
        elif t.state == TrialState.FAIL and "fail_reason" in t.user_attrs:
            n += 1
    return n


def close_stale_trials(study: optuna.Study, stale_after: float = 3600.0) -> int:
    """Fail RUNNING trials whose worker is gone: on this host, when its process no longer exists;
    elsewhere, when it has not reported an epoch for `stale_after` seconds."""
    host = socket.gethostname()
    closed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w_host, _, w_pid = t.user_attrs.get("worker", "").rpartition(":")
        if w_host == host and w_pid.isdigit():
            stale = not pid_alive(int(w_pid))
        else:
            last = t.user_attrs.get("heartbeat") or (t.datetime_start.timestamp() if t.datetime_start else 0)
            stale = time.time() - last > stale_after
        if stale:
            study.tell(t.number, state=TrialState.FAIL)
            closed += 1
    return closed


class PostgresClaim:
    """Study-wide claim lock on a PostgreSQL server: a session advisory lock keyed by the study."""

    def __init__(self, url: str, study: str):
        import sqlalchemy

        self._engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self._key = int.from_bytes(hashlib.sha256(f"nas-claim:{study}".encode()).digest()[:8], "big", signed=True)
        self._threads = threading.Lock()

    def __enter__(self) -> "PostgresClaim":
        import sqlalchemy

        self._threads.acquire()
        try:
            self._conn = self._engine.connect()
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        import sqlalchemy

        try:
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            self._conn.close()
        finally:
            self._threads.release()


def claim_for(storage: str, study: str):
    """The study-wide lock under which a worker counts trials and claims a new one."""
    if storage.startswith(("postgresql", "postgres://")):
        return PostgresClaim(storage, study)
    if storage.startswith("sqlite:///"):
        return FileLock(storage[len("sqlite:///"):] + f".{study}.claim")
    if "://" in storage:  # MySQL, Redis, ...: serialised on this host; other hosts may overshoot by a few
        return FileLock(Path(tempfile.gettempdir()) / f"nas-{os.getuid()}-{hashlib.sha256(storage.encode()).hexdigest()[:16]}.claim")
    return FileLock(Path(storage).resolve().with_suffix(".claim"))


def run_trials(study: optuna.Study, objective, total: int, claim, jobs: int = 1, timeout: float | None = None,
               stop: threading.Event | None = None) -> None:
    """Run trials until the study holds `total` counted trials, `timeout` passes or `stop` is set.

    With jobs > 1 the trials run in threads; Ctrl-C sets `stop`, running trials end at their next
    epoch (failed, uncounted) and KeyboardInterrupt is re-raised once every thread has told its trial.
    """
    stop = stop or threading.Event()
    deadline = time.monotonic() + timeout if timeout else None

    def loop() -> None:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            with claim:
                if counted(study) >= total:
                    return
                trial = study.ask()
                trial.set_user_attr("worker", WORKER)
            _run_one(study, objective, trial)

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


def _run_one(study: optuna.Study, objective, trial: optuna.Trial) -> None:
    try:
        values = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except (Interrupted, KeyboardInterrupt):
        trial.set_user_attr("interrupted", True)
        study.tell(trial, state=TrialState.FAIL)
        raise KeyboardInterrupt from None
    except Exception:  # the objective stored the reason; the study goes on
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, values)
