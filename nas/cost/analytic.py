"""Exact int8 cost of an `ArchSpec` on a microcontroller, before any training.

These formulas are the contract with the C exporter: it emits weight arrays, activation arena and
front-end buffers of exactly the sizes computed here.

* FLASH (network): each layer kind's constants (`LayerKind.constants`): int8 weights + int32 bias per
  output channel + int32 multiplier and int32 shift per output channel (per-tensor pair for dense, 8 B).
* FLASH (front-end tables): float32 window, float32 mel coefficients with uint32 position/length per
  band, and the CMSIS-DSP rfft tables for the FFT length (twiddles + bit-reversal).
* RAM (arena): layers run in order; one arena holds the current layer's input at one end, its output at
  the other and its kernel's scratch buffer in the gap, so arena = max over layers of
  input + output + scratch, each rounded up to 4 bytes (a kind of several calls lays its buffers out
  its own way: `LayerKind.arena_bytes`). The first layer reads the front-end's feature buffer
  directly, so its input is not counted twice.
* RAM (front-end): int16 audio frame, float32 FFT input/output, float32 mel energies, int8 features,
  4 bytes of counters.
* Scratch: the buffer sizes of the budget's kernel library (`target.library`, `nas.libraries`) on its
  core (DSP or pure C); CMSIS-NN v7's are deploy notes section 1.5.
* MACs: per window; MAC/s multiplies by windows per second, so window overlap multiplies compute.

Measured on the chip (`nas.cost.chip`, fitted on QEMU counts and linker maps, data in ``data/``):

* FLASH (code): the kernel code the model links, the generated glue and the front-end's code, at the
  budget's optimisation level (``target.opt_level``).
* CPU: instructions per window (the kernel each layer dispatches to + glue), per second of audio (x
  windows per second, + the front-end per frame x frames per second) and the share of the core at
  ``target.clock_hz`` with ``target.cycles_per_instruction`` cycles per instruction (an assumption:
  QEMU counts instructions, not cycles).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nas.arch.spec import ArchSpec, FrontEnd, Layer, Shape
from nas.budget import Budget
from nas.cost.chip import ChipCost, chip_cost
from nas.cost.kernel_choice import Choice
from nas.kinds import KernelCall, kind_of
from nas.kinds.base import align4
from nas.libraries import Kernel, KernelLibrary, library as kernel_library

# CMSIS-DSP arm_common_tables.h: ARMBITREVINDEXTABLE_<L>_TABLE_LENGTH (uint16 entries), by cfft length L.
BITREV_TABLE_LENGTHS = {16: 20, 32: 48, 64: 56, 128: 208, 256: 440, 512: 448, 1024: 1800, 2048: 3808, 4096: 4032}
# ... and ARMBITREVINDEXTABLE_FIXED_<L>_TABLE_LENGTH (the q15 FFT's table).
FIXED_BITREV_TABLE_LENGTHS = {16: 12, 32: 24, 64: 56, 128: 112, 256: 240, 512: 480, 1024: 992, 2048: 1984,
                              4096: 4032}
RFFT_Q15_INSTANCE_BYTES = 24     # sizeof(arm_rfft_instance_q15) on a 32-bit core (not MVE)
FIXED_LOG_TABLE_BYTES = 2 * 128  # int16 log table of nas.arch.fixedfe


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    in_shape: Shape
    out_shape: Shape
    params: int
    macs: int
    weight_bytes: int
    bias_bytes: int
    quant_bytes: int
    in_bytes: int
    out_bytes: int
    scratch_bytes: int        # the largest scratch buffer of its kernels
    arena_bytes: int          # what this layer needs of the arena (its kind's layout)
    calls: tuple[KernelCall, ...] = ()
    kernels: tuple[Kernel, ...] = ()    # the kernel of each call on the budget's core (its library's)
    scratches: tuple[int, ...] = ()     # the scratch bytes of each call's kernel
    instructions: float = 0.0   # measured model: the kernel calls + the generated code around them

    @property
    def flash_bytes(self) -> int:
        return self.weight_bytes + self.bias_bytes + self.quant_bytes

    @property
    def kernel(self) -> str:
        """The kernel names, `+` between the calls of a kind made of several."""
        return "+".join(k.name for k in self.kernels)


def layer_cost(name: str, layer: Layer, in_shape: Shape, out_shape: Shape, lib: KernelLibrary, dsp: bool,
               first: bool, instructions: float = 0.0, choices: tuple[Choice, ...] = ()) -> LayerCost:
    """`choices`: the kernel of each call (`nas.cost.kernel_choice`; default `lib`'s)."""
    kind = kind_of(layer)
    consts = kind.constants(layer, in_shape, out_shape)
    calls = kind.calls(layer, in_shape, out_shape)
    scratches = tuple(k.scratch_bytes for k in choices) or tuple(lib.scratch_bytes(c, dsp) for c in calls)
    kernels = tuple(k.kernel for k in choices) or tuple(lib.kernel(c, dsp) for c in calls)
    return LayerCost(name=name, kind=layer.TYPE, in_shape=in_shape, out_shape=out_shape, params=consts.params,
                     macs=sum(c.macs for c in calls), weight_bytes=consts.weights, bias_bytes=4 * consts.biases,
                     quant_bytes=consts.quant_bytes, in_bytes=int(np.prod(in_shape)), out_bytes=int(np.prod(out_shape)),
                     scratch_bytes=max(scratches), arena_bytes=kind.arena_bytes(calls, scratches, first), calls=calls,
                     kernels=kernels, scratches=scratches, instructions=instructions)


def frontend_table_bytes(fe: FrontEnd, mel_nonzeros: int) -> int:
    """FLASH of the front-end constants: window, sparse mel matrix, CMSIS-DSP rfft tables."""
    if fe.arithmetic == "fixed":
        return _fixed_table_bytes(fe, mel_nonzeros)
    window = 4 * fe.n_fft
    mel = 4 * mel_nonzeros + 2 * 4 * fe.n_mels  # coefficients + uint32 filterPos and filterLengths
    half = fe.n_fft // 2
    rfft = 4 * 2 * half + 2 * BITREV_TABLE_LENGTHS[half] + 4 * fe.n_fft  # cfft twiddles, bitrev, rfft twiddles
    return window + mel + rfft


def _fixed_table_bytes(fe: FrontEnd, mel_nonzeros: int) -> int:
    """q15 window, q15 mel weights + uint16 positions and lengths, the log table, the realCoefA/B
    entries of this length, the arm_rfft_q15 instance; CMSIS-DSP's q15 twiddles and bit reversal."""
    n, half = fe.n_fft, fe.n_fft // 2
    weights = mel_nonzeros + mel_odd_bands(fe)      # bands padded to even lengths
    own = 2 * n + 2 * weights + 2 * 2 * fe.n_mels + FIXED_LOG_TABLE_BYTES + 2 * 2 * n + RFFT_Q15_INSTANCE_BYTES
    return own + 3 * half + 2 * FIXED_BITREV_TABLE_LENGTHS[half]


def frontend_ram_bytes(fe: FrontEnd) -> int:
    """Static front-end buffers: int16 audio frame, float32 FFT in/out, float32 mel, int8 window, and
    two uint16 counters (warm-up pushes, frames in the window). Fixed point: the q15 frame (then int32
    power), the q15 spectrum (2 n_fft), the int8 window, the int16 history of n_fft + lag samples
    (lag = k0 * hop - n_fft, k0 = ceil(n_fft / hop)), one uint16 magnitude per push of a frame and
    three uint16 counters, in a struct of 4-byte alignment."""
    if fe.arithmetic == "fixed":
        k0 = -(-fe.n_fft // fe.hop_length)
        history = k0 * fe.hop_length
        return align4(2 * fe.n_fft + 4 * fe.n_fft + align4(fe.frames * fe.n_mels) + 2 * history + 2 * k0 + 6)
    return (align4(2 * fe.n_fft) + 4 * fe.n_fft + 4 * fe.n_fft + 4 * fe.n_mels
            + align4(fe.frames * fe.n_mels) + 4)


_MEL_NONZEROS: dict[tuple, tuple[int, int]] = {}


def _mel_counts(fe: FrontEnd) -> tuple[int, int]:
    key = (fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.f_max)
    if key not in _MEL_NONZEROS:
        from nas.arch.frontend import mel_filter_tables

        lengths = mel_filter_tables(fe).lengths
        _MEL_NONZEROS[key] = (int(lengths.sum()), int((lengths % 2).sum()))
    return _MEL_NONZEROS[key]


def mel_nonzeros(fe: FrontEnd) -> int:
    """Non-zero weights of the sparse mel filterbank the device stores (memoised: it is per front-end)."""
    return _mel_counts(fe)[0]


def mel_odd_bands(fe: FrontEnd) -> int:
    """Bands of odd length (the fixed front-end pads each with one zero weight)."""
    return _mel_counts(fe)[1]


@dataclass(frozen=True)
class Cost:
    """Whole-model cost; `*_total` include the budget's fixed reserves, as compared with the limits."""

    layers: tuple[LayerCost, ...]
    windows_per_second: float
    arena_bytes: int
    frontend_ram_bytes: int
    frontend_flash_bytes: int          # the front-end's tables (window, mel, FFT)
    reserve_ram_bytes: int
    reserve_flash_bytes: int
    chip: ChipCost
    clock_hz: int
    cycles_per_instruction: float

    @property
    def params(self) -> int:
        return sum(lc.params for lc in self.layers)

    @property
    def macs(self) -> int:
        return sum(lc.macs for lc in self.layers)

    @property
    def macs_per_second(self) -> float:
        return self.macs * self.windows_per_second

    @property
    def network_flash_bytes(self) -> int:
        return sum(lc.flash_bytes for lc in self.layers)

    @property
    def code_bytes(self) -> int:
        """Kernel code + generated glue + front-end code (measured, at the budget's opt level)."""
        return self.chip.kernel_code_bytes + self.chip.glue_bytes + self.chip.frontend_code_bytes

    @property
    def flash_bytes(self) -> int:
        return self.network_flash_bytes + self.frontend_flash_bytes + self.code_bytes + self.reserve_flash_bytes

    @property
    def ram_bytes(self) -> int:
        return self.arena_bytes + self.frontend_ram_bytes + self.reserve_ram_bytes

    @property
    def instructions_per_window(self) -> float:
        return self.chip.instructions_per_window

    @property
    def instructions_per_second(self) -> float:
        """Model and front-end, per second of audio."""
        return self.instructions_per_window * self.windows_per_second + self.chip.frontend_instructions_per_second

    @property
    def cpu_share(self) -> float:
        """Share of the core's cycles, at the budget's clock and cycles per instruction."""
        return self.instructions_per_second * self.cycles_per_instruction / self.clock_hz

    def summary(self) -> dict[str, float]:
        """Flat numbers for trial attributes, CSVs and plots."""
        return {"params": self.params, "macs": self.macs, "macs_per_second": self.macs_per_second,
                "windows_per_second": self.windows_per_second, "ram_bytes": self.ram_bytes,
                "flash_bytes": self.flash_bytes, "arena_bytes": self.arena_bytes,
                "frontend_ram_bytes": self.frontend_ram_bytes, "network_flash_bytes": self.network_flash_bytes,
                "frontend_flash_bytes": self.frontend_flash_bytes, "code_bytes": self.code_bytes,
                "instructions_per_window": self.instructions_per_window,
                "frontend_instructions_per_second": self.chip.frontend_instructions_per_second,
                "instructions_per_second": self.instructions_per_second, "cpu_share": self.cpu_share}

    def usage(self, budget: Budget) -> dict[str, float]:
        """Share of each limit used (1.0 = exactly at the limit); cpu_share only when the budget limits it."""
        lim = budget.limits
        used = {"ram": self.ram_bytes / lim.ram_bytes, "flash": self.flash_bytes / lim.flash_bytes,
                "macs_per_second": self.macs_per_second / lim.macs_per_second}
        if lim.cpu_share is not None:
            used["cpu_share"] = self.cpu_share / lim.cpu_share
        return used

    def violations(self, budget: Budget) -> dict[str, float]:
        """Optuna constraint values: usage - 1, feasible when <= 0, comparable across limits."""
        return {k: v - 1.0 for k, v in self.usage(budget).items()}

    def fits(self, budget: Budget) -> bool:
        return all(v <= 0 for v in self.violations(budget).values())


def estimate(spec: ArchSpec, budget: Budget, library: str | None = None, own: bool = True) -> Cost:
    """The cost of `spec` on `budget`, its kernels and code those of `library` (default: the budget's
    `target.library`) and, where they are faster, the project's own (`own`; `nas.cost.kernel_choice`)."""
    t = budget.target
    lib = kernel_library(library or t.library)
    fe = spec.frontend
    nnz = mel_nonzeros(fe)
    chip = chip_cost(spec, t.core, t.dsp, t.fpu, t.opt_level, lib.name, nnz, own, t.library)
    layers = [layer_cost(name, layer, i_s, o_s, lib, t.dsp, i == 0, chip.layer_instructions[i], chip.choices[i])
              for i, (name, layer, (i_s, o_s)) in enumerate(zip(spec.layer_names(), spec.layers, spec.layer_shapes()))]
    return Cost(layers=tuple(layers), windows_per_second=fe.windows_per_second,
                arena_bytes=max(lc.arena_bytes for lc in layers), frontend_ram_bytes=frontend_ram_bytes(fe),
                frontend_flash_bytes=frontend_table_bytes(fe, nnz),
                reserve_ram_bytes=budget.reserves.ram_bytes, reserve_flash_bytes=budget.reserves.flash_bytes,
                chip=chip, clock_hz=t.clock_hz, cycles_per_instruction=t.cycles_per_instruction)


# -- report -----------------------------------------------------------------------------------------

def _shape(s: Shape) -> str:
    return "x".join(map(str, s))


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} kB"


def _layer_rows(spec: ArchSpec, cost: Cost) -> list[str]:
    rows = [("layer", "type", "in", "out", "params", "MACs", "kernel", "insn", "insn/MAC", "FLASH B", "scratch B",
             "RAM B")]
    for layer, lc in zip(spec.layers, cost.layers):
        rows.append((lc.name, kind_of(layer).describe(layer), _shape(lc.in_shape), _shape(lc.out_shape), f"{lc.params:,}",
                     f"{lc.macs:,}", lc.kernel, f"{lc.instructions:,.0f}",
                     f"{lc.instructions / lc.macs:.2f}" if lc.macs else "", f"{lc.flash_bytes:,}",
                     f"{lc.scratch_bytes:,}", f"{lc.arena_bytes:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    left = (0, 1, 6)
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[j]) if j in left else c.rjust(widths[j]) for j, c in enumerate(r)))
        if i == 0:
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    return lines


FRONTEND_KINDS = {"float": "float: CMSIS-DSP f32", "fixed": "fixed point: q15 FFT, integer mel and log"}


def _totals(cost: Cost, budget: Budget, fe: FrontEnd) -> list[str]:
    c = cost.chip
    addons = sorted({k.library for layer in c.choices for k in layer} - {c.library})
    model = (f"{c.library} kernels" + "".join(f" + {a} kernels where faster" for a in addons) + f", {c.isa} -{c.opt}"
             + (f" ({c.note})" if c.note else ""))
    return [f"params {cost.params:,}   MACs/window {cost.macs:,}   MAC/s {cost.macs_per_second:,.0f}",
            f"CPU   {cost.instructions_per_window:,.0f} instructions/window x {cost.windows_per_second:.2f} windows/s "
            f"+ front-end {c.frontend_instructions_per_second:,.0f}/s = {cost.instructions_per_second:,.0f} "
            f"instructions per second of audio",
            f"      = {cost.cpu_share:.1%} of {budget.target.clock_hz / 1e6:g} MHz at "
            f"{cost.cycles_per_instruction:g} cycles/instruction (assumed); measured model: {model}",
            f"      front-end ({FRONTEND_KINDS[fe.arithmetic]}): {c.frontend_instructions_per_frame:,.0f} "
            f"instructions/frame x {fe.sample_rate / fe.hop_length:.2f} frames/s",
            f"FLASH {cost.flash_bytes:,} B = network {cost.network_flash_bytes:,} + glue {c.glue_bytes:,} + kernels "
            f"{c.kernel_code_bytes:,} + front-end tables {cost.frontend_flash_bytes:,} + front-end code "
            f"{c.frontend_code_bytes:,} + reserves {cost.reserve_flash_bytes:,}",
            f"RAM   {cost.ram_bytes:,} B = arena {cost.arena_bytes:,} + front-end buffers "
            f"{cost.frontend_ram_bytes:,} + reserves {cost.reserve_ram_bytes:,}"]


def _checks(cost: Cost, budget: Budget) -> list[str]:
    """One row per limit: used, limit, used as a share of the limit, and how far over (the CPU share's
    excess in percentage points, so a share of a share never reads as a second percentage)."""
    lim = budget.limits
    mega = lambda n: f"{n / 1e6:.2f} M"  # noqa: E731
    checks = [("RAM", cost.ram_bytes, lim.ram_bytes, _kb, _kb), ("FLASH", cost.flash_bytes, lim.flash_bytes, _kb, _kb),
              ("MAC/s", cost.macs_per_second, lim.macs_per_second, mega, mega)]
    if lim.cpu_share is not None:
        checks.append(("CPU", cost.cpu_share, lim.cpu_share, lambda n: f"{n:.1%}", lambda n: f"{100 * n:.1f} points"))
    lines = [f"{'':<6}{'used':>12}    {'limit':>10}  {'of limit':>8}"]
    for label, used, limit, fmt, excess in checks:
        verdict = "ok" if used <= limit else f"OVER by {excess(used - limit)} ({used / limit - 1:+.0%})"
        lines.append(f"{label:<6}{fmt(used):>12} of {fmt(limit):>10}  {used / limit:8.1%}  {verdict}")
    return lines


def report(spec: ArchSpec, budget: Budget, cost: Cost | None = None) -> str:
    cost = cost or estimate(spec, budget)
    fe = spec.frontend
    lines = [f"{spec.name} on {budget.name}",
             f"front-end: {fe.sample_rate} Hz, FFT {fe.n_fft}/hop {fe.hop_length}, {fe.n_mels} mels, "
             f"{fe.frames} frames per window ({fe.window_seconds:.2f} s), overlap {fe.overlap:.0%} "
             f"-> {cost.windows_per_second:.2f} windows/s", "",
             *_layer_rows(spec, cost), "", *_totals(cost, budget, spec.frontend), "", *_checks(cost, budget),
             "fits the budget" if cost.fits(budget) else "does NOT fit the budget"]
    if cost.chip.unmeasured_core:
        lines.append(f"WARNING: no kernel library here is measured on {budget.target.core}: its CPU figures and "
                     f"kernel code size are the {cost.chip.isa} measurement's ({cost.chip.library} kernels), a proxy; "
                     f"RAM, the network's FLASH and MACs are exact")
    return "\n".join(lines)
