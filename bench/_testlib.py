"""Load a shared helper module from tests/ (C build and CMSIS-DSP helpers) without making tests/ a package."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def load(stem: str):
    name = f"_nas_tests_{stem.lstrip('_')}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / f"{stem}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
