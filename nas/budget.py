"""Hardware budgets: what share of a microcontroller the model may use.

A team retargets the search by copying one file under `budgets/` and editing the numbers; every key
is documented in `budgets/stm32l476.yaml`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nas.core import config
from nas.core.config import bounded
from nas.libraries import DEFAULT as DEFAULT_LIBRARY, LIBRARIES

_MAX_BYTES = 1 << 32  # no microcontroller has 4 GiB of anything: a larger number is a typo


@dataclass(frozen=True)
class Target:
    """The core the model runs on and the kernel library that runs the layers there; `dsp` selects the
    library's DSP (SIMD) code paths and scratch sizes."""

    core: str
    clock_hz: int = bounded(ge=1_000_000, le=2_000_000_000, doc="core clock in Hz")
    dsp: bool = bounded(doc="Arm DSP extension (SMLAD/SXTB16): CMSIS-NN DSP kernels and their scratch buffers")
    fpu: bool = bounded(doc="single-precision FPU: the float front-end runs in hardware")
    opt_level: Literal["O2", "Os", "O3"] = bounded("O2", doc="the compiler optimisation level the firmware is "
                                                          "built with: the measured instructions and code size")
    cycles_per_instruction: float = bounded(1.3, gt=0.0, le=20.0, doc="cycles per executed instruction assumed "
                                            "when turning instructions into CPU time (flash wait states, stalls)")
    library: str = bounded(DEFAULT_LIBRARY, doc="the kernel library the model is built with: "
                           + " or ".join(LIBRARIES))

    def __post_init__(self) -> None:
        if self.library not in LIBRARIES:
            raise ValueError(f"library: expected one of {', '.join(LIBRARIES)}, got {self.library!r}")


@dataclass(frozen=True)
class Device:
    """Datasheet figures of the whole part, kept beside the share so the file explains itself."""

    name: str
    ram_bytes: int = bounded(gt=0, le=_MAX_BYTES)
    flash_bytes: int = bounded(gt=0, le=_MAX_BYTES)


@dataclass(frozen=True)
class Limits:
    ram_bytes: int = bounded(gt=0, le=_MAX_BYTES, doc="RAM the model may use, in bytes")
    flash_bytes: int = bounded(gt=0, le=_MAX_BYTES, doc="FLASH the model may use, in bytes")
    macs_per_second: float = bounded(gt=0, le=1e12, doc="multiply-accumulates per second of audio")
    cpu_share: float | None = bounded(None, gt=0.0, le=1.0, doc="share of the core's cycles the model and "
                                      "front-end may use (optional)")


@dataclass(frozen=True)
class Objectives:
    """What the search minimises besides RAM: MAC/s (the thesis's measure) or the measured CPU share."""

    compute: Literal["macs_per_second", "cpu_share"] = "macs_per_second"


@dataclass(frozen=True)
class Reserve:
    ram_bytes: int = bounded(0, ge=0, le=_MAX_BYTES)
    flash_bytes: int = bounded(0, ge=0, le=_MAX_BYTES)


@dataclass(frozen=True)
class Reserves:
    """Fixed costs inside the limits that are not the network: they shrink what the network may use."""

    runtime: Reserve = Reserve()
    frontend: Reserve = Reserve()
    application: Reserve = Reserve()

    @property
    def ram_bytes(self) -> int:
        return self.runtime.ram_bytes + self.frontend.ram_bytes + self.application.ram_bytes

    @property
    def flash_bytes(self) -> int:
        return self.runtime.flash_bytes + self.frontend.flash_bytes + self.application.flash_bytes


@dataclass(frozen=True)
class Budget:
    name: str
    target: Target
    device: Device
    model_share: float = bounded(gt=0.0, le=1.0, doc="share of the device given to the model (0..1]")
    limits: Limits = bounded()
    reserves: Reserves = Reserves()
    objectives: Objectives = Objectives()

    def __post_init__(self) -> None:
        if self.limits.ram_bytes > self.device.ram_bytes:
            raise ValueError(f"limits.ram_bytes {self.limits.ram_bytes} exceeds device.ram_bytes {self.device.ram_bytes}")
        if self.limits.flash_bytes > self.device.flash_bytes:
            raise ValueError(f"limits.flash_bytes {self.limits.flash_bytes} exceeds device.flash_bytes "
                             f"{self.device.flash_bytes}")
        if self.reserves.ram_bytes >= self.limits.ram_bytes:
            raise ValueError(f"reserves take {self.reserves.ram_bytes} B of RAM, leaving nothing of "
                             f"limits.ram_bytes {self.limits.ram_bytes}")
        if self.reserves.flash_bytes >= self.limits.flash_bytes:
            raise ValueError(f"reserves take {self.reserves.flash_bytes} B of FLASH, leaving nothing of "
                             f"limits.flash_bytes {self.limits.flash_bytes}")

    @classmethod
    def load(cls, path: str | Path) -> "Budget":
        return config.load(cls, config.read_yaml(path), str(path))
