"""Real processes on real files for the fault tests: the CLI commands, a small search space whose
trials train in about a second, small real disks (tmpfs) and read-only folders, and reading a study
the way a user would, without repairing or creating anything."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

ROOT = Path(__file__).resolve().parents[1]
BUDGET = ROOT / "budgets" / "stm32l476.yaml"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

_REF = {"sample_rate": 8000, "n_fft": 256, "hop_ratio": 0.5, "n_mels": 20, "frames": 16, "overlap": 0.0,
        "conv_type": "standard", "downsampling": "strided", "blocks": 2, "kernel": 3, "base_filters": 4,
        "growth": 1.0, "max_filters": 0, "head": "global_avg", "dense_units": 0}
TINY_SPACE = {
    "name": "tiny", "description": "fault tests: one front-end, networks of a few hundred parameters",
    "num_classes": 10,
    "frontend": {"sample_rate": [8000], "n_fft": [256], "hop_ratio": [0.5], "n_mels": [20], "frames": [16, 24],
                 "overlap": [0.0, 0.5]},
    "network": {"conv_type": ["standard", "depthwise_separable"], "downsampling": ["strided"], "blocks": [2],
                "kernel": [3], "base_filters": [4, 8], "growth": [1.0], "max_filters": [0], "head": ["global_avg"],
                "dense_units": [0]},
    "references": [{"name": "Tiny-A", "params": _REF},
                   {"name": "Tiny-B", "params": {**_REF, "frames": 24, "overlap": 0.5,
                                                 "conv_type": "depthwise_separable", "base_filters": 8}}],
    "search": {"seeds": 1},   # one run per trial: fault tests kill and count trials, not seeds
}
REFERENCES = ("Tiny-A", "Tiny-B")


def tiny_space(folder: Path, **changes) -> Path:
    """The tiny space as a file in `folder` (top-level keys replaced by `changes`)."""
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY_SPACE, **changes}, sort_keys=False))
    return path


def search_cmd(cwd: Path, data: Path, *extra: str, space: Path | None = None, budget: Path = BUDGET,
               cache: Path | None = None, epochs: int = 1) -> list[str]:
    return [sys.executable, "-m", "nas.search", "--budget", str(budget), "--space", str(space or cwd / "tiny.yaml"),
            "--data", str(data), "--cache", str(cache or cwd / "cache"), "--epochs", str(epochs), *extra]


def run(cmd: list[str], cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    return proc


def one_error_line(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single `error:` line of a failed command: exit `code`, no traceback, nothing after it."""
    lines = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert proc.returncode == code and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    return errors[0]


def journal_path(cwd: Path, name: str) -> Path:
    return cwd / "studies" / name / "journal.log"


def read_study(journal: Path, name: str) -> optuna.Study:
    """The study as it is on disk; reading repairs nothing (plain Optuna, no lock files)."""
    class NoLock:
        def acquire(self) -> bool:
            return True

        def release(self) -> None:
            pass

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal), lock_obj=NoLock()))
    return optuna.load_study(study_name=name, storage=storage)


def completed(study: optuna.Study) -> dict[int, tuple]:
    """Trial number → (values, reference) of every completed trial."""
    return {t.number: (tuple(t.values), t.user_attrs.get("reference")) for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.COMPLETE}


def counted_trials(study: optuna.Study) -> list:
    """Trials that count towards --trials (a proposal replaced by a fresh point does not)."""
    return [t for t in study.get_trials(deepcopy=False)
            if (t.state in (TrialState.COMPLETE, TrialState.PRUNED) and "replaced_by" not in t.user_attrs)
            or (t.state == TrialState.FAIL and "fail_reason" in t.user_attrs)]


def journal_is_whole(journal: Path) -> bool:
    """Every line of the journal is a complete JSON record."""
    raw = journal.read_bytes()
    if raw and not raw.endswith(b"\n"):
        return False
    for line in raw.splitlines():
        json.loads(line)
    return True


# -- real small disks and read-only folders (root only) ---------------------------------------------

def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


def mount_problem() -> str | None:
    """Why tmpfs mounts cannot be used here, or None."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return "needs root and mount(8) for a real small disk (tmpfs) and a read-only mount"
    probe = Path(tempfile.mkdtemp(prefix="nas-mount-probe-"))
    try:
        _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
        subprocess.run(["umount", str(probe)], check=True, capture_output=True)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot mount a tmpfs here ({getattr(exc, 'stderr', '') or exc})".strip()
    finally:
        probe.rmdir()
    return None


MOUNT_PROBLEM = mount_problem()
needs_mount = pytest.mark.skipif(MOUNT_PROBLEM is not None, reason=str(MOUNT_PROBLEM))


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "16m"):
    """A real disk of `size` mounted on `folder` (created), unmounted afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder))
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount(folder: Path, options: str) -> None:
    _mount("-o", f"remount,{options}", str(folder))


def fill(folder: Path) -> Path:
    """Write a ballast file in `folder` until its disk is full; returns it."""
    ballast = folder / "ballast"
    block = b"\0" * (1 << 16)
    with open(ballast, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError:
            pass
    try:  # the last partial page too
        with open(ballast, "ab", buffering=0) as fh:
            while True:
                fh.write(b"\0" * 512)
    except OSError:
        pass
    return ballast
