"""Build and run bare-metal Cortex-M4 programs under QEMU (mps2-an386) and measure them.

Why: exported models must be checked on the real instruction set (DSP/SIMD code paths) and their
cost measured deterministically without hardware.  QEMU's ``mps2-an386`` is a Cortex-M4F board;
under ``-icount shift=0`` its SysTick counts exactly one tick per 40 retired instructions, which
the harness in ``csrc/qemu_m4`` turns into an instruction counter (shared deploy.md section 7).

Typical use (what the code generator does)::

    tc = find_toolchain()                      # None when arm-none-eabi-gcc/qemu are missing
    srcs, incs = library("portable").sources()
    elf = build_elf([*srcs, Path("model.c"), Path("main.c")],
                    [*incs, Path("gen")], Path("build"), defines=["NDEBUG"],
                    options=BuildOptions(flash_size=1024 * 1024, ram_size=96 * 1024))
    text, code = run_elf(elf, input_bytes=features.tobytes())
    tags = parse_tagged(text)                  # {"insn": {"model": 1234560}, "hex": {...}}
    sizes = elf_sizes(elf)                     # {"text":…, "rodata":…, "data":…, "bss":…}

The program includes ``qemu_harness.h``, defines ``int main(void)`` (its return value becomes the
exit code), reads its input with ``qh_read_input`` and prints with ``qh_report_int`` /
``qh_report_hex`` (lines ``@<tag> <name> <value>``) and ``qh_insn_count()``.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from nas.libraries.base import ARM_CPU_FLAGS, ARM_EMULATOR

__all__ = [
    "CSRC_DIR",
    "HARNESS_DIR",
    "LINKER_SCRIPT",
    "M4_CFLAGS",
    "CPU_FLAGS",
    "QEMU_MACHINE",
    "INSN_PER_TICK",
    "FAULT_EXIT_CODE",
    "INPUT_FILE",
    "Toolchain",
    "BuildOptions",
    "BuildError",
    "QemuError",
    "find_toolchain",
    "toolchain_problem",
    "harness_sources",
    "build_elf",
    "qemu_command",
    "run_elf",
    "elf_sizes",
    "map_sections",
    "map_footprints",
    "parse_tagged",
]

CSRC_DIR = Path(__file__).resolve().parent / "csrc"
HARNESS_DIR = CSRC_DIR / "qemu_m4"
LINKER_SCRIPT = HARNESS_DIR / "mps2_an386.ld"

# Instruction sets the cost model is measured on (the kernel libraries' flags, `nas.libraries`). The
# mps2-an386 core is a Cortex-M4F, which also runs ARMv7-M code without DSP (cortex-m3) and ARMv6-M code
# (cortex-m0plus), so one board counts all three.
CPU_FLAGS: dict[str, tuple[str, ...]] = ARM_CPU_FLAGS
M4_CFLAGS: tuple[str, ...] = CPU_FLAGS["cortex-m4"]
QEMU_MACHINE = ARM_EMULATOR[1]
INSN_PER_TICK = 40  # SysTick on the 25 MHz core clock, 1 instruction per ns under -icount shift=0
FAULT_EXIT_CODE = 86  # QH_FAULT_EXIT_CODE in qemu_harness.h
INPUT_FILE = "qh_input.bin"  # QH_INPUT_FILE in qemu_harness.h


class BuildError(RuntimeError):
    """Compiling or linking failed; the message holds the command and compiler output."""


class QemuError(RuntimeError):
    """QEMU could not run the program or it ran past the timeout."""


@dataclass(frozen=True)
class Toolchain:
    """Paths of the cross tools; ``size`` is optional (elf_sizes parses the ELF itself)."""

    gcc: str
    qemu: str
    size: str | None = None


@lru_cache(maxsize=1)
def _probe() -> tuple[Toolchain | None, str | None]:
    gcc = shutil.which("arm-none-eabi-gcc")
    qemu = shutil.which("qemu-system-arm")
    if gcc is None:
        return None, "arm-none-eabi-gcc not found on PATH (install gcc-arm-none-eabi)"
    if qemu is None:
        return None, "qemu-system-arm not found on PATH (install qemu-system-arm)"
    with tempfile.TemporaryDirectory(prefix="qh_probe_") as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("#include <string.h>\nint probe(char *d, const char *s) { return (int)strlen(strcpy(d, s)); }\n")
        res = subprocess.run([gcc, *M4_CFLAGS, "-c", str(src), "-o", str(Path(tmp) / "probe.o")],
                             capture_output=True, text=True)
        if res.returncode != 0:
            last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "unknown error"
            return None, f"arm-none-eabi-gcc cannot compile against newlib (install libnewlib-arm-none-eabi): {last}"
    res = subprocess.run([qemu, "-machine", "help"], capture_output=True, text=True)
    if QEMU_MACHINE not in res.stdout:
        return None, f"{qemu} has no {QEMU_MACHINE} machine"
    return Toolchain(gcc=gcc, qemu=qemu, size=shutil.which("arm-none-eabi-size")), None


def find_toolchain() -> Toolchain | None:
    """The cross compiler (with newlib) and QEMU with mps2-an386, or None if any is missing."""
    return _probe()[0]


def toolchain_problem() -> str | None:
    """Why :func:`find_toolchain` returns None (a one-line reason for skips), else None."""
    return _probe()[1]


def _require(toolchain: Toolchain | None) -> Toolchain:
    tc = toolchain or find_toolchain()
    if tc is None:
        raise BuildError(toolchain_problem() or "no ARM toolchain")
    return tc


def harness_sources() -> list[Path]:
    """C files of the harness (startup + semihosting/SysTick runtime); the program adds main()."""
    return [HARNESS_DIR / "startup.c", HARNESS_DIR / "harness.c"]


def _define_flags(defines: Iterable[str] | Mapping[str, object]) -> list[str]:
    if isinstance(defines, Mapping):
        return [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in defines.items()]
    return [f"-D{d}" for d in defines]


OBJ_CACHE = Path(tempfile.gettempdir()) / "nas_m4_objcache"


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:24]


def cached_object(cache: Path, key: str, src: Path, compile_to: Callable[[Path], None]) -> Path:
    """`src` compiled once per its content and `key` (compiler, flags, headers) into `cache`; builders
    running at once each compile to a private temporary and rename, so none sees a partial object."""
    obj = cache / f"{src.stem}-{digest(key.encode(), src.read_bytes())}.o"
    if not obj.exists():
        tmp = obj.with_name(f"{obj.stem}.{os.getpid()}.{threading.get_ident()}.tmp.o")
        compile_to(tmp)
        os.replace(tmp, obj)
    return obj


@lru_cache(maxsize=8)
def _compiler_version(gcc: str) -> bytes:
    return subprocess.run([gcc, "--version"], capture_output=True).stdout


@dataclass(frozen=True)
class BuildOptions:
    """How :func:`build_elf` builds an ELF, apart from what it builds (sources, include dirs, defines).

    ``cpu_flags`` (see ``CPU_FLAGS``) and ``opt`` pick the core and optimisation level; ``cflags`` come
    after the defines on every compile line, ``ldflags`` before ``-lm`` on the link line.
    ``flash_size``/``ram_size``/``min_stack`` (bytes) make the link fail when the program does not fit
    (e.g. 1 MiB / 96 KiB for an STM32L476).  ``cached`` sources (libraries) are compiled once per
    compiler, flags, source and headers content into ``OBJ_CACHE``, with only ``cached_include_dirs``
    (default: all include dirs) on their include path.  ``jobs`` compiles run at once (default: one per
    CPU); ``timeout`` (seconds) bounds each compiler run; ``toolchain`` defaults to :func:`find_toolchain`.
    Sequences are stored as tuples, so options can be shared and compared.
    """

    opt: str = "-O2"
    cpu_flags: tuple[str, ...] = M4_CFLAGS
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    flash_size: int | None = None
    ram_size: int | None = None
    min_stack: int | None = None
    with_harness: bool = True
    jobs: int | None = None
    toolchain: Toolchain | None = None
    timeout: float = 600.0
    cached: tuple[Path, ...] = ()
    cached_include_dirs: tuple[Path, ...] | None = None

    def __post_init__(self) -> None:
        for key in ("cpu_flags", "cflags", "ldflags"):
            object.__setattr__(self, key, tuple(str(f) for f in getattr(self, key)))
        object.__setattr__(self, "cached", tuple(Path(s) for s in self.cached))
        if self.cached_include_dirs is not None:
            object.__setattr__(self, "cached_include_dirs", tuple(Path(d) for d in self.cached_include_dirs))

    @classmethod
    def for_core(cls, isa: str, opt: str) -> BuildOptions:
        """Defaults for instruction set `isa` (a ``CPU_FLAGS`` key) at level `opt` ("O2", "Os", ...)."""
        return cls(opt=f"-{opt}", cpu_flags=CPU_FLAGS[isa])


def build_elf(sources: Sequence[str | os.PathLike], include_dirs: Sequence[str | os.PathLike],
              out_dir: str | os.PathLike, defines: Iterable[str] | Mapping[str, object] = (), *,
              name: str = "app", options: BuildOptions = BuildOptions()) -> Path:
    """Compile ``sources`` + ``options.cached`` (+ the harness) for a Cortex-M, link ``out_dir/<name>.elf``.

    Compile lines: ``cpu_flags``, ``opt``, ``-std=c99 -ffunction-sections -fdata-sections -g``, ``-I``
    for each include dir and the harness dir, ``-D`` for ``defines`` (strings "N" / "N=V" or a mapping),
    then ``cflags`` (:class:`BuildOptions`).  Objects are compiled in parallel; linking uses newlib-nano,
    ``--gc-sections`` and the mps2-an386 script.  A map file ``<name>.map`` is written next to the ELF.
    Raises :class:`BuildError`.
    """
    o = options
    tc = _require(o.toolchain)
    out = Path(out_dir)
    srcs = [Path(s) for s in sources] + (harness_sources() if o.with_harness else [])
    head = [tc.gcc, *o.cpu_flags, o.opt, "-std=c99", "-ffunction-sections", "-fdata-sections", "-g"]
    tail = [f"-I{HARNESS_DIR}", *_define_flags(defines), *o.cflags]
    lib_dirs = list(include_dirs if o.cached_include_dirs is None else o.cached_include_dirs)
    objs = _compile_objects(srcs, out / f"{name}.obj", head + [f"-I{Path(d)}" for d in include_dirs] + tail,
                            list(o.cached), head + [f"-I{Path(d)}" for d in lib_dirs] + tail, lib_dirs,
                            tc.gcc, o.jobs, o.timeout)
    elf = out / f"{name}.elf"
    link = [tc.gcc, *o.cpu_flags, o.opt, *map(str, objs), "-T", str(LINKER_SCRIPT), "-nostartfiles",
            "--specs=nano.specs", "-Wl,--gc-sections", f"-Wl,-Map={out / (name + '.map')}"]
    for sym, val in (("QH_FLASH_SIZE", o.flash_size), ("QH_RAM_SIZE", o.ram_size), ("QH_MIN_STACK", o.min_stack)):
        if val is not None:
            link.append(f"-Wl,--defsym={sym}={int(val)}")
    link += list(o.ldflags) + ["-lm", "-o", str(elf)]
    res = subprocess.run(link, capture_output=True, text=True, timeout=o.timeout)
    if res.returncode != 0:
        raise BuildError(f"link failed: {' '.join(link)}\n{res.stderr}")
    return elf


def _compile(flags: Sequence[str], src: Path, obj: Path, timeout: float) -> None:
    cmd = [*flags, "-c", str(src), "-o", str(obj)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise BuildError(f"compile failed: {' '.join(cmd)}\n{res.stderr}")


def _compile_objects(srcs: list[Path], obj_dir: Path, flags: list[str], lib: list[Path], lib_flags: list[str],
                     lib_dirs: list, gcc: str, jobs: int | None, timeout: float) -> list[Path]:
    """Objects of `srcs` (compiled into obj_dir) and of `lib` (from OBJ_CACHE, compiled on a miss)."""
    obj_dir.mkdir(parents=True, exist_ok=True)
    if lib:
        headers = sorted({h for d in [*lib_dirs, HARNESS_DIR] for h in Path(d).rglob("*.h")})
        common = digest(_compiler_version(gcc), " ".join(lib_flags).encode(), *[h.read_bytes() for h in headers])
        OBJ_CACHE.mkdir(parents=True, exist_ok=True)

    def compile_one(item: tuple[int, Path]) -> Path:
        idx, src = item
        obj = obj_dir / f"{idx:04d}_{src.stem}.o"
        _compile(flags, src, obj, timeout)
        return obj

    def compile_cached(src: Path) -> Path:
        return cached_object(OBJ_CACHE, common, src, lambda tmp: _compile(lib_flags, src, tmp, timeout))

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        return list(pool.map(compile_one, enumerate(srcs))) + list(pool.map(compile_cached, lib))


def qemu_command(elf: str | os.PathLike, output_file: str | os.PathLike | None = None,
                 toolchain: Toolchain | None = None) -> list[str]:
    """The QEMU command line; with ``output_file`` semihosting output goes there instead of stderr."""
    tc = _require(toolchain)
    cmd = [tc.qemu, "-M", QEMU_MACHINE, "-nographic"]
    semi = "enable=on,target=native"
    if output_file is not None:
        path = str(output_file).replace(",", ",,")
        cmd += ["-chardev", f"file,id=qhout,path={path}"]
        semi += ",chardev=qhout"
    cmd += ["-semihosting-config", semi, "-icount", "shift=0", "-kernel", str(Path(elf).resolve())]
    return cmd


def run_elf(elf: str | os.PathLike, input_bytes: bytes | None = None, timeout: float = 60.0, *,
            toolchain: Toolchain | None = None) -> tuple[str, int]:
    """Run an ELF under QEMU; returns (program output text, exit code).

    ``input_bytes`` is offered to the program as the host file ``qh_input.bin`` (read with
    ``qh_read_input``).  Exit code ``FAULT_EXIT_CODE`` (86) means the core faulted (an ``@fault``
    line says where).  Raises :class:`QemuError` on timeout or when QEMU itself fails to start.
    """
    tc = _require(toolchain)
    with tempfile.TemporaryDirectory(prefix="qh_run_") as tmp:
        work = Path(tmp)
        if input_bytes is not None:
            (work / INPUT_FILE).write_bytes(bytes(input_bytes))
        out_file = work / "qh_output.txt"
        cmd = qemu_command(elf, out_file, tc)
        try:
            res = subprocess.run(cmd, cwd=work, stdin=subprocess.DEVNULL, capture_output=True,
                                 timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            partial = out_file.read_text(errors="replace") if out_file.exists() else ""
            raise QemuError(f"QEMU timed out after {timeout} s running {elf}; output so far:\n{partial[-2000:]}") from exc
        text = out_file.read_text(errors="replace") if out_file.exists() else ""
        err = res.stderr.decode(errors="replace")
        if not text and res.returncode != 0 and "qemu-system-arm:" in err:
            raise QemuError(f"QEMU failed (exit {res.returncode}): {err.strip()}")
        return text, res.returncode


def elf_sizes(elf: str | os.PathLike) -> dict[str, int]:
    """Section-size summary of an ELF32 image from its section headers.

    ``text`` = allocated executable sections, ``rodata`` = other allocated read-only sections,
    ``data`` = initialised writable (costs flash and RAM), ``bss`` = zero-initialised writable;
    ``flash`` = text + rodata + data, ``ram`` = data + bss (stack and heap not included).
    """
    raw = Path(elf).read_bytes()
    if raw[:4] != b"\x7fELF" or raw[4] != 1:
        raise ValueError(f"{elf} is not an ELF32 file")
    endian = "<" if raw[5] == 1 else ">"
    shoff, = struct.unpack_from(endian + "I", raw, 0x20)
    shentsize, shnum = struct.unpack_from(endian + "HH", raw, 0x2E)
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    shf_write, shf_alloc, shf_exec, sht_nobits = 0x1, 0x2, 0x4, 8
    for i in range(shnum):
        _name, sh_type, flags, _addr, _off, size = struct.unpack_from(endian + "IIIIII", raw, shoff + i * shentsize)
        if not flags & shf_alloc or size == 0:
            continue
        if flags & shf_exec:
            sizes["text"] += size
        elif flags & shf_write:
            sizes["bss" if sh_type == sht_nobits else "data"] += size
        else:
            sizes["rodata"] += size
    sizes["flash"] = sizes["text"] + sizes["rodata"] + sizes["data"]
    sizes["ram"] = sizes["data"] + sizes["bss"]
    return sizes


FLASH_SECTIONS = (".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".data")
_HASHED = re.compile(r"-[0-9a-f]{24}\.o$")     # OBJ_CACHE's content hash in an object's name


def _object_name(path: str) -> str:
    """'libc_nano.a(lib_a-memcpy.o)' / 'arm_convolve_s8.o' (cache hash and folders dropped)."""
    name = path.rsplit("/", 1)[-1]
    return _HASHED.sub(".o", name)


def map_sections(map_path: str | os.PathLike) -> list[tuple[str, str, int, str]]:
    """(output section, input section, size, object) of every non-empty allocated input section in the
    FLASH output sections of a GNU ld map."""
    text = Path(map_path).read_text()
    text = text[text.index("Linker script and memory map"):]
    out: list[tuple[str, str, int, str]] = []
    current = None
    pending = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            current = line.split()[0] if line.split()[0] in FLASH_SECTIONS else None
            continue
        if current is None:
            continue
        parts = line.split()
        if pending is not None:
            if len(parts) >= 3 and parts[0].startswith("0x") and parts[1].startswith("0x"):
                size = int(parts[1], 16)
                if size:
                    out.append((current, pending, size, _object_name(" ".join(parts[2:]))))
            pending = None
            continue
        if line.startswith(" ") and not line.startswith("  ") and parts and parts[0].startswith("."):
            if len(parts) >= 4 and parts[1].startswith("0x"):
                size = int(parts[2], 16)
                if size:
                    out.append((current, parts[0], size, _object_name(" ".join(parts[3:]))))
            elif len(parts) == 1:
                pending = parts[0]
    return out


LOCAL_OBJECT = re.compile(r"^\d{4}_")     # objects build_elf compiles in place (not OBJ_CACHE ones)


def map_footprints(map_path: str | os.PathLike, stubs: bool = False) -> dict[str, int]:
    """{'object(section)': size rounded up to 4 (the largest alignment of these sections)} for the FLASH
    input sections of a build_elf map; without the objects compiled in place unless `stubs`."""
    fp: dict[str, int] = {}
    for _out, sec, size, obj in map_sections(map_path):
        if not stubs and LOCAL_OBJECT.match(obj):
            continue
        key = f"{obj}({sec})"
        fp[key] = fp.get(key, 0) + (size + 3) // 4 * 4
    return fp


def parse_tagged(text: str) -> dict[str, dict[str, object]]:
    """Collect ``@<tag> <name> <value>`` lines: ``{tag: {name: value}}``.

    ``@hex`` values become ``bytes``, values that parse as integers become ``int``, anything else
    stays a string (``@fault`` lines are kept whole under ``tags["fault"]["line"]``).
    """
    tags: dict[str, dict[str, object]] = {}
    for line in text.splitlines():
        if not line.startswith("@"):
            continue
        parts = line[1:].split(None, 2)
        if parts and parts[0] == "fault":
            tags.setdefault("fault", {})["line"] = line
            continue
        if len(parts) < 2:
            continue
        tag, name = parts[0], parts[1]
        value_text = parts[2].strip() if len(parts) > 2 else ""
        value: object
        if tag == "hex":
            value = bytes.fromhex(value_text)
        else:
            try:
                value = int(value_text)
            except ValueError:
                value = value_text
        tags.setdefault(tag, {})[name] = value
    return tags
