"""nas.export.qemu + csrc/qemu_m4: bare-metal mps2-an386 harness (semihosting I/O, exit codes,
SysTick instruction counting, FPU, faults, stack watermark, link-time memory limits)."""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from nas.export import qemu

PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include "qemu_harness.h"

static uint8_t inbuf[4096];
static volatile float fa = 1.5f, fb = 2.25f;
static int32_t data_word = 12345;          /* .data */
static const char tag[] = "rodata-string"; /* .rodata */

static uint32_t recurse(uint32_t n) { volatile uint8_t pad[64]; pad[0] = (uint8_t)n; return n ? recurse(n - 1) + pad[0] : 0; }

int main(void)
{
    /* measured before anything else: the counter must be valid right after reset */
    uint64_t f0 = qh_insn_count();
    __asm__ volatile("mov r0, %0\n1:\n\tsubs r0, #1\n\tbne 1b" : : "r"(1000) : "r0", "cc");
    uint64_t f1 = qh_insn_count();
    int32_t n = qh_read_input(inbuf, sizeof inbuf);
    char mode = n > 0 ? (char)inbuf[0] : 'n';
    if (mode == 'f') {
        __builtin_trap();                 /* UDF -> HardFault */
    }
    if (mode == 'l') {
        for (;;) { }
    }
    qh_puts("hello from the M4\n");
    qh_report_int("insn", "first", (int64_t)(f1 - f0));
    qh_report_int("int", "insize", qh_input_size());
    qh_report_hex("echo", inbuf, n > 0 ? (uint32_t)n : 0u);
    uint64_t t0 = qh_insn_count();
    __asm__ volatile("mov r0, %0\n1:\n\tsubs r0, #1\n\tbne 1b" : : "r"(100000) : "r0", "cc");
    uint64_t t1 = qh_insn_count();
    qh_report_int("insn", "loop", (int64_t)(t1 - t0));
    t0 = qh_insn_count();
    __asm__ volatile("mov r0, %0\n1:\n\tsubs r0, #1\n\tbne 1b" : : "r"(20000000) : "r0", "cc");
    t1 = qh_insn_count();
    qh_report_int("insn", "long", (int64_t)(t1 - t0));
    qh_report_int("int", "float", (int64_t)(fa * fb * 1000.0f));
    qh_report_int("int", "data", data_word);
    qh_report_int("int", "recurse", recurse(100));
    qh_report_int("int", "stack", qh_stack_used());
    printf("printf %d %s\n", 42, tag);
    return 7;
}
"""


@pytest.fixture(scope="module")
def toolchain():
    tc = qemu.find_toolchain()
    if tc is None:
        pytest.skip(f"Cortex-M4 toolchain unavailable: {qemu.toolchain_problem()}")
    return tc


@pytest.fixture(scope="module")
def program(toolchain, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("qh")
    src = d / "prog.c"
    src.write_text(PROGRAM)
    return qemu.build_elf([src], [], d / "build",
                          options=qemu.BuildOptions(cflags=("-Wall", "-Wextra", "-Werror"), toolchain=toolchain))


def test_find_toolchain_consistent():
    tc = qemu.find_toolchain()
    assert (tc is None) == (qemu.toolchain_problem() is not None)
    if tc is not None:
        assert Path(tc.gcc).exists() and Path(tc.qemu).exists()


def test_run_reports_output_exit_code_and_counts(program):
    text, code = qemu.run_elf(program, b"n-some-input-\x00\xff", timeout=60)
    assert code == 7, text
    assert "hello from the M4" in text
    tags = qemu.parse_tagged(text)
    assert tags["int"]["insize"] == 15
    assert tags["hex"]["echo"] == b"n-some-input-\x00\xff"
    # loop = 2 instructions per iteration; SysTick resolution 40 instructions plus call overhead
    assert abs(tags["insn"]["first"] - 2_000) <= 120, tags["insn"]
    assert abs(tags["insn"]["loop"] - 200_000) <= 120, tags["insn"]
    assert abs(tags["insn"]["long"] - 40_000_000) <= 120, tags["insn"]
    assert tags["int"]["float"] == 3375  # FPU enabled at reset
    assert tags["int"]["data"] == 12345  # .data copied from its load image
    assert tags["int"]["recurse"] == 5050
    assert 100 * 64 < tags["int"]["stack"] < 64 * 1024
    assert "printf 42 rodata-string" in text


def test_systick_wraps_are_counted(toolchain, tmp_path):
    # a 1000-tick SysTick period (40 000 instructions) makes the 40 M instruction loop wrap ~1000 times
    src = tmp_path / "prog.c"
    src.write_text(PROGRAM)
    elf = qemu.build_elf([src], [], tmp_path / "b", defines={"QH_SYSTICK_RELOAD": 999},
                         options=qemu.BuildOptions(toolchain=toolchain))
    text, code = qemu.run_elf(elf, b"n")
    assert code == 7
    insn = qemu.parse_tagged(text)["insn"]
    assert abs(insn["loop"] - 200_000) <= 200
    # each wrap adds the handler's few instructions; a lost wrap would be off by 40 000
    assert 40_000_000 - 40 <= insn["long"] <= 40_000_000 + 20 * 1000, insn


def test_run_is_deterministic(program):
    a = qemu.run_elf(program, b"n")
    b = qemu.run_elf(program, b"n")
    assert a == b


def test_run_without_input_file(program):
    text, code = qemu.run_elf(program)
    assert code == 7
    assert qemu.parse_tagged(text)["int"]["insize"] == -1


def test_fault_exits_with_fault_code(program):
    text, code = qemu.run_elf(program, b"f", timeout=30)
    assert code == qemu.FAULT_EXIT_CODE
    assert "line" in qemu.parse_tagged(text)["fault"], text


def test_timeout_raises(program):
    with pytest.raises(qemu.QemuError, match="timed out"):
        qemu.run_elf(program, b"l", timeout=1.5)


def test_elf_sizes(program, toolchain):
    sizes = qemu.elf_sizes(program)
    assert set(sizes) == {"text", "rodata", "data", "bss", "flash", "ram"}
    assert sizes["text"] > 1000 and sizes["rodata"] > 0 and sizes["data"] >= 4 and sizes["bss"] >= 4096
    assert sizes["flash"] == sizes["text"] + sizes["rodata"] + sizes["data"]
    size_tool = toolchain.size or shutil.which("arm-none-eabi-size")
    if size_tool:
        out = subprocess.run([size_tool, "-B", str(program)], capture_output=True, text=True, check=True).stdout
        text_b, data_b, bss_b = (int(v) for v in out.splitlines()[1].split()[:3])
        assert (text_b, data_b, bss_b) == (sizes["text"] + sizes["rodata"], sizes["data"], sizes["bss"])


def test_memory_limits_fail_the_link(toolchain, tmp_path):
    src = tmp_path / "big.c"
    src.write_text("#include <stdint.h>\nstatic uint8_t big[200 * 1024];\n"
                   "static const uint8_t table[64 * 1024] = {1};\n"
                   "int main(void) { volatile int i = 0; big[i] = table[i]; return big[i]; }\n")
    options = qemu.BuildOptions(toolchain=toolchain)
    elf = qemu.build_elf([src], [], tmp_path / "ok", options=options)
    assert qemu.run_elf(elf)[1] == 1
    with pytest.raises(qemu.BuildError, match="RAM|overflow|region"):
        qemu.build_elf([src], [], tmp_path / "ram", options=replace(options, ram_size=96 * 1024))
    with pytest.raises(qemu.BuildError, match="FLASH|overflow|region"):
        qemu.build_elf([src], [], tmp_path / "flash", options=replace(options, flash_size=32 * 1024))


def test_build_options_are_values():
    """Lists given to BuildOptions are stored as tuples: equal options compare and hash equal."""
    a = qemu.BuildOptions(cflags=["-Wall"], cached=["x.c"], cached_include_dirs=["inc"])
    b = qemu.BuildOptions(cflags=("-Wall",), cached=(Path("x.c"),), cached_include_dirs=(Path("inc"),))
    assert a == b and hash(a) == hash(b)
    assert qemu.BuildOptions.for_core("cortex-m4", "O2") == qemu.BuildOptions()
    m0 = qemu.BuildOptions.for_core("cortex-m0plus", "Os")
    assert (m0.opt, m0.cpu_flags) == ("-Os", qemu.CPU_FLAGS["cortex-m0plus"])


def test_build_error_is_reported(toolchain, tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("int main(void) { return undefined_symbol; }\n")
    with pytest.raises(qemu.BuildError, match="undefined_symbol"):
        qemu.build_elf([src], [], tmp_path / "b", options=qemu.BuildOptions(toolchain=toolchain))


def test_parse_tagged():
    text = "noise\n@insn conv1 1200\n@hex out 00ff7f\n@int name -5\n@note x some words\n@fault exception 3 pc 0x0\n"
    tags = qemu.parse_tagged(text)
    assert tags["insn"]["conv1"] == 1200
    assert tags["hex"]["out"] == b"\x00\xff\x7f"
    assert tags["int"]["name"] == -5
    assert tags["note"]["x"] == "some words"
    assert tags["fault"]["line"].startswith("@fault")


def test_qemu_command_shape(toolchain, tmp_path):
    cmd = qemu.qemu_command(tmp_path / "a.elf")
    joined = " ".join(cmd)
    for part in ("-M mps2-an386", "-nographic", "enable=on,target=native", "-icount shift=0", "-kernel"):
        assert part in joined
