"""Regenerate ``codesize.json``: what each CMSIS-NN entry point links, per function, from linker maps.

For every configuration: one ELF per op's entry points of its library (`KernelLibrary.entry_points`; a stub that only
takes the entry points' addresses, linked with ``--gc-sections``), whose map file lists every input
section the group pulls in (object, section, size); a base ELF (the stub alone) is subtracted. Each
input section is recorded as ``object(section)`` with its size rounded up to 4 bytes (the largest
alignment of these sections), so sums bound what the linker lays out. Also the QEMU verification
harness (startup + semihosting + the model driver around a do-nothing model), to which the exporter
compares its ELF.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from nas.calibrate import kernels, provenance
from nas.cost import cpu
from nas.libraries import library
from nas.export import qemu

_LOCAL = qemu.LOCAL_OBJECT

STUB = """/* code-size stub: keeps the entry points below (and what they reach) and nothing else */
#include "{header}"
typedef void (*nas_fn)(void);
__attribute__((used, section(".isr_vector"))) const nas_fn nas_keep[] = {{{refs}}};
void Reset_Handler(void);
void Reset_Handler(void)
{{
    for (;;)
    {{
    }}
}}
"""

STUB_MODEL_H = """#ifndef NAS_MODEL_H
#define NAS_MODEL_H
#include <stdint.h>
#define NAS_MODEL_NUM_CLASSES 10
#define NAS_MODEL_INPUT_BYTES (31 * 60)
#define NAS_MODEL_OK 0
int nas_model_invoke(const int8_t *features, int8_t *scores);
#endif
"""
STUB_MODEL_C = """#include "model.h"
int nas_model_invoke(const int8_t *features, int8_t *scores)
{
    (void)features;
    (void)scores;
    return NAS_MODEL_OK;
}
"""


def stub_elf(work: Path, name: str, funcs: tuple[str, ...], lib_srcs, incs, isa: str, opt: str,
             header: str = "arm_nnfunctions.h") -> Path:
    """A stub keeping only `funcs` (declared in `header`) linked with the library `lib_srcs`."""
    src = work / f"{name}.c"
    src.write_text(STUB.format(header=header, refs=", ".join(f"(nas_fn){f}" for f in funcs) or "0"))
    options = replace(qemu.BuildOptions.for_core(isa, opt), cached=lib_srcs, with_harness=False)
    return qemu.build_elf([src], incs, work, name=name, options=options)


def harness(work: Path, isa: str, opt: str) -> tuple[int, list[str]]:
    """FLASH of the exporter's QEMU program (harness + nas_driver.c, one input window) minus the model,
    and its input sections (libc / libgcc functions it shares with the kernels are linked once)."""
    from nas.export.verify import DRIVER_C

    d = work / "harness"
    d.mkdir(parents=True, exist_ok=True)
    (d / "model.h").write_text(STUB_MODEL_H)
    (d / "model.c").write_text(STUB_MODEL_C)
    elf = qemu.build_elf([d / "model.c", DRIVER_C], [d], d, {"NAS_DRIVER_QEMU": None, "NAS_DRIVER_MAX_INPUTS": 1},
                         name=f"harness_{isa}_{opt}", options=qemu.BuildOptions.for_core(isa, opt))
    fp = qemu.map_footprints(elf.with_suffix(".map"), stubs=True)
    stub = sum(size for key, size in fp.items() if re.match(r"\d{4}_model\.o\(", key))
    return qemu.elf_sizes(elf)["flash"] - stub, sorted(k for k in fp if not _LOCAL.match(k))


def measure_config(cfg, roots, work: Path) -> dict:
    lib, isa, opt = cfg
    d = work / "codesize" / f"{lib}_{isa}_{opt}"
    d.mkdir(parents=True, exist_ok=True)
    srcs, incs = library(lib).sources(roots[lib])
    entry_points = {op: library(lib).entry_points(op) for op in library(lib).ops}
    base = set(qemu.map_footprints(stub_elf(d, "base", (), srcs, incs, isa, opt).with_suffix(".map")))
    symbols: dict[str, int] = {}
    groups: dict[str, list[str]] = {}
    for op, funcs in entry_points.items():
        fp = qemu.map_footprints(stub_elf(d, op, funcs, srcs, incs, isa, opt).with_suffix(".map"))
        keys = sorted(k for k in fp if k not in base)
        groups[op] = keys
        symbols.update({k: fp[k] for k in keys})
    every = stub_elf(d, "all", tuple(f for fs in entry_points.values() for f in fs), srcs, incs, isa, opt)
    base_flash = qemu.elf_sizes(d / "base.elf")["flash"]
    linked = qemu.elf_sizes(every)["flash"] - base_flash
    harness_bytes, harness_symbols = harness(work, isa, opt)
    return {"library": provenance.library_version(lib, roots[lib]), "cflags": provenance.cflags(isa, opt),
            "symbols": symbols, "groups": groups, "harness_bytes": harness_bytes, "harness_symbols": harness_symbols,
            "check_all_groups": {"linked_bytes": linked, "sum_of_symbols": sum(symbols.values())}}


def regenerate(cfgs, roots, work: Path, stamp: str, previous: Path | None = None) -> dict:
    import json

    old = json.loads(previous.read_text()) if previous and previous.is_file() else {}
    data = {"format": 1, "generated": stamp, "tool": "python -m nas.calibrate", **provenance.toolchain(),
            "measured": "GNU ld map files of stubs linking each entry-point group with --gc-sections; "
                        "input sections rounded up to 4 bytes",
            "configs": dict(old.get("configs", {}))}
    for cfg in cfgs:
        key = cpu.config_key(*cfg)
        entry = measure_config(cfg, roots, work)
        entry["glue"] = data["configs"].get(key, {}).get("glue", {})
        data["configs"][key] = entry
        chk = entry["check_all_groups"]
        print(f"{key}: kernels {chk['sum_of_symbols']:,} B (linked together: {chk['linked_bytes']:,} B), "
              f"harness {entry['harness_bytes']:,} B", flush=True)
    return data
