"""Live progress: bars in a foreground terminal, plain labelled lines in a background one, nothing but
the one-line-per-trial log when not a terminal; and a real search in a pseudo-terminal."""
from __future__ import annotations

import fcntl
import io
import os
import re
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

from nas.search import progress as P

ROOT = Path(__file__).resolve().parents[1]


class FakeTTY(io.StringIO):
    def isatty(self):
        return True

    def fileno(self):
        return 2


def test_auto_mode_follows_the_terminal(monkeypatch):
    assert P.choose_mode("auto", io.StringIO()) == "off"
    monkeypatch.setattr(os, "getpgrp", lambda: 42)
    monkeypatch.setattr(os, "tcgetpgrp", lambda fd: 42)
    assert P.choose_mode("auto", FakeTTY()) == "bars"
    monkeypatch.setattr(os, "tcgetpgrp", lambda fd: 7)            # a background job of that terminal
    assert P.choose_mode("auto", FakeTTY()) == "lines"
    for mode in ("bars", "lines", "off"):
        assert P.choose_mode(mode, io.StringIO()) == mode


def feed(progress: P.Progress) -> None:
    progress.start(done=1)
    progress.trial_started(7)
    for epoch, acc in enumerate((0.25, 0.5)):
        progress.epoch(7, {"epoch": epoch, "val_acc": acc, "seconds": 1.5})
    progress.log("trial    7 trained    acc 0.500")
    progress.trial_finished(7, done=2)
    progress.close()


def test_bars_show_trials_epoch_accuracy_and_eta():
    out, err = io.StringIO(), io.StringIO()
    feed(P.Progress("bars", total=4, epochs=12, jobs=2, label="host:1", out=out, err=err))
    screen = err.getvalue()
    assert re.search(r"trials 2/4 \|.*\| \d\d:\d\d elapsed, ETA \d\d:\d\d", screen), screen
    assert re.search(r"trial    7  epoch  2/12  val_accuracy 0\.500 +1\.5 s/epoch  \(epoch 3: \d+ s\) \|", screen), screen
    assert ", val" not in screen
    assert out.getvalue() == "trial    7 trained    acc 0.500\n"


def test_lines_are_one_labelled_line_per_epoch():
    out, err = io.StringIO(), io.StringIO()
    feed(P.Progress("lines", total=4, epochs=12, label="host:123", out=out, err=err))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[host:123] trial 7 epoch 1/12 val_accuracy 0.250 · 1/4 trials ·")
    assert "ETA ?" in lines[0] and lines[1].startswith("[host:123] trial 7 epoch 2/12 val_accuracy 0.500")
    assert lines[2] == "trial    7 trained    acc 0.500" and err.getvalue() == "" and "\r" not in out.getvalue()


def test_off_prints_only_the_event_log():
    out, err = io.StringIO(), io.StringIO()
    feed(P.Progress("off", total=4, epochs=12, out=out, err=err))
    assert out.getvalue() == "trial    7 trained    acc 0.500\n" and err.getvalue() == ""


def test_eta_is_the_mean_rate_of_this_run():
    p = P.Progress("off", total=10, epochs=1)
    p.start(done=4)
    assert p.eta() is None
    p._t0 -= 30.0                                                 # 30 s in, 2 of the 6 remaining done
    p.trial_finished(0, done=6)
    assert 59.0 < p.eta() < 61.5


def run_in_pty(cmd: list[str], cwd: Path, timeout: float) -> tuple[int, str]:
    """Run `cmd` with a pseudo-terminal as its controlling terminal (so it is the foreground job)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, b"\x28\x00\xa0\x00\x00\x00\x00\x00")  # 40 rows x 160 columns
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([master], [], [], 1.0)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:                                       # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.kill() if proc.poll() is None else None
    os.close(master)
    return proc.wait(), b"".join(chunks).decode(errors="replace")


def test_search_in_a_terminal_draws_bars_and_without_one_stays_quiet(tmp_path, demo_root):
    cmd = [sys.executable, "-m", "nas.search", "--budget", str(ROOT / "budgets/stm32l476.yaml"), "--space",
           str(ROOT / "search_spaces/default.yaml"), "--data", str(demo_root), "--cache", str(tmp_path / "cache"),
           "--trials", "3", "--epochs", "2", "--study", "tty"]
    rc, screen = run_in_pty(cmd, tmp_path, timeout=600)
    assert rc == 0, screen
    assert re.search(r"trials [0-3]/3 \|", screen) and re.search(r"trial +\d+  epoch +[12]/2", screen), screen
    assert "val_accuracy 0." in screen and "elapsed, ETA" in screen and "Pareto front" in screen
    piped = subprocess.run([*cmd[:-1], "piped"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert "\r" not in piped.stdout + piped.stderr and "epoch" not in piped.stderr
    events = [line for line in piped.stdout.splitlines() if line.startswith("trial ") and line[6:10].strip().isdigit()]
    assert len(events) == 3                                       # one line per trial event


def test_feature_computation_shows_clips_per_second_and_eta(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(P.time, "monotonic", lambda: clock[0])
    out, err = io.StringIO(), io.StringIO()
    bars = P.Progress("bars", total=4, epochs=8, out=out, err=err)
    bars.start(done=0)
    bars.trial_started(3)
    bars.features(3, 0, 900)
    clock[0] += 10.0
    bars.features(3, 300, 900)                     # 30 clips/s, 600 to go: 20 s
    assert re.search(r"trial    3  features 300/900 clips  30 clips/s  ETA 00:20", err.getvalue()), err.getvalue()
    bars.close()
    out = io.StringIO()
    lines = P.Progress("lines", total=4, epochs=8, label="h:1", out=out)
    for done in range(0, 901, 32):                # every batch, 1 s apart: one line per LINE_SECONDS
        lines.features(5, min(done, 900), 900)
        clock[0] += 1.0
    lines.features(5, 900, 900)
    printed = out.getvalue().splitlines()
    assert 2 <= len(printed) <= 900 // 32 // int(P.LINE_SECONDS) + 3, printed
    assert printed[-1].startswith("[h:1] trial 5 features 900/900 clips")


def test_the_running_epoch_counts_up_between_epochs(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(P.time, "monotonic", lambda: clock[0])
    err = io.StringIO()
    bars = P.Progress("bars", total=4, epochs=8, out=io.StringIO(), err=err)
    bars.trial_started(7)
    bars.training(7)
    clock[0] += 41.0
    slot = bars._slots[7]
    assert slot.describe().endswith("(epoch 1: 41 s)")
    bars.epoch(7, {"epoch": 0, "val_acc": 0.5, "seconds": 41.0})
    clock[0] += 3.0
    assert re.fullmatch(r"  trial    7  epoch  1/8  val_accuracy 0\.500  +41\.0 s/epoch  \(epoch 2: 3 s\)", slot.describe())
    bars.training(7, seed=1, seeds=3)
    assert "seed 2/3" in slot.describe()
    bars.close()
