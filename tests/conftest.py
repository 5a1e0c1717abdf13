"""Shared fixtures.

`demo_root`: a small synthetic UrbanSound8K-layout dataset (6 clips per class = 60 clips, every fold
non-empty, all WAV encodings, sample rates 8-96 kHz and mono/stereo present), generated once per test
session. Treat it as read-only: tests that damage a dataset must copy it first (`copy_dataset`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DEMO_SEED = 0
DEMO_CLIPS_PER_CLASS = 6


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    from nas.data.synth import generate

    return generate(tmp_path_factory.mktemp("demo_data") / "UrbanSound8K", seed=DEMO_SEED,
                    clips_per_class=DEMO_CLIPS_PER_CLASS, progress=False)


@pytest.fixture
def copy_dataset(demo_root, tmp_path):
    """Return a function making a private, modifiable copy of the demo dataset."""
    def make(name: str = "ds") -> Path:
        dst = tmp_path / name
        shutil.copytree(demo_root, dst)
        return dst
    return make
