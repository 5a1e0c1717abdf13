"""Where a measurement comes from: kernel library version, compiler, flags, QEMU."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from nas.export import qemu


def _run(cmd: list[str], cwd: str | None = None) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return res.stdout.strip() if res.returncode == 0 else ""


def library_version(library: str, root: str | os.PathLike | None) -> str:
    """'CMSIS-NN <tag> (<commit>)' from the checkout's git metadata, or the portable kernels' tag."""
    if library == "portable":
        return "nas portable CMSIS-NN kernels (nas/export/csrc/cmsisnn_portable)"
    root = str(root)
    tag = _run(["git", "describe", "--tags", "--always"], cwd=root)
    commit = _run(["git", "rev-parse", "--short=8", "HEAD"], cwd=root)
    if not commit:
        pdsc = Path(root) / "ARM.CMSIS-NN.pdsc"
        text = pdsc.read_text(errors="replace") if pdsc.is_file() else ""
        marker = '<release version="'
        tag = text[text.index(marker) + len(marker):].split('"')[0] if marker in text else "unknown version"
    return f"CMSIS-NN {tag or 'untagged'}" + (f" ({commit})" if commit else "")


def toolchain() -> dict[str, str]:
    tc = qemu.find_toolchain()
    if tc is None:
        raise RuntimeError(qemu.toolchain_problem() or "no toolchain")
    return {"compiler": _run([tc.gcc, "--version"]).splitlines()[0],
            "qemu": _run([tc.qemu, "--version"]).splitlines()[0],
            "machine": f"{qemu.QEMU_MACHINE} -icount shift=0 (SysTick, {qemu.INSN_PER_TICK} instructions per tick)",
            "link": "--specs=nano.specs -Wl,--gc-sections, -std=c99 -ffunction-sections -fdata-sections"}


def cflags(isa: str, opt: str) -> str:
    return " ".join([*qemu.CPU_FLAGS[isa], f"-{opt}"])
