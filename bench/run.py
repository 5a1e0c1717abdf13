"""Print every benchmark figure of the project: `python bench/run.py [name ...]`.

Each `bench/bench_<name>.py` exposes `run() -> list[(name, value, unit)]`; this runner imports them in
turn and prints one aligned table, so a single command shows every throughput and ratio we track.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    modules = sorted(p for p in HERE.glob("bench_*.py") if not wanted or p.stem[len("bench_"):] in wanted)
    if not modules:
        print(f"no benchmarks match {sorted(wanted)}; have: "
              + ", ".join(p.stem[len('bench_'):] for p in sorted(HERE.glob('bench_*.py'))), file=sys.stderr)
        return 2
    failed = 0
    for path in modules:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        t0 = time.perf_counter()
        print(f"== {path.stem[len('bench_'):]}", flush=True)
        try:
            rows = module.run()
        except Exception as exc:  # one broken benchmark must not hide the others
            failed += 1
            print(f"   FAILED: {type(exc).__name__}: {exc}", flush=True)
            continue
        for name, value, unit in rows:
            print(f"   {name:<58} {value:>14,.3f} {unit}", flush=True)
        print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path[:0] = [str(HERE.parent), str(HERE)]
    sys.exit(main(sys.argv[1:]))
