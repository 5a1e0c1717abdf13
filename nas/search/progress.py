"""Live progress of a search on the terminal: trials done of the total, each running trial's epoch and
validation accuracy, elapsed time and ETA (tqdm, which Optuna uses too).

Three modes (`choose_mode`):

* ``bars`` (stderr is a terminal and this process is in its foreground): one line for the study
  (`trials 5/24`, elapsed, ETA) and one per `--jobs` slot, redrawn in place every second: the
  running trial's feature computation (`features 120/873 clips  35 clips/s  ETA 00:21`), then its
  epochs (`trial 7  epoch 3/12  val_accuracy 0.512  9.8 s/epoch  (epoch 4: 12 s)`, the running epoch's time
  counting up, so a slow epoch never looks frozen); the one-line-per-trial log is written above them.
* ``lines`` (a terminal, but a background job, e.g. several workers started with `&` in one
  shell): no cursor movement, which would garble when processes share a terminal; one plain line
  per epoch, labelled with the worker (`[host:pid]`), with the same figures, and one every
  `LINE_SECONDS` while features are computed.
* ``off`` (not a terminal: a log file, a pipe, CI): nothing but the one line per trial event.

Counts are the study's (`done` is passed in by the worker loop), so with several processes every
worker's ETA is the study's. The ETA is the mean rate since this process started.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import TextIO

from tqdm import tqdm

MODES = ("auto", "bars", "lines", "off")
REFRESH_SECONDS = 1.0
LINE_SECONDS = 10.0


def choose_mode(requested: str, stream: TextIO | None = None) -> str:
    """`requested` unless it is ``auto``: bars in a foreground terminal, lines in a background one,
    off when `stream` (default stderr) is not a terminal."""
    if requested != "auto":
        return requested
    stream = stream or sys.stderr
    try:
        if not stream.isatty():
            return "off"
        return "bars" if os.tcgetpgrp(stream.fileno()) == os.getpgrp() else "lines"
    except (OSError, ValueError, AttributeError):
        return "off"


def _interval(seconds: float | None) -> str:
    return "?" if seconds is None else tqdm.format_interval(seconds)


@dataclass
class _Slot:
    """One `--jobs` slot's bar and what it shows: `text`, and while an epoch runs (`since` set) that
    epoch's number and its time so far, appended on every redraw."""

    bar: tqdm
    text: str = "  idle"
    since: float | None = None
    running: int = 0

    def describe(self) -> str:
        if self.since is None:
            return self.text
        return f"{self.text}  (epoch {self.running}: {time.monotonic() - self.since:.0f} s)"


class Progress:
    """What the worker loop and the objective report; see the module docstring."""

    def __init__(self, mode: str, total: int, epochs: int, jobs: int = 1, label: str = "",
                 out: TextIO | None = None, err: TextIO | None = None):
        self.mode, self.total, self.epochs, self.label = mode, total, epochs, label
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._done0 = self._done = 0
        self._slots: dict[int, _Slot] = {}
        self._free: list[_Slot] = []
        self._features: dict[int, tuple[float, float]] = {}   # lines mode: trial -> (start, last line)
        self._overall: tqdm | None = None
        self._stop = threading.Event()
        if mode == "bars":
            self._free = [_Slot(tqdm(total=epochs, position=i + 1, leave=False, file=self.err, dynamic_ncols=True,
                                     bar_format="{desc} |{bar:12}|")) for i in range(jobs)]
            for slot in self._free:
                slot.bar.set_description_str(slot.text, refresh=False)
            threading.Thread(target=self._tick, name="progress", daemon=True).start()

    @classmethod
    def off(cls) -> "Progress":
        return cls("off", total=0, epochs=0)

    def start(self, done: int) -> None:
        """The study's finished trials when this process starts (ETA counts from here)."""
        self._done0 = self._done = done
        self._t0 = time.monotonic()
        if self.mode == "bars":  # initial=done: the rate, hence the ETA, counts this run's trials only
            self._overall = tqdm(total=self.total, initial=done, position=0, leave=True, file=self.err, smoothing=0,
                                 dynamic_ncols=True, bar_format="trials {n_fmt}/{total_fmt} |{bar:24}| {elapsed} "
                                 "elapsed, ETA {remaining}")

    def log(self, message: str) -> None:
        """One event line (a trial's outcome); above the bars when they are shown."""
        if self.mode == "bars":
            tqdm.write(message, file=self.out)
        else:
            print(message, file=self.out, flush=True)

    def trial_started(self, number: int) -> None:
        if self.mode != "bars":
            return
        with self._lock:
            slot = self._free.pop(0) if self._free else None
            if slot is None:
                return
            self._slots[number] = slot
        slot.bar.reset(total=self.epochs)
        self._show(slot, f"  trial {number:>4}  pricing, loading features")

    def features(self, number: int, done: int, total: int) -> None:
        """`done` of `total` clips' features computed for trial `number` (once per front-end)."""
        if self.mode == "off":
            return
        now = time.monotonic()
        start, last = self._features.get(number, (now, -LINE_SECONDS))
        finished = done >= total
        rate = done / (now - start) if now > start and done else None
        figures = (f"features {done}/{total} clips  {'?' if rate is None else f'{rate:.0f}'} clips/s  "
                   f"ETA {_interval((total - done) / rate if rate else None)}")
        if self.mode == "lines":
            if finished or now - last >= LINE_SECONDS:
                print(f"[{self.label}] trial {number} {figures} (computed once per front-end)", file=self.out,
                      flush=True)
                last = now
        elif (slot := self._slots.get(number)) is not None:
            slot.bar.total, slot.bar.n = total, done
            self._show(slot, f"  trial {number:>4}  {figures}  (once per front-end)")
        if finished:
            self._features.pop(number, None)
        else:
            self._features[number] = (start, last)

    def training(self, number: int, seed: int = 0, seeds: int = 1) -> None:
        """Trial `number` starts a training run (run `seed` of `seeds`): its first epoch's time counts."""
        slot = self._slots.get(number) if self.mode == "bars" else None
        if slot is None:
            return
        slot.bar.reset(total=self.epochs)
        run = f"  seed {seed + 1}/{seeds}" if seed > 0 else ""   # extra seeds run only near the front
        slot.since, slot.running = time.monotonic(), 1
        self._show(slot, f"  trial {number:>4}  epoch  0/{self.epochs}{run}")

    def epoch(self, number: int, record: dict) -> None:
        """A finished epoch of trial `number` (the training loop's record: epoch, val_acc, seconds)."""
        epoch = record["epoch"] + 1
        if self.mode == "lines":
            print(f"[{self.label}] trial {number} epoch {epoch}/{self.epochs} val_accuracy {record['val_acc']:.3f} · "
                  f"{self._done}/{self.total} trials · {_interval(time.monotonic() - self._t0)} elapsed · "
                  f"ETA {_interval(self.eta())}", file=self.out, flush=True)
            return
        slot = self._slots.get(number)
        if slot is None:
            return
        slot.since, slot.running = (time.monotonic(), epoch + 1) if epoch < self.epochs else (None, 0)
        slot.bar.update(epoch - slot.bar.n)
        self._show(slot, f"  trial {number:>4}  epoch {epoch:>2}/{self.epochs}  val_accuracy {record['val_acc']:.3f}  "
                         f"{record['seconds']:5.1f} s/epoch")

    def trial_finished(self, number: int, done: int) -> None:
        """Trial `number` was told; `done` = the study's finished trials now."""
        self._done = done
        self._features.pop(number, None)
        if self.mode != "bars":
            return
        with self._lock:
            slot = self._slots.pop(number, None)
            if slot is not None:
                self._free.append(slot)
        if slot is not None:
            slot.bar.reset(total=self.epochs)
            slot.since = None
            self._show(slot, "  idle")
        if self._overall is not None:
            self._overall.update(max(0, done - self._overall.n))

    def eta(self) -> float | None:
        """Seconds left at this run's mean rate; None before its first finished trial."""
        finished = self._done - self._done0
        if finished <= 0:
            return None
        return (time.monotonic() - self._t0) * max(0, self.total - self._done) / finished

    def close(self) -> None:
        self._stop.set()
        for slot in [*self._free, *self._slots.values()]:
            slot.bar.close()
        if self._overall is not None:
            self._overall.close()

    @staticmethod
    def _show(slot: _Slot, text: str) -> None:
        slot.text = text
        slot.bar.set_description_str(slot.describe(), refresh=True)

    def _tick(self) -> None:
        """Redraw once a second so elapsed, ETA and the running epoch's time move while it runs."""
        while not self._stop.wait(REFRESH_SECONDS):
            if self._overall is not None and not self._overall.disable:
                self._overall.refresh()
            for slot in list(self._slots.values()):
                if not slot.bar.disable:
                    slot.bar.set_description_str(slot.describe(), refresh=True)
