"""A study's files as `optuna.artifacts`, so a user opens them from optuna-dashboard.

The store is a `FileSystemArtifactStore` in `<study folder>/artifacts` (`nas.study.folders.output_dir`);
serve it with ``optuna-dashboard <storage> --artifact-dir <study folder>/artifacts``. Workers on
other machines need that folder on a shared file system for the dashboard to see their files.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact

ARTIFACTS = "artifacts"
EXPORT_FILES = ("report.json", "model.h", "spec.yaml")


def artifact_store(folder: Path) -> FileSystemArtifactStore:
    """The study's artifact store, `<folder>/artifacts` (created)."""
    path = Path(folder) / ARTIFACTS
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(path))


def record_export(study: optuna.Study, store: FileSystemArtifactStore, folder: Path) -> list[str]:
    """An export folder's report.json, model.h and spec.yaml as study artifacts, named
    `trial_<n>_<file>` (a finished trial takes no new attributes); returns the artifact ids."""
    ids = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in EXPORT_FILES:
            src = Path(folder) / name
            if src.is_file():
                dst = Path(tmp) / f"{Path(folder).name}_{name}"
                dst.write_bytes(src.read_bytes())
                ids.append(upload_artifact(artifact_store=store, file_path=str(dst), study_or_trial=study,
                                           mimetype="application/json" if name.endswith(".json") else "text/plain"))
    return ids
