"""The calibration choices `nas.export` offers, apart from `quantize` so that a CLI lists them in
`--help` without loading torch."""
from __future__ import annotations

METHODS = ("minmax", "percentile")
DEFAULT_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99
DEFAULT_CALIBRATION_WINDOWS = 1000
