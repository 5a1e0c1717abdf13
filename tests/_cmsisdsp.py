"""Shared helpers for tests/benchmarks that compile CMSIS-DSP: sources, library builds, a front-end driver.

CMSIS-DSP sources are never committed. `dsp_root()` is ``$CMSIS_DSP_PATH`` when set, else the cmsisdsp
sdist (same version as the installed wrapper: ``$NAS_CMSISDSP_SDIST`` or fetched once with
``pip download`` into ~/.cache/nas-tests/) extracted once next to it. Builds are cached under
``$TMPDIR/nas_cbuild_cache`` keyed by a hash of sources, flags and compiler. Helpers raise
`Unavailable` (tests turn it into a skip) when a tool or the sources are missing.

The front-end driver (`FE_DRIVER_C`) feeds int16 audio hop by hop to the generated
``nas_frontend.c`` and prints, in the ``@tag name value`` format of `nas.export.qemu.parse_tagged`:
``@hex w<i>`` each ready window, ``@int wpush<i>`` the push (1-based) that made it ready, ``@int
pushes``; on the host with the dB hook ``@hex db<t>`` each frame's float32 dB; on the M4 ``@insn``
totals over the frame-computing pushes (``frame_total``, ``frame_max``, ``frame_min``, ``frames``)
and ``@int stack``.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nas.export import frontend_c as fc  # noqa: E402
from nas.export import qemu  # noqa: E402

STRICT = ("-O2", "-Wall", "-Wextra", "-Werror", *fc.FRONTEND_CFLAGS)
CACHE_DIR = Path(tempfile.gettempdir()) / "nas_cbuild_cache"


class Unavailable(RuntimeError):
    """A compiler, QEMU or the CMSIS-DSP sources are not available (tests skip with this message)."""


# --------------------------------------------------------------------------- sources

def sdist() -> Path:
    """The cmsisdsp sdist of the installed wrapper's version: $NAS_CMSISDSP_SDIST, the cache, or pip.
    Raises Unavailable when it cannot be had."""
    ver = version("cmsisdsp")
    env = os.environ.get("NAS_CMSISDSP_SDIST")
    if env and Path(env).is_file():
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nas-tests"
    path = cache / f"cmsisdsp-{ver}.tar.gz"
    if path.is_file():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "download", f"cmsisdsp=={ver}", "--no-binary", ":all:",
                        "--no-deps", "--no-build-isolation", "-q", "-d", str(cache)],
                       check=True, capture_output=True, timeout=180)
    except (subprocess.SubprocessError, OSError) as exc:
        raise Unavailable(f"cmsisdsp {ver} sdist not available: {exc}") from exc
    if not path.is_file():
        raise Unavailable(f"pip download did not produce {path.name}")
    return path


def extract_sdist(archive: Path, dest: Path, extra: Sequence[str] = ()) -> Path:
    """Extract Include/, PrivateInclude/ and Source/ (or only Source/<extra> files when given) of the
    sdist into dest; returns the CMSIS-DSP root (the sdist's top folder)."""
    with tarfile.open(archive) as tar:
        top = tar.getnames()[0].split("/")[0]
        wanted = [m for m in tar.getmembers() if m.isfile() and (
            m.name.startswith(f"{top}/Include/") or m.name.startswith(f"{top}/PrivateInclude/")
            or (any(m.name == f"{top}/Source/{s}" for s in extra) if extra
                else m.name.startswith(f"{top}/Source/")))]
        tar.extractall(dest, members=wanted, filter="data")
    return dest / top


def dsp_root() -> Path:
    """A CMSIS-DSP tree: $CMSIS_DSP_PATH, else the sdist extracted once into the cache."""
    env = os.environ.get("CMSIS_DSP_PATH")
    if env:
        if not (Path(env) / "Include" / "arm_math.h").is_file():
            raise Unavailable(f"CMSIS_DSP_PATH={env} is not a CMSIS-DSP tree (no Include/arm_math.h)")
        return Path(env)
    archive = sdist()
    final = archive.parent / (archive.name[:-len(".tar.gz")] + "-src")
    marker = final / ".complete"
    if not marker.is_file():
        tmp = Path(tempfile.mkdtemp(prefix=".extract_", dir=archive.parent))
        root = extract_sdist(archive, tmp)
        (root / ".complete").write_text("ok\n")
        shutil.rmtree(final, ignore_errors=True)
        try:
            root.rename(final)
        except OSError:   # another process won the race
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --------------------------------------------------------------------------- builds

def _digest(files: Sequence[Path], extra: Sequence[str]) -> str:
    h = hashlib.sha256()
    for f in sorted(set(map(Path, files))):
        h.update(str(f).encode())
        h.update(f.read_bytes())
    for e in extra:
        h.update(e.encode())
    return h.hexdigest()[:20]


def host_cc() -> str:
    cc = shutil.which("gcc")
    if cc is None:
        raise Unavailable("host gcc not found")
    return cc


def m4_toolchain() -> qemu.Toolchain:
    tc = qemu.find_toolchain()
    if tc is None:
        raise Unavailable(f"Cortex-M4 toolchain unavailable: {qemu.toolchain_problem()}")
    return tc


def _defines() -> list[str]:
    """-D flags of the CMSIS-DSP and front-end builds (a fixed front-end's files set their own)."""
    return [f"-D{d}" for d in fc.CMSIS_DSP_DEFINES]


def _target_flags(target: str) -> tuple[str, list[str]]:
    """Compiler and flags of 'host', 'm4' or a `qemu.CPU_FLAGS` instruction set (cortex-m3, ...)."""
    if target == "host":
        return host_cc(), []
    tc = m4_toolchain()
    cpu = qemu.M4_CFLAGS if target == "m4" else qemu.CPU_FLAGS[target]
    return tc.gcc, [*cpu, "-std=c99", "-ffunction-sections", "-fdata-sections", "-g"]


def dsp_library(target: str, fe=None) -> Path:
    """Static archive of `fc.cmsis_dsp_sources` (of front-end `fe`: float by default; a fixed one: its
    `fc.DSP_UNIT_NAME`) for 'host', 'm4' or an instruction set (same flags as the front-end; the M4
    objects as `qemu.build_elf` compiles). Cached; the sources must compile warning-free."""
    cc, tflags = _target_flags(target)
    root = dsp_root()
    srcs, incs = fc.cmsis_dsp_sources(root, fe)
    fixed = fe is not None and fe.arithmetic == "fixed"
    ar = shutil.which("ar" if target == "host" else "arm-none-eabi-ar")
    if ar is None:
        raise Unavailable(f"archiver for {target} not found")
    flags = [*tflags, *STRICT, *_defines(), *[f"-I{d}" for d in incs]]
    cc_id = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    headers = [p for d in incs for p in d.rglob("*.h")]
    hashed = srcs + ([root / "Source" / f for f in fc.FIXED_UNIT_SOURCES] + [fc.INTRINSICS_PATH] if fixed else [])
    key = _digest(hashed + headers, [*flags, cc_id, target, fc.render_dsp_unit() if fixed else ""])
    out = CACHE_DIR / f"cmsisdsp_fe_{target}{'_fixed' if fixed else ''}_{key}"
    lib = out / "libnasdsp.a"
    if lib.is_file():
        return lib
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build_", dir=CACHE_DIR))
    if fixed:                                  # the one translation unit, with the intrinsics next to it
        (tmp / fc.DSP_UNIT_NAME).write_text(fc.render_dsp_unit())
        shutil.copy(fc.INTRINSICS_PATH, tmp / fc.INTRINSICS_HEADER)
        srcs, flags = [*srcs, tmp / fc.DSP_UNIT_NAME], [*flags, f"-I{tmp}"]

    def one(src: Path) -> Path:
        obj = tmp / f"{src.stem}.o"
        r = subprocess.run([cc, *flags, "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        if r.returncode != 0 or r.stderr.strip():
            raise RuntimeError(f"CMSIS-DSP {src.name} ({target}) did not compile cleanly:\n{r.stderr[-3000:]}")
        return obj

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        objs = list(pool.map(one, srcs))
    r = subprocess.run([ar, "rcs", str(tmp / "libnasdsp.a"), *map(str, objs)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{ar} failed: {r.stderr}")
    try:
        tmp.rename(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return lib


FE_DRIVER_C = r"""
/* front-end driver: int16 audio (uint32 count + samples) -> windows via nas_frontend_push */
#include <stdint.h>
#include <string.h>
#include "nas_frontend.h"

#define IN_CAP (1u << 20)
static int16_t g_audio[IN_CAP / 2];

#if defined(FE_QEMU)
#include "qemu_harness.h"
static void put_name(const char *p, uint32_t i, char *name)
{
    char tmp[12];
    uint32_t n = 0, k = 0;
    while (*p) name[k++] = *p++;
    do { tmp[n++] = (char)('0' + i % 10u); i /= 10u; } while (i);
    while (n) name[k++] = tmp[--n];
    name[k] = 0;
}
static void out_int(const char *tag, const char *prefix, uint32_t i, int64_t v)
{
    char name[32];
    put_name(prefix, i, name);
    qh_report_int(tag, name, v);
}
static void out_hex(const char *prefix, uint32_t i, const void *p, uint32_t n)
{
    char name[32];
    put_name(prefix, i, name);
    qh_report_hex(name, p, n);
}
#else
#include <stdio.h>
static void out_int(const char *tag, const char *prefix, uint32_t i, int64_t v)
{
    printf("@%s %s%u %lld\n", tag, prefix, (unsigned)i, (long long)v);
}
static void out_hex(const char *prefix, uint32_t i, const void *p, uint32_t n)
{
    const uint8_t *b = (const uint8_t *)p;
    printf("@hex %s%u ", prefix, (unsigned)i);
    for (uint32_t k = 0; k < n; k++) printf("%02x", (unsigned)b[k]);
    printf("\n");
}
#endif

#if defined(NAS_FRONTEND_DB_HOOK)
static uint32_t g_frame;
#if defined(NAS_FE_FIXED)
void NAS_FRONTEND_DB_HOOK(const int16_t *db, uint32_t n)
{
    out_hex("db", g_frame++, db, 2u * n);
}
#else
void NAS_FRONTEND_DB_HOOK(const float *db, uint32_t n)
{
    out_hex("db", g_frame++, db, 4u * n);
}
#endif
#endif

static int run(uint32_t n)
{
    uint32_t pushes = n / NAS_FRONTEND_HOP_LENGTH, windows = 0;
#if defined(FE_QEMU)
    uint64_t total = 0, worst = 0, best = ~(uint64_t)0, frames = 0;
    uint64_t c0 = qh_insn_count(), c1 = qh_insn_count();
    uint64_t overhead = c1 - c0;
#endif
    nas_frontend_init();
    for (uint32_t k = 0; k < pushes; k++) {
#if defined(FE_QEMU)
        uint64_t t0 = qh_insn_count();
#endif
        int ready = nas_frontend_push(g_audio + k * NAS_FRONTEND_HOP_LENGTH);
#if defined(FE_QEMU)
        uint64_t dt = qh_insn_count() - t0 - overhead;
        /* pushes that computed a frame: all but the warm-up ones */
        if (k + 1u >= (NAS_FRONTEND_N_FFT + NAS_FRONTEND_HOP_LENGTH - 1u) / NAS_FRONTEND_HOP_LENGTH) {
            total += dt;
            frames++;
            if (dt > worst) worst = dt;
            if (dt < best) best = dt;
        }
#endif
        if (ready) {
            out_hex("w", windows, nas_frontend_window(), NAS_FRONTEND_WINDOW_BYTES);
            out_int("int", "wpush", windows, (int64_t)(k + 1u));
            windows++;
        }
    }
    out_int("int", "pushes", 0, pushes);
#if defined(FE_QEMU)
    qh_report_int("insn", "frame_total", (int64_t)total);
    qh_report_int("insn", "frame_max", (int64_t)worst);
    qh_report_int("insn", "frame_min", (int64_t)(frames ? best : 0));
    qh_report_int("insn", "frames", (int64_t)frames);
    qh_report_int("int", "stack", qh_stack_used());
#endif
    return 0;
}

#if defined(FE_QEMU)
int main(void)
{
    uint32_t n = 0;
    int32_t got = qh_read_input(g_audio, sizeof g_audio);
    if (got < 0) return 3;
    n = (uint32_t)got / 2u;
    return run(n);
}
#else
int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 3;
    size_t n = fread(g_audio, 2, IN_CAP / 2, f);
    fclose(f);
    return run((uint32_t)n);
}
#endif
"""


@dataclass
class FeRun:
    windows: np.ndarray              # [n_windows, frames, n_mels] int8
    ready_pushes: list[int]          # 1-based push that made each window ready
    pushes: int
    db: np.ndarray | None = None     # [n_frames, n_mels] float32 dB (host with the dB hook; fixed: D / 16)
    insn: dict[str, int] | None = None   # M4: frame_total, frame_max, frame_min, frames
    stack: int | None = None


def _fixed_flag(fe) -> list[str]:
    return ["-DNAS_FE_FIXED"] if fe.arithmetic == "fixed" else []


def build_host_frontend(fe, iq, work: Path, db_hook: bool = True) -> Path:
    """Host executable: generated front-end + driver (strict flags) + host CMSIS-DSP library."""
    cc = host_cc()
    lib = dsp_library("host", fe)
    gen = work / "gen"
    fc.write_frontend(fe, iq, gen)
    _srcs, incs = fc.cmsis_dsp_sources(dsp_root(), fe)
    (work / "driver.c").write_text(FE_DRIVER_C)
    flags = [*STRICT, *_defines(), *_fixed_flag(fe), f"-I{gen}", *[f"-I{d}" for d in incs]]
    if db_hook:
        flags.append("-DNAS_FRONTEND_DB_HOOK=fe_db_hook")
    exe = work / "fe_host"
    cmd = [cc, *flags, str(gen / fc.SOURCE_NAME), str(work / "driver.c"), str(lib), "-lm", "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        raise RuntimeError(f"host build not clean: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    return exe


def build_m4_frontend(fe, iq, work: Path, isa: str = "cortex-m4") -> Path:
    """Cortex-M4 ELF (qemu.build_elf: M4_CFLAGS -O2, gc-sections; map file next to it), or for another
    instruction set of `qemu.CPU_FLAGS` (the mps2-an386 runs them all)."""
    tc = m4_toolchain()
    lib = dsp_library("m4" if isa == "cortex-m4" else isa, fe)
    gen = work / "gen"
    fc.write_frontend(fe, iq, gen)
    _srcs, incs = fc.cmsis_dsp_sources(dsp_root(), fe)
    (work / "driver.c").write_text(FE_DRIVER_C)
    return qemu.build_elf([gen / fc.SOURCE_NAME, work / "driver.c"], [gen, *incs], work / "m4",
                          defines=[*fc.CMSIS_DSP_DEFINES, "FE_QEMU"], name="fe",
                          options=qemu.BuildOptions(
                              cpu_flags=qemu.CPU_FLAGS[isa], toolchain=tc, ldflags=(str(lib),),
                              cflags=("-Wall", "-Wextra", "-Werror", "-ffp-contract=off", *_fixed_flag(fe))))


def _parse(text: str, fe, with_db: bool) -> FeRun:
    tags = qemu.parse_tagged(text)
    hexes = tags.get("hex", {})
    ints = tags.get("int", {})
    n_w = sum(1 for k in hexes if k.startswith("w"))
    windows = np.stack([np.frombuffer(hexes[f"w{i}"], dtype=np.int8).reshape(fe.frames, fe.n_mels)
                        for i in range(n_w)]) if n_w else np.zeros((0, fe.frames, fe.n_mels), np.int8)
    db = None
    if with_db:
        n_f = sum(1 for k in hexes if k.startswith("db"))
        kind, scale = (np.int16, 1.0 / 16.0) if fe.arithmetic == "fixed" else (np.float32, 1.0)
        db = (np.stack([np.frombuffer(hexes[f"db{t}"], dtype=kind) for t in range(n_f)]).astype(np.float32)
              * np.float32(scale) if n_f else np.zeros((0, fe.n_mels), np.float32))
    insn = {k: int(v) for k, v in tags.get("insn", {}).items()} or None
    return FeRun(windows=windows, ready_pushes=[int(ints[f"wpush{i}"]) for i in range(n_w)],
                 pushes=int(ints["pushes0"]), db=db, insn=insn,
                 stack=int(ints["stack"]) if "stack" in ints else None)


def run_host_frontend(exe: Path, audio: np.ndarray, fe, with_db: bool = True) -> FeRun:
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(np.ascontiguousarray(audio, dtype="<i2").tobytes())
        path = f.name
    try:
        r = subprocess.run([str(exe), path], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    if r.returncode != 0:
        raise AssertionError(f"host front-end exited {r.returncode}: {r.stderr[-2000:]}")
    return _parse(r.stdout, fe, with_db)


def run_m4_frontend(elf: Path, audio: np.ndarray, fe, timeout: float = 120.0) -> FeRun:
    text, code = qemu.run_elf(elf, np.ascontiguousarray(audio, dtype="<i2").tobytes(), timeout=timeout)
    if code != 0:
        raise AssertionError(f"M4 front-end exited {code}; output tail:\n{text[-2000:]}")
    return _parse(text, fe, False)


# --------------------------------------------------------------------------- ELF measurement

def elf_symbols(elf: Path) -> dict[str, tuple[str, int]]:
    """{name: (nm type letter, size)} of the ELF's sized symbols (arm-none-eabi-nm -S)."""
    nm = shutil.which("arm-none-eabi-nm")
    if nm is None:
        raise Unavailable("arm-none-eabi-nm not found")
    r = subprocess.run([nm, "-S", "--size-sort", str(elf)], capture_output=True, text=True, check=True)
    out: dict[str, tuple[str, int]] = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out[parts[3]] = (parts[2], int(parts[1], 16))
    return out


def map_input_sections(map_path: Path) -> list[tuple[str, int, str]]:
    """(section, size, input file) of every input section linked into the image, from a GNU ld map
    (the part after 'Linker script and memory map'; discarded sections are not included)."""
    text = Path(map_path).read_text(errors="replace")
    start = text.find("Linker script and memory map")
    lines = text[start:].splitlines() if start >= 0 else []
    out = []
    pending = None
    for line in lines:
        if pending is not None:
            parts = line.split()
            if len(parts) == 3 and parts[0].startswith("0x") and parts[1].startswith("0x"):
                out.append((pending, int(parts[1], 16), parts[2]))
            pending = None
            continue
        if not line.startswith(" .") and not line.startswith(" COMMON"):
            continue
        parts = line.split()
        if len(parts) == 1:
            pending = parts[0]
        elif len(parts) == 4 and parts[1].startswith("0x") and parts[2].startswith("0x"):
            out.append((parts[0], int(parts[2], 16), parts[3]))
    return out


def frontend_footprint(map_path: Path) -> dict[str, int]:
    """Bytes linked from each part of the front-end: code (.text) and constants (.rodata) of the
    CMSIS-DSP library (libnasdsp.a), of nas_frontend.o, and of libm (logf)."""
    sizes = {k: 0 for k in ("dsp_text", "dsp_rodata", "fe_text", "fe_rodata", "libm_text", "libm_rodata")}
    for sec, size, src in map_input_sections(map_path):
        if "libnasdsp.a" in src:
            group = "dsp"
        elif src.endswith("nas_frontend.o"):
            group = "fe"
        elif "/libm" in src or src.startswith("libm"):
            group = "libm"
        else:
            continue
        if sec.startswith(".text"):
            sizes[f"{group}_text"] += size
        elif sec.startswith(".rodata"):
            sizes[f"{group}_rodata"] += size
    return sizes
