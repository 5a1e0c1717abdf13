"""The `studies/` folder: one subfolder per study (journal, checkpoints, outputs), the shared feature
cache and the demo dataset, all relative to where the tool runs; a study whose storage is elsewhere
keeps its outputs beside that storage (`output_dir`). A study name becomes a folder, so it is checked
as a name (`nas.core.names`) wherever it does: it never reaches outside these folders."""
from __future__ import annotations

import sys
from pathlib import Path

from nas.core.names import check_name

STUDIES = Path("studies")
DEFAULT_CACHE = STUDIES / ".cache" / "features"
DEMO = "demo"
DEMO_DATA = STUDIES / "demo_data"


def study_dir(study: str) -> Path:
    return STUDIES / check_name(study, "--study")


def default_storage(study: str) -> str:
    return str(study_dir(study) / "journal.log")


def resolve_data(data: str, seed: int) -> Path:
    """`demo` → the built-in synthetic dataset (generated once under studies/), else a dataset root."""
    if data != DEMO:
        return Path(data)
    if not (DEMO_DATA / "metadata" / "UrbanSound8K.csv").is_file():
        from nas.data import synth

        print(f"generating the demo dataset in {DEMO_DATA} (synthetic, UrbanSound8K layout) ...", file=sys.stderr)
        synth.generate(DEMO_DATA, seed=seed)
    return DEMO_DATA


def output_dir(study: str, storage: str) -> Path:
    """Where a study's checkpoints, tables, plots and artifacts go: beside its storage file.

    A journal or SQLite file in a folder named after the study (the default
    ``studies/<study>/journal.log``) → that folder; a file elsewhere → ``<study>/`` beside it, so
    several studies can share one file; a server URL → ``studies/<study>/`` here."""
    path = storage[len("sqlite:///"):] if storage.startswith("sqlite:///") else storage
    if "://" in path:
        return study_dir(study)
    parent = Path(path).parent
    return parent if parent.name == check_name(study, "--study") else parent / study


def checkpoint_dir(study: str, storage: str) -> Path:
    """Where a study's trained models are: ``checkpoints/`` in its output folder."""
    return output_dir(study, storage) / "checkpoints"
