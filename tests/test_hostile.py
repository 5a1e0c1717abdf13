"""Nothing lost, nothing silent, nothing outside its folder (issue 22): seven more families of hostile
inputs, each met by one mechanism and proven here on real processes and real files.

1. cleanup removes only what the tool made (`nas.core.owned`: export and feature-cache folders)
2. every append-only file is whole record by record (`nas.core.appendlog`: journal, evaluation.jsonl)
3. a name that becomes a path is a name (`nas.core.names`, the `--study` of every verb)
4. storage and file-system faults are one line saying what survived (`nas.core.errors.fault_line`,
   the database faults the study storage registers)
5. every numeric flag is checked before any work (`nas.core.flags`, the parsers of every verb)
6. right diagnoses: duplicate YAML keys, a non-UTF-8 dataset path, the flag named, the destination of a
   full disk (`nas.core.config`, `nas.data.urbansound`, `FoldSplit.from_flags`, `fault_line`)
7. a budget nothing fits stops the search with the closest candidate (`nas.search.worker.Rejections`)
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from _proc import (BUDGET, ENV, ROOT, completed, counted_trials, fill, needs_mount, ok, one_error_line, read_study,
                   run, search_cmd, tiny_space, tmpfs)
from nas.core import owned
from nas.core.errors import UserError
from nas.core.names import check_name
from nas.study.folders import output_dir, study_dir

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
PY = sys.executable


def export_cmd(*extra: str) -> list[str]:
    return [PY, "-m", "nas.export", "--study", "s", "--trial", "0", "--no-verify", *extra]


def tree(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder`: file contents, link targets, folders."""
    out: dict[str, bytes | str] = {}
    for p in sorted(folder.rglob("*")):
        key = str(p.relative_to(folder))
        out[key] = f"-> {os.readlink(p)}" if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
    return out


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# -- 1. cleanup removes only what the tool made ----------------------------------------------------

def test_export_removes_only_the_folders_an_export_made_and_never_replaces_a_link(work, tmp_path):
    out = work / "export" / "s"
    ok(run(export_cmd("--out", str(tmp_path / "elsewhere")), work))   # an export the user links to
    out.mkdir(parents=True)
    pid = dead_pid()
    users = {".old-trial_0.mine": "model.c", f".tmp-mine-{socket.gethostname()}-{pid}-abcd1234": "notes.txt",
             f".tmp-trial_0-{owned.HOST}-{pid}-abcd1234": "notes.txt"}   # named like the tool's, not made by it
    for folder, file in users.items():
        (out / folder).mkdir()
        (out / folder / file).write_text("mine")
    (out / "trial_0").symlink_to(tmp_path / "elsewhere" / "trial_0")
    dangling = work / "other" / "trial_0"
    dangling.parent.mkdir()
    dangling.symlink_to(tmp_path / "nowhere")
    code = "import sys; from pathlib import Path; from nas.core import owned; owned.make(Path(sys.argv[1]), 'trial_0')"
    ok(subprocess.run([PY, "-c", code, str(out)], env=ENV, capture_output=True, text=True))  # a killed export's
    killed = next(p for p in out.glob(f".tmp-trial_0-{owned.HOST}-*") if (p / owned.RECORD).exists())
    linked, before = tree(tmp_path / "elsewhere"), tree(out)
    line = one_error_line(run(export_cmd(), work))
    assert "trial_0: is a symbolic link" in line and "--force" in line, line
    line = one_error_line(run(export_cmd("--out", str(dangling.parent)), work))
    assert f"{dangling}: is a symbolic link" in line, line
    assert dangling.is_symlink() and sorted(dangling.parent.iterdir()) == [dangling]
    assert tree(out) == before and tree(tmp_path / "elsewhere") == linked   # nothing moved, nothing removed
    ok(run(export_cmd("--force"), work))
    assert (out / "trial_0").is_dir() and not (out / "trial_0").is_symlink() and (out / "trial_0" / "model.c").is_file()
    assert tree(tmp_path / "elsewhere") == linked                       # what the link pointed to is untouched
    for folder, file in users.items():
        assert (out / folder / file).read_text() == "mine", folder
    assert not killed.exists()                                          # what a dead export made is gone
    assert not (out / "trial_0" / owned.RECORD).exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([*users, "trial_0"])


# -- 2. append-only files are whole record by record -----------------------------------------------

def test_a_torn_evaluation_record_is_set_aside_and_never_glued(work):
    """A kill in the middle of an evaluation.jsonl append; the next run appends after whole records."""
    cmd = [PY, "-m", "nas.evaluate", "--study", "s", "--trials", "0", "--epochs", "1", "--seeds"]
    ok(run([*cmd, "1"], work))
    log = work / "studies" / "s" / "evaluation.jsonl"
    first = log.read_bytes()
    assert first.count(b"\n") == 1
    with open(log, "ab") as fh:
        fh.write(first[: len(first) // 2])
    proc = ok(run([*cmd, "2"], work))
    assert "its last record was cut short" in proc.stderr and "evaluation.jsonl" in proc.stderr
    assert Path(f"{log}.torn").read_bytes() == first[: len(first) // 2] + b"\n"
    raw = log.read_bytes()
    assert raw.startswith(first) and raw.endswith(b"\n")                 # seed 0 kept, not retrained
    assert [json.loads(line)["seed"] for line in raw.splitlines()] == [0, 1]
    assert "seed 0:" not in proc.stdout and "seed 1:" in proc.stdout
    ok(run([*cmd, "2"], work))
    assert log.read_bytes() == raw                                     # nothing left to redo


def test_every_append_in_the_package_goes_through_appendlog():
    """The mechanism covers the family only if no other code appends to a file."""
    mode = re.compile(r"""open\([^)]*["'](a|ab|a\+|at|ab\+)["']|mode\s*=\s*["']a|O_APPEND""")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "nas").rglob("*.py"))
                 if p != ROOT / "nas" / "core" / "appendlog.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1) if mode.search(line)]
    assert offenders == []


# -- 3. a name that becomes a path is a name -------------------------------------------------------

BAD_NAMES = ["../../escaped", "", "..", ".hidden", "a/b", "-", "a b", b"caf\xe9"]


@pytest.mark.parametrize("name", BAD_NAMES + ["ABS"], ids=repr)
def test_a_study_name_that_is_not_a_name_is_refused_by_every_verb_and_nothing_is_written(tmp_path, demo_root, name):
    cwd = tmp_path / "a" / "b"
    cwd.mkdir(parents=True)
    tiny_space(cwd)
    name = str(tmp_path / "abs") if name == "ABS" else name
    verbs = [search_cmd(cwd, demo_root, "--trials", "2", "--study", name),
             [PY, "-m", "nas.export", "--study", name],
             [PY, "-m", "nas.evaluate", "--study", name],
             [PY, "-m", "nas.cost", "--study", name, "--trial", "0"]]
    for cmd in verbs:
        line = one_error_line(subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120))
        assert line.startswith("error: --study: ") and "expected a name" in line, line
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "tiny.yaml"]


def test_names_with_nul_or_separators_never_become_paths():
    for bad in ("a\x00b", "x/..", "/", "..", "", "a\\b", "caf\udce9", "n" * 101):
        with pytest.raises(UserError, match="expected a name"):
            check_name(bad, "--study")
        with pytest.raises(UserError):
            study_dir(bad)
        with pytest.raises(UserError):
            output_dir(bad, "elsewhere/journal.log")
    assert study_dir("Étude-2.b_1") == Path("studies/Étude-2.b_1")


# -- 4. storage and file-system faults: one line, what survived ------------------------------------

def _pg_study(storage, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # not created yet
        return None


def test_a_postgresql_server_stopped_during_a_search_is_one_line_and_loses_nothing(tmp_path, demo_root, postgres):
    tiny_space(tmp_path)
    cmd = search_cmd(tmp_path, demo_root, "--trials", "8", "--study", "pgstop", "--storage", postgres.url, epochs=6)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    storage, deadline = optuna.storages.RDBStorage(postgres.url), time.time() + 300
    while time.time() < deadline:           # stop the server with one trial done and one training
        assert proc.poll() is None, proc.communicate()
        study = _pg_study(storage, "pgstop")
        if study is not None and completed(study) and any(
                t.state == TrialState.RUNNING and t.user_attrs.get("curve") for t in study.get_trials()):
            break
        time.sleep(0.2)
    storage.engine.dispose()
    postgres.stop()
    try:
        out, err = proc.communicate(timeout=120)
        line = one_error_line(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    finally:
        postgres.start()
    assert line.startswith("error: the study storage failed (") and "every trial it recorded before is kept" in line
    before = completed(_pg_study(postgres.url, "pgstop"))
    assert before
    ok(run(cmd, tmp_path))
    study = _pg_study(postgres.url, "pgstop")
    assert all(completed(study).get(n) == v for n, v in before.items()) and len(counted_trials(study)) == 8
    assert not [t for t in study.get_trials() if t.state == TrialState.RUNNING]


def test_export_to_a_path_taken_by_a_file_is_one_line(work):
    afile = work / "afile"
    afile.write_text("mine")
    assert one_error_line(run(export_cmd("--out", str(afile)), work)) == \
        f"error: --out {afile}: exists and is not a folder (nothing was written)"
    line = one_error_line(run(export_cmd("--out", str(afile / "sub")), work))
    assert f"{afile / 'sub'}: Not a directory (a part of the path is a file" in line, line
    assert afile.read_text() == "mine" and not (work / "export").exists()


# -- 5. numeric flags, before any work, in every verb ----------------------------------------------

VERB_FLAGS = [
    (["nas.search", "--budget", str(BUDGET)], "--timeout", ["-5", "nan", "inf", "0"]),
    (["nas.search", "--budget", str(BUDGET)], "--seed", ["-1", "4294967296", "1.5"]),
    (["nas.search", "--budget", str(BUDGET)], "--trials", ["-3", "0", "1e9"]),
    (["nas.search", "--budget", str(BUDGET)], "--epochs", ["0"]),
    (["nas.search", "--budget", str(BUDGET)], "--threads", ["-1"]),
    (["nas.evaluate", "--study", "s"], "--seeds", ["0"]),
    (["nas.evaluate", "--study", "s"], "--epochs", ["-2"]),
    (["nas.evaluate", "--study", "s"], "--seed", ["-1"]),
    (["nas.export", "--study", "s"], "--trial", ["-1"]),
    (["nas.export", "--study", "s"], "--calibration-windows", ["0", "nan"]),
    (["nas.cost", "--study", "s"], "--trial", ["-1"]),
    (["nas.data.synth", "--out", "d"], "--clips-per-class", ["0"]),
    (["nas.data.synth", "--out", "d"], "--seed", ["-7"]),
]


@pytest.mark.parametrize("verb,flag,values", VERB_FLAGS, ids=[f"{v[0]} {f}" for v, f, _ in VERB_FLAGS])
def test_a_nonsense_number_is_one_line_naming_the_flag_before_any_work(tmp_path, verb, flag, values):
    for value in values:
        proc = subprocess.run([PY, "-m", *verb, f"{flag}={value}"], cwd=tmp_path, env=ENV, capture_output=True,
                              text=True, timeout=120)
        assert one_error_line(proc).startswith(f"error: {flag}: expected "), (value, proc.stderr)
        assert list(tmp_path.iterdir()) == [], value                       # nothing written


# -- 6. right diagnoses ----------------------------------------------------------------------------

def _duplicate(text: str, key: str, block: str) -> str:
    """`text` with a second `key:` block (`block`) before its first one."""
    return re.sub(rf"^{key}:", f"{key}:\n{block}{key}:", text, count=1, flags=re.M)


def test_a_key_given_twice_in_any_yaml_is_one_line_naming_it(tmp_path):
    budget = tmp_path / "budget.yaml"
    budget.write_text(_duplicate(BUDGET.read_text(), "limits", "  ram_bytes: 1\n"))
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: other\n" + (ROOT / "specs/thesis/stride-ds-24.yaml").read_text())
    space = tiny_space(tmp_path)
    space.write_text(space.read_text() + "num_classes: 10\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(_duplicate(space.read_text().rsplit("num_classes: 10\n", 1)[0], "search", "  seeds: 2\n"))
    good_spec = ROOT / "specs/thesis/stride-ds-24.yaml"
    cases = [([PY, "-m", "nas.cost", "--budget", str(budget), "--arch", str(good_spec)], budget, "limits"),
             ([PY, "-m", "nas.cost", "--budget", str(BUDGET), "--arch", str(spec)], spec, "name"),
             (search_cmd(tmp_path, tmp_path / "nodata", "--space", str(space)), space, "num_classes"),
             (search_cmd(tmp_path, tmp_path / "nodata", "--space", str(recipe)), recipe, "search")]
    for cmd, path, key in cases:
        line = one_error_line(run(cmd, tmp_path))
        assert line.startswith(f"error: {path}: invalid YAML at line ") and f"duplicate key '{key}' (first at line" \
            in line, line
    assert not (tmp_path / "studies").exists()


def test_a_dataset_under_a_non_utf8_path_works(tmp_path, demo_root):
    data = os.fsencode(tmp_path) + b"/caf\xe9-\xff"
    shutil.copytree(os.fsencode(demo_root), data)
    tiny_space(tmp_path)
    cmd = [os.fsencode(a) for a in search_cmd(tmp_path, Path(os.fsdecode(data)), "--trials", "2", "--study", "u")]
    ok(subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600))
    assert len(counted_trials(read_study(tmp_path / "studies" / "u" / "journal.log", "u"))) == 2


@pytest.mark.parametrize("extra,message", [
    (["--seed", "-1"], "error: --seed: expected a seed from 0 to 2147483647, got -1"),
    (["--train-folds", ""], "error: --train-folds: expected at least one fold number 1..10 (e.g. 1,2), got ''"),
    (["--train-folds", "1,9"], "error: --train-folds and --val-folds: fold(s) [9] are in both train and val"),
])
def test_a_bad_flag_is_blamed_on_the_flag_and_writes_nothing(tmp_path, demo_root, extra, message):
    tiny_space(tmp_path)
    assert one_error_line(run(search_cmd(tmp_path, demo_root, "--study", "x", *extra), tmp_path)) == message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]


@needs_mount
def test_a_full_disk_during_export_names_the_destination(work):
    """The disk fills while the export copies the package's portable kernels into the new folder."""
    ok(run(export_cmd("--out", str(work / "sizes")), work))
    folder = work / "sizes" / "trial_0"
    page = 4096
    before_copy = sum(-(-p.stat().st_size // page) for p in folder.iterdir()
                      if p.is_file() and p.name not in ("README.md", "report.json", ".nas-export.json"))
    disk = work / "disk"
    with tmpfs(disk, "4m"):
        ballast = fill(disk)
        os.truncate(ballast, ballast.stat().st_size - (before_copy + 4) * page)   # room for all but the kernels
        line = one_error_line(run(export_cmd("--out", str(disk)), work))
        assert "No space left on device" in line and f"{disk}/.tmp-trial_0-" in line, line
        assert "cmsisnn_portable" in line and str(ROOT / "nas") not in line, line
        ballast.unlink()
        assert [p.name for p in disk.iterdir()] == []                     # the partial folder was removed
        ok(run(export_cmd("--out", str(disk)), work))
        assert (disk / "trial_0" / "model.c").is_file()


# -- 7. a budget nothing fits ----------------------------------------------------------------------

@pytest.mark.parametrize("trials,stops_at", [(200, 50), (7, 7)])
def test_a_budget_nothing_fits_stops_with_the_closest_candidate(tmp_path, demo_root, trials, stops_at):
    tight = tmp_path / "tight.yaml"
    tight.write_text(BUDGET.read_text().replace("ram_bytes: 65536", "ram_bytes: 3000"))
    tiny_space(tmp_path)
    proc = run(search_cmd(tmp_path, demo_root, "--trials", str(trials), "--study", "t", budget=tight), tmp_path)
    line = one_error_line(proc, code=1)
    assert line.startswith(f"error: not one of {stops_at} candidates fits the budget: the closest, trial ") and \
        "is over budget: RAM " in line and "> 3,000 B (+" in line and "raise its limits" in line, line
    study = read_study(tmp_path / "studies" / "t" / "journal.log", "t")
    assert len(counted_trials(study)) == stops_at
    closest = min(counted_trials(study), key=lambda t: max(t.constraints.values()))
    assert f"trial {closest.number}, is {closest.user_attrs['reject_reason']}." in line
    again = one_error_line(run(search_cmd(tmp_path, demo_root, "--trials", str(trials), "--study", "t",
                                          budget=tight), tmp_path), code=1)
    assert again.startswith(f"error: not one of {stops_at} candidates")  # a rerun spends nothing more
    assert len(counted_trials(read_study(tmp_path / "studies" / "t" / "journal.log", "t"))) == stops_at
