"""What an export ends with: one row per folder written, read back from its ``report.json``, so the
table says what is on disk: validation accuracy (int8, what the C computes), RAM, FLASH and CPU share
(the cost model, which the checks hold the ELF to), instructions per inference (measured under QEMU,
else the cost model's prediction), where the C was checked bit-exact, and the "unknown" threshold."""
from __future__ import annotations

import json
from pathlib import Path


def _row(folder: Path) -> tuple[str, ...]:
    r = json.loads((folder / "report.json").read_text())
    cost, acc, m4, host = r["cost_model"], r.get("accuracy") or {}, r.get("cortex_m4") or {}, r.get("host_c") or {}
    unk = r.get("unknown") or {}
    if "instructions_per_inference" in m4:
        insn = f"{m4['instructions_per_inference']:,} ({m4['isa']} -{m4['opt_level']})"
    else:
        insn = f"{round(cost['instructions_per_window']):,} (predicted)"
    exact = [f"{where} {run['bit_exact_windows']}" for where, run in (("host", host), (m4.get("isa"), m4))
             if "bit_exact_windows" in run]
    if unk.get("min_score", -128) == -128:
        unknown = "never"
    else:
        unknown = f"< {unk['probability']:.2f}: precision {unk['precision']:.3f}, recall {unk['recall']:.3f}"
    return (str(folder), r.get("model", ""), "?" if acc.get("val_accuracy_int8") is None else f"{acc['val_accuracy_int8']:.3f}",
            f"{cost['ram_bytes_total'] / 1024:.1f}", f"{cost['flash_bytes_total'] / 1024:.1f}",
            f"{cost['cpu_share']:.1%}", insn, ", ".join(exact) + " windows" if exact else "not checked", unknown)


HEADER = ("folder", "model", "val_accuracy_int8", "RAM kB", "FLASH kB", "CPU", "instructions/inference",
          "bit-exact", "unknown")


def table(folders: list[Path]) -> str:
    """The summary of `folders` (each holding a report.json), aligned, with a legend line."""
    rows = [HEADER] + [_row(Path(f)) for f in folders]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * max(map(len, lines)))
    return "\n".join([*lines, "val_accuracy_int8: the share of validation clips the int8 C classifies correctly; RAM, FLASH, "
                      "CPU: the cost model (the ELF is checked against it); bit-exact: windows where the C equals "
                      "the integer reference; unknown: clips whose mean top probability is below the threshold"])
