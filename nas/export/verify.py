"""Build, run and measure an exported model folder: host gcc and Cortex-M4 under QEMU.

* `build_host` / `run_host`: the generated model.c + CMSIS-NN kernels (the folder's portable copy or
  a real checkout) + `csrc/model/nas_driver.c`, compiled with ``-std=c99 -O2 -Wall -Wextra -Werror``
  by the host C compiler; returns int8 scores for a batch of int8 windows.
* `build_m4` / `run_m4`: the same for a Cortex-M (``qemu.BuildOptions``: Cortex-M4F, -O2 by default)
  with the QEMU harness;
  also per-inference instruction counts (``-icount shift=0``) and the stack high-water mark.
* `measure_m4`: the deployment-like ELF (room for exactly one feature window), its section sizes,
  the sizes of the model's own symbols (``nas_model_arena``, ``nas_w_*``) read with
  ``arm-none-eabi-nm``, and the comparison with the cost model.
* `measure_pipeline`: with a CMSIS-DSP tree, the whole deployment (generated front-end + model,
  audio in, scores out) on the Cortex-M4: model outputs bit-exact with `run_int8` on the windows the
  C front-end produced, and ELF FLASH/RAM (+ stack) against the cost model's totals.

Host objects of a real CMSIS-NN checkout (113 files) are cached by content hash under
``$TMPDIR/nas_export_objcache``, so it is compiled once per compiler, flags and source.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from nas.budget import Budget
from nas.cost import analytic as costmodel
from nas.cost import codesize, cpu
from nas.export import qemu
from nas.export.api import Api
from nas.export.codegen import MODEL_C, OWN_SUBDIR, PORTABLE_SUBDIR, WEIGHT_SYMBOL_PREFIX
from nas.libraries import addon_sources, library
from nas.libraries.cmsis_nn import PORTABLE_DIR

DRIVER_C = Path(__file__).resolve().parent / "csrc" / "model" / "nas_driver.c"
DECIDE_DRIVER_C = DRIVER_C.with_name("nas_decide_driver.c")
STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror")
HOST_OPT = "-O2"
OBJ_CACHE = Path(tempfile.gettempdir()) / "nas_export_objcache"


class VerifyError(RuntimeError):
    """A build or a run of the exported C failed; the message holds the compiler/program output."""


def host_compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "") or "gcc") or shutil.which("cc")


def kernel_library(model_dir: Path, nn_path: str | os.PathLike | None = None) -> tuple[list[Path], list[Path], bool]:
    """(sources, include dirs, strict) of the kernels: the folder's portable CMSIS-NN copy, or a real
    checkout (compiled with warnings but without -Werror: not our code), and the add-on libraries'
    (the folder's copy, else the package's)."""
    own = Path(model_dir) / OWN_SUBDIR
    own_srcs, own_incs = (sorted(own.glob("*.c")), [own]) if own.is_dir() else addon_sources()
    if nn_path:
        srcs, incs = library("cmsis-nn").sources(nn_path)
        return srcs + own_srcs, incs + own_incs, False
    port = Path(model_dir) / PORTABLE_SUBDIR
    if not port.is_dir():
        port = PORTABLE_DIR
    return sorted(port.glob("*.c")) + own_srcs, [port, *own_incs], True


def driver_api_flags(api: Api, work: Path) -> list[str]:
    """Compiler flags that let the driver call a model exported with a non-default `api`: a header
    mapping the default names to its names, force-included (`templates/driver_api.h.j2`)."""
    if api.is_default:
        return []
    from nas.export.render import render

    header = Path(work) / "driver_api.h"
    header.parent.mkdir(parents=True, exist_ok=True)
    header.write_text(render("driver_api.h.j2", api=api))
    return ["-include", str(header)]


def _compile(cc: str, flags: Sequence[str], src: Path, obj: Path) -> None:
    cmd = [cc, *flags, "-c", str(src), "-o", str(obj)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or (res.stderr.strip() and "-Werror" in flags):
        raise VerifyError(f"compile failed: {' '.join(cmd)}\n{res.stderr}")


def _cached_objects(cc: str, flags: Sequence[str], srcs: Sequence[Path], headers: Sequence[Path]) -> list[Path]:
    """Compile library sources once per (compiler, flags, source, headers) content."""
    OBJ_CACHE.mkdir(parents=True, exist_ok=True)
    ver = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout.encode()
    common = qemu.digest(ver, " ".join(flags).encode(), *[h.read_bytes() for h in sorted(headers)])

    def one(src: Path) -> Path:
        return qemu.cached_object(OBJ_CACHE, common, src, lambda tmp: _compile(cc, flags, src, tmp))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(one, srcs))


def build_host(model_dir: str | os.PathLike, work: str | os.PathLike, nn_path: str | os.PathLike | None = None,
               max_inputs: int = 256, api: Api = Api()) -> Path:
    """Host executable of the model + kernels + batch driver; model.c and the driver (and the
    portable kernels) must compile without a single warning."""
    cc = host_compiler()
    if cc is None:
        raise VerifyError("no host C compiler (gcc/cc) on PATH")
    model_dir, work = Path(model_dir), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    srcs, incs, strict = kernel_library(model_dir, nn_path)
    inc_flags = [f"-I{d}" for d in incs]
    lib_flags = [*STRICT[:3], *(STRICT[3:] if strict else ()), HOST_OPT, *inc_flags]
    if nn_path:     # a real CMSIS-NN: ~100 files, compiled once per compiler/flags/content
        headers = [h for d in incs for h in Path(d).rglob("*.h")]
        lib_objs = _cached_objects(cc, lib_flags, srcs, headers)
    else:           # the folder's portable kernels: a few files, compiled here
        lib_objs = [work / f"nn_{src.stem}.o" for src in srcs]
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            list(pool.map(lambda so: _compile(cc, lib_flags, *so), zip(srcs, lib_objs)))
    own_flags = [*STRICT, HOST_OPT, f"-I{model_dir}", *inc_flags, f"-DNAS_DRIVER_MAX_INPUTS={max_inputs}"]
    own = [(model_dir / MODEL_C, work / "model.o", own_flags),
           (DRIVER_C, work / "nas_driver.o", [*own_flags, *driver_api_flags(api, work)])]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda sof: _compile(cc, sof[2], sof[0], sof[1]), own))
    exe = work / "nas_driver"
    cmd = [cc, *[str(o) for _, o, _ in own], *map(str, lib_objs), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise VerifyError(f"link failed: {' '.join(cmd)}\n{res.stderr}")
    return exe


def _parse_scores(text: str, n: int, classes: int) -> np.ndarray:
    tags = qemu.parse_tagged(text)
    hexes = tags.get("hex", {})
    if "rc" in tags:
        raise VerifyError(f"nas_model_invoke failed: {tags['rc']}")
    missing = [i for i in range(n) if str(i) not in hexes]
    if missing:
        raise VerifyError(f"no scores for {len(missing)} of {n} windows; output tail:\n{text[-1500:]}")
    out = np.frombuffer(b"".join(hexes[str(i)] for i in range(n)), dtype=np.int8)
    return out.reshape(n, classes).copy()


def run_host(exe: str | os.PathLike, x_int8: np.ndarray, classes: int, timeout: float = 120.0) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(x_int8, dtype=np.int8))
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(x.tobytes())
        path = f.name
    try:
        res = subprocess.run([str(exe), path], capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(path)
    if res.returncode != 0:
        raise VerifyError(f"{exe} exited {res.returncode}: {res.stdout[-800:]} {res.stderr[-800:]}")
    return _parse_scores(res.stdout, x.shape[0], classes)


def run_decide(model_dir: str | os.PathLike, work: str | os.PathLike, votes: np.ndarray, windows: np.ndarray,
               api: Api = Api(), timeout: float = 60.0) -> np.ndarray:
    """The folder's model_decide.h compiled (-Werror) into `csrc/model/nas_decide_driver.c` and run on
    clips' `votes` [N, classes] and `windows` [N]; returns its decision per clip."""
    cc = host_compiler()
    if cc is None:
        raise VerifyError("no host C compiler (gcc/cc) on PATH")
    model_dir, work = Path(model_dir), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    exe = work / "nas_decide_driver"
    cmd = [cc, *STRICT, HOST_OPT, f"-I{model_dir}", *driver_api_flags(api, work), str(DECIDE_DRIVER_C), "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or res.stderr.strip():
        raise VerifyError(f"compile failed: {' '.join(cmd)}\n{res.stderr}")
    votes, windows = np.asarray(votes, np.int64), np.asarray(windows, np.int64)
    rows = np.concatenate([windows[:, None], votes], axis=1)
    body = np.concatenate([[len(votes), votes.shape[1]], rows.reshape(-1)])
    if np.abs(body).max(initial=0) >= 2 ** 31:
        raise ValueError("votes or windows beyond int32")
    data = work / "cases.bin"
    data.write_bytes(body.astype("=i4").tobytes())
    res = subprocess.run([str(exe), str(data)], capture_output=True, text=True, timeout=timeout)
    lines = res.stdout.split()
    if res.returncode != 0 or lines[-2:] != ["done", str(len(votes))]:
        raise VerifyError(f"{exe} exited {res.returncode}: {res.stdout[-800:]} {res.stderr[-800:]}")
    return np.array([int(v) for v in lines[:-2]], dtype=np.int64)


def _with_kernels(options: qemu.BuildOptions, cflags: Sequence[str], srcs: Sequence[Path],
                 incs: Sequence[Path]) -> qemu.BuildOptions:
    """`options` plus a kernel library: its warning flags before the caller's, its sources cached with
    only its include dirs."""
    return replace(options, cflags=(*cflags, *options.cflags), cached=(*srcs, *options.cached),
                   cached_include_dirs=(*incs, *(options.cached_include_dirs or ())))


def build_m4(model_dir: str | os.PathLike, work: str | os.PathLike, nn_path: str | os.PathLike | None = None,
             max_inputs: int = 1, name: str = "model", options: qemu.BuildOptions = qemu.BuildOptions(),
             api: Api = Api()) -> Path:
    """Cortex-M ELF (`options`: core, level, ...; default the Cortex-M4F at -O2) of the model + kernels
    + driver + QEMU harness (qemu.build_elf; kernel objects cached across builds)."""
    model_dir = Path(model_dir)
    srcs, incs, strict = kernel_library(model_dir, nn_path)
    cflags = ["-Wall", "-Wextra", *(["-Werror"] if strict else []), *driver_api_flags(api, Path(work))]
    try:
        return qemu.build_elf([model_dir / MODEL_C, DRIVER_C], [model_dir, *incs], Path(work),
                              defines={"NAS_DRIVER_QEMU": None, "NAS_DRIVER_MAX_INPUTS": max_inputs},
                              name=name, options=_with_kernels(options, cflags, srcs, incs))
    except qemu.BuildError as exc:
        raise VerifyError(str(exc)) from None


@dataclass
class M4Run:
    scores: np.ndarray        # int8 [N, classes]
    insn: np.ndarray          # instructions per inference [N]
    stack_bytes: int          # qh_stack_used() after the run (whole program, deepest)


def _run_qemu(elf, input_bytes: bytes | None, timeout: float, what: str) -> tuple[str, dict]:
    """Run under QEMU; a fault, a non-zero exit or a harness warning is a VerifyError."""
    try:
        text, code = qemu.run_elf(elf, input_bytes, timeout=timeout)
    except qemu.QemuError as exc:
        raise VerifyError(str(exc)) from None
    if code != 0:
        raise VerifyError(f"{what} exited {code}; output tail:\n{text[-1500:]}")
    tags = qemu.parse_tagged(text)
    if "warn" in tags:
        raise VerifyError(f"harness warning: {tags['warn']}")
    return text, tags


def run_m4(elf: str | os.PathLike, x_int8: np.ndarray, classes: int, timeout: float = 300.0) -> M4Run:
    x = np.ascontiguousarray(np.asarray(x_int8, dtype=np.int8))
    text, tags = _run_qemu(elf, x.tobytes(), timeout, "QEMU run")
    n = x.shape[0]
    scores = _parse_scores(text, n, classes)
    insn = np.array([int(tags["insn"][str(i)]) for i in range(n)], dtype=np.int64)
    return M4Run(scores=scores, insn=insn, stack_bytes=int(tags["stack"]["used"]))


def elf_symbols(elf: str | os.PathLike, nm: str | None = None) -> dict[str, int]:
    """{symbol: size in bytes} of the defined, sized symbols (arm-none-eabi-nm -S)."""
    nm = nm or shutil.which("arm-none-eabi-nm") or shutil.which("nm")
    if nm is None:
        raise VerifyError("no nm on PATH")
    res = subprocess.run([nm, "-S", "--defined-only", str(elf)], capture_output=True, text=True)
    if res.returncode != 0:
        raise VerifyError(f"{nm} failed: {res.stderr}")
    sizes: dict[str, int] = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = sizes.get(parts[3], 0) + int(parts[1], 16)
    return sizes


def driver_audio(n_samples: int) -> np.ndarray:
    """The pseudo-random int16 audio the pipeline driver pushes (same LCG as nas_driver.c)."""
    out = np.empty(n_samples, dtype=np.int16)
    state = 0x2545F491
    for i in range(n_samples):
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        top = state >> 16
        top = top - 65536 if top >= 32768 else top
        out[i] = int(top / 4)          # C division truncates toward zero
    return out


def model_ram_estimate(cost: costmodel.Cost, budget: Budget, spec) -> int:
    """What the deployment-like ELF may use: arena + the feature window (part of the front-end's
    buffers) + the runtime reserve (stack, kernel glue)."""
    fe = spec.frontend
    return cost.arena_bytes + costmodel.align4(fe.frames * fe.n_mels) + budget.reserves.runtime.ram_bytes


def model_flash_estimate(cost: costmodel.Cost, spec) -> int:
    """What the exporter's QEMU ELF holds, estimated for the kernels `cost` was priced with: the
    harness (startup, semihosting, driver) + network constants + generated glue + the kernel code."""
    chip = cost.chip
    sizes = codesize.codesize_model(chip.library, chip.isa, chip.opt)
    calls = cpu.kernel_calls(spec)
    return sizes.harness_bytes + cost.network_flash_bytes + sizes.glue_bytes(calls) + chip.kernel_code_beside_harness


def _sizes_vs_cost(elf: Path, stack: int, cost: costmodel.Cost, budget: Budget, spec, api: Api) -> dict:
    sizes = qemu.elf_sizes(elf)
    syms = elf_symbols(elf)
    arena = syms.get(f"{api.model}_arena", 0)
    net_const = sum(v for k, v in syms.items() if k.startswith(WEIGHT_SYMBOL_PREFIX))
    ram_measured = sizes["ram"] + stack
    ram_est, flash_est = model_ram_estimate(cost, budget, spec), model_flash_estimate(cost, spec)
    return {"elf_sections": sizes, "arena_symbol_bytes": arena, "arena_cost_model_bytes": cost.arena_bytes,
            "arena_matches_cost_model": arena == cost.arena_bytes,
            "network_const_bytes": net_const, "network_flash_cost_model_bytes": cost.network_flash_bytes,
            "network_const_matches_cost_model": net_const == cost.network_flash_bytes, "stack_bytes": stack,
            "flash_bytes": sizes["flash"], "flash_estimate_bytes": flash_est,
            "flash_vs_estimate": sizes["flash"] / flash_est, "flash_within_estimate": sizes["flash"] <= flash_est,
            "ram_bytes_with_stack": ram_measured, "ram_estimate_bytes": ram_est,
            "ram_vs_estimate": ram_measured / ram_est, "ram_within_estimate": ram_measured <= ram_est,
            "flash_vs_cost_model_total": sizes["flash"] / cost.flash_bytes,
            "ram_vs_cost_model_total": ram_measured / cost.ram_bytes}


def measure_m4(model_dir: str | os.PathLike, work: str | os.PathLike, cost: costmodel.Cost, budget: Budget, spec,
               x_int8: np.ndarray, expected: np.ndarray, nn_path: str | os.PathLike | None = None,
               api: Api = Api()) -> dict:
    """The model on the budget's instruction set and optimisation level under QEMU: every window of
    `x_int8` bit-exact with `expected` (else VerifyError), instructions per inference against `cost`
    (priced for the kernels linked: `nn_path`'s CMSIS-NN, else the portable ones), and the
    deployment-like ELF's (one window) sizes and symbols against it."""
    chip = cost.chip
    x = np.ascontiguousarray(np.asarray(x_int8, np.int8).reshape(len(x_int8), -1))
    options = qemu.BuildOptions.for_core(chip.isa, chip.opt)
    check = build_m4(model_dir, work, nn_path, max_inputs=len(x), name="check", options=options, api=api)
    run = run_m4(check, x, spec.num_classes)
    bad = int((run.scores != np.asarray(expected)).any(axis=1).sum())
    if bad:
        raise VerifyError(f"Cortex-M scores differ from the integer reference on {bad} of {len(x)} windows")
    elf = build_m4(model_dir, work, nn_path, max_inputs=1, name="firmware", options=options, api=api)
    one = run_m4(elf, x[:1], spec.num_classes)
    insn = int(np.median(run.insn))
    return {
        "toolchain": f"arm-none-eabi-gcc {' '.join(qemu.CPU_FLAGS[chip.isa])} -{chip.opt}, {qemu.QEMU_MACHINE} "
                     "-icount shift=0",
        "isa": chip.isa, "opt_level": chip.opt,
        "kernels": f"CMSIS-NN at {nn_path}" if nn_path else "portable CMSIS-NN kernels",
        "bit_exact_windows": int(len(x)),
        **_sizes_vs_cost(elf, one.stack_bytes, cost, budget, spec, api),
        "instructions_per_inference": insn,
        "instructions_per_inference_range": [int(run.insn.min()), int(run.insn.max())],
        "instructions_predicted": round(cost.instructions_per_window),
        "instructions_vs_predicted": insn / cost.instructions_per_window,
        "macs": cost.macs, "instructions_per_mac": insn / cost.macs if cost.macs else None,
        "_elf": str(elf),
    }


def pipeline_pushes(spec) -> int:
    """Hops that give the pipeline driver two windows."""
    from nas.export import frontend_c as fc

    fe = spec.frontend
    return fc.warmup_pushes(fe) - 1 + fe.frames + fe.window_hop_frames


def build_m4_pipeline(model_dir: str | os.PathLike, work: str | os.PathLike, dsp_root: str | os.PathLike,
                      pushes: int, fe, nn_path: str | os.PathLike | None = None,
                      options: qemu.BuildOptions = qemu.BuildOptions(), api: Api = Api()) -> Path:
    """Cortex-M ELF (`options`, as `build_m4`) of front-end `fe` (nas_frontend.c + CMSIS-DSP subset) +
    model + pipeline driver."""
    from nas.export import frontend_c as fc

    model_dir = Path(model_dir)
    if not (model_dir / fc.SOURCE_NAME).is_file():
        raise VerifyError(f"{model_dir} has no {fc.SOURCE_NAME}")
    fe_srcs = [model_dir / name for name in fc.frontend_sources(fe)]
    try:
        dsp_srcs, dsp_incs = fc.cmsis_dsp_sources(dsp_root, fe)
    except FileNotFoundError as exc:
        raise VerifyError(str(exc)) from None
    srcs, incs, strict = kernel_library(model_dir, nn_path)
    cflags = ["-Wall", "-Wextra", *(["-Werror"] if strict else []), *fc.FRONTEND_CFLAGS[1:],
              *driver_api_flags(api, Path(work))]
    defines = {"NAS_DRIVER_QEMU": None, "NAS_DRIVER_FRONTEND": None, "NAS_DRIVER_PUSHES": pushes,
               **{d: None for d in fc.CMSIS_DSP_DEFINES}}
    try:
        return qemu.build_elf([model_dir / MODEL_C, *fe_srcs, DRIVER_C], [model_dir, *incs, *dsp_incs],
                              Path(work), defines=defines, name="pipeline",
                              options=_with_kernels(options, cflags, [*srcs, *dsp_srcs], [*incs, *dsp_incs]))
    except qemu.BuildError as exc:
        raise VerifyError(str(exc)) from None


def measure_pipeline(model_dir: str | os.PathLike, work: str | os.PathLike, cost: costmodel.Cost,
                     qm, dsp_root: str | os.PathLike, nn_path: str | os.PathLike | None = None,
                     api: Api = Api()) -> dict:
    """Front-end + model on the budget's core under QEMU, against `run_int8` and the cost model totals
    (`cost`, priced for the kernels linked)."""
    from nas.export import frontend_c as fc
    from nas.quant.quantize import run_int8

    spec = qm.spec
    fe = spec.frontend
    pushes = pipeline_pushes(spec)
    elf = build_m4_pipeline(model_dir, work, dsp_root, pushes, fe, nn_path,
                            qemu.BuildOptions.for_core(cost.chip.isa, cost.chip.opt), api=api)
    text, tags = _run_qemu(elf, None, 300.0, "QEMU pipeline run")
    n = int(tags["done"]["n"])
    if n < 1:
        raise VerifyError("the pipeline produced no window")
    scores = _parse_scores(text, n, spec.num_classes)
    windows = np.stack([np.frombuffer(tags["hex"][f"f{i}"], np.int8).reshape(fe.frames, fe.n_mels)
                        for i in range(n)])
    expected = run_int8(qm, windows)
    reference_windows = fc.frontend_reference(driver_audio(pushes * fe.hop_length), fe, qm.input_quant)[:n]
    same_feature = float((reference_windows == windows).mean()) if len(reference_windows) == n else None
    insn = np.array([int(tags["insn"][str(i)]) for i in range(n)], dtype=np.int64)
    stack = int(tags["stack"]["used"])
    sizes = qemu.elf_sizes(elf)
    syms = elf_symbols(elf)
    fe_ram = syms.get(fc.RAM_SYMBOL, 0)
    fe_tables = sum(syms.get(k, 0) for k in (*fc.table_symbols(fe), *fc.rfft_table_symbols(fe.n_fft, fe.arithmetic)))
    ram = sizes["ram"] + stack
    audio = syms.get("nas_driver_hop", 0)     # the application's capture buffer, outside the cost model
    harness = sum(v for k, v in qemu.map_footprints(elf.with_suffix(".map"), stubs=True).items()
                  if re.match(r"\d{4}_(startup|harness|nas_driver)\.o\(", k))     # the test program, not the model
    frames = int(tags["fe"]["frames"])
    return {
        "windows": n,
        "model_bit_exact_on_c_frontend_windows": bool((scores == expected).all()),
        "features_equal_to_python_frontend": same_feature,
        "elf_sections": sizes,
        "frontend_ram_symbol_bytes": fe_ram, "frontend_ram_cost_model_bytes": cost.frontend_ram_bytes,
        "frontend_table_symbol_bytes": fe_tables, "frontend_flash_cost_model_bytes": cost.frontend_flash_bytes,
        "arena_symbol_bytes": syms.get(f"{api.model}_arena", 0),
        "network_const_bytes": sum(v for k, v in syms.items() if k.startswith(WEIGHT_SYMBOL_PREFIX)),
        "stack_bytes": stack,
        "flash_bytes": sizes["flash"], "harness_flash_bytes": harness,
        "flash_bytes_without_harness": sizes["flash"] - harness, "flash_cost_model_total_bytes": cost.flash_bytes,
        "flash_vs_cost_model_total": (sizes["flash"] - harness) / cost.flash_bytes,
        "ram_bytes_with_stack": ram, "audio_hop_buffer_bytes": audio,
        "ram_bytes_without_audio_buffer": ram - audio, "ram_cost_model_total_bytes": cost.ram_bytes,
        "ram_vs_cost_model_total": (ram - audio) / cost.ram_bytes,
        "ram_within_cost_model_total": ram - audio <= cost.ram_bytes,
        "flash_within_cost_model_total": sizes["flash"] - harness <= cost.flash_bytes,
        "model_instructions_per_inference": int(np.median(insn)),
        "model_instructions_predicted": round(cost.instructions_per_window),
        "frontend_instructions_per_frame_predicted": round(cost.chip.frontend_instructions_per_frame),
        "frontend_instructions_per_frame_max": int(tags["fe"]["frame_max"]),
        "frontend_instructions_per_frame_mean": (int(tags["fe"]["frame_total"]) / frames) if frames else None,
    }
