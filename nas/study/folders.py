"""The `studies/` folder: one subfolder per study (journal, checkpoints, outputs), the shared feature
cache and the demo dataset, all relative to where the tool runs."""
from __future__ import annotations

import sys
from pathlib import Path

STUDIES = Path("studies")
DEFAULT_CACHE = STUDIES / ".cache" / "features"
DEMO = "demo"
DEMO_DATA = STUDIES / "demo_data"


def study_dir(study: str) -> Path:
    return STUDIES / study


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


def checkpoint_dir(study: str, storage: str) -> Path:
    """Where a study's trained models are: ``checkpoints/`` beside a journal file that has one, else
    ``studies/<study>/checkpoints``."""
    if "://" not in storage and (Path(storage).parent / "checkpoints").is_dir():
        return Path(storage).parent / "checkpoints"
    return study_dir(study) / "checkpoints"
