"""Property (issue 12): whatever moment a search is SIGKILLed at, and however often, rerunning the
same command loses no completed trial, duplicates none, ends at exactly the requested total and
holds every reference model.

Each example is one study and a random sequence of kills: start the search, SIGKILL it after a random
delay (during start-up, study creation, reference queueing, sampling, training, a journal write or
after it finished), change nothing, and start it again; the invariants are checked after every kill
and after the final, uninterrupted run.
"""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from _proc import ENV, REFERENCES, completed, counted_trials, journal_path, ok, read_study, run, search_cmd, tiny_space

TOTAL = 3
KILL_WINDOW_S = 10.0      # about one whole run on a loaded 2-core machine: kills land anywhere in it


def check(cwd: Path, seen: dict, final: bool) -> None:
    """The invariants; `seen` holds every trial completed so far (number → values, reference)."""
    journal = journal_path(cwd, "p")
    if not journal.exists():
        assert not seen and not final
        return
    study = read_study(journal, "p")
    now = completed(study)
    assert all(now.get(n) == v for n, v in seen.items()), "a completed trial was lost or changed"
    seen.update(now)
    counted = counted_trials(study)
    assert len(counted) <= TOTAL
    refs = [t.user_attrs["reference"] for t in counted if t.user_attrs.get("reference")]
    assert len(refs) == len(set(refs)), f"a reference was trained twice: {refs}"
    redos = [t.user_attrs["redo_of"] for t in study.get_trials() if "redo_of" in t.user_attrs]
    assert len(redos) == len(set(redos)), "an unfinished trial was queued again twice"
    assert not {t.number for t in counted} & set(redos), "a finished trial was queued again"
    if final:
        assert len(counted) == TOTAL
        assert sorted(refs) == sorted(REFERENCES)
        assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]


@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(delays=st.lists(st.floats(0.0, KILL_WINDOW_S), min_size=1, max_size=2))
def test_random_sigkills_never_lose_or_duplicate_trials(tmp_path_factory, demo_root, delays):
    cwd = tmp_path_factory.mktemp("kills")
    tiny_space(cwd)
    cmd = search_cmd(cwd, demo_root, "--trials", str(TOTAL), "--study", "p")
    seen: dict = {}
    for delay in delays:
        proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        check(cwd, seen, final=False)
    ok(run(cmd, cwd))
    check(cwd, seen, final=True)
