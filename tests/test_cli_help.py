"""Every verb answers `--help` without loading the heavy libraries: a user asking what a flag means
waits for argparse, not for torch (35-41 s on a cold disk)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERBS = ("search", "export", "evaluate", "cost", "calibrate", "data.synth")
HEAVY = ("torch", "optuna", "pandas", "matplotlib", "onnx", "onnxruntime", "scipy", "soundfile")
PROBE = """
import json, runpy, sys
sys.argv = ["nas", "--help"]
try:
    runpy.run_module(sys.argv_verb, run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": [m for m in HEAVY if m in sys.modules]}), file=sys.stderr)
"""


@pytest.mark.parametrize("verb", VERBS)
def test_help_loads_no_heavy_library(verb):
    code = f"import sys; sys.argv_verb = 'nas.{verb}'; HEAVY = {HEAVY!r}\n" + PROBE
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "usage:" in res.stdout
    got = json.loads(res.stderr.strip().splitlines()[-1])
    assert got == {"code": 0, "heavy": []}, f"python -m nas.{verb} --help loaded {got['heavy']}"
