"""Instructions and code size of the generated CMSIS-DSP front-end (``data/frontend.json``).

Per computed frame the front-end shifts its int16 history (``hop_length`` new samples), converts and
windows ``n_fft`` samples, runs the ``n_fft``-point real FFT, the power spectrum, one dot product per
mel band over that band's non-zero weights, and the log/scale/quantise steps per band; once per
window it slides the int8 window by ``window_hop_frames`` frames. Hence

    per frame  = fft[n_fft] + per_mel * n_mels + per_mel_weight * nnz
    per window = per_window + per_slide_byte * (frames - window_hop_frames) * n_mels

with ``fft[n_fft]`` (everything that depends only on the FFT length: the history shift, conversion,
window, FFT and power spectrum) measured per length. Per second
of audio: frames/s = sample_rate / hop_length, windows/s = frames/s / window_hop_frames.
``code_bytes[n_fft]``: the front-end's code (nas_frontend.c + the CMSIS-DSP functions it links,
without the tables `nas.cost` counts exactly).

The fixed-point front-end (`FrontEnd.arithmetic == "fixed"`, configs ``fixed/<isa>/<opt>``) adds per
frame the terms of its push: ``hop_sample`` (the magnitude OR and copy of each new sample) and
``moved_sample`` (the history it shifts: k0 * hop - hop samples), and for an odd hop ``odd_hop_byte``
(the bytes of that shift, whose memmove is then unaligned); its ``mel_weight`` counts the weights padded
to even band lengths. It needs no FPU: a core is priced with its own instruction set
(the Cortex-M4 with DSP, or the C intrinsics on cortex-m3 / cortex-m0plus).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from nas.arch.spec import FrontEnd
from nas.cost.cpu import DATA_DIR, _load

FRONTEND_FILE = DATA_DIR / "frontend.json"
FFT_LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096)


def frontend_isa(isa: str, fpu: bool, arithmetic: str = "float") -> str:
    """The measured front-end build for a core: the Cortex-M4F's hard float for any core with an FPU,
    soft float on the Thumb-1 (cortex-m0plus) or Thumb-2 (cortex-m3) core otherwise; a fixed-point
    front-end is measured on the core's own instruction set."""
    if arithmetic == "fixed":
        return isa
    if fpu:
        return "cortex-m4"
    return "cortex-m0plus" if isa == "cortex-m0plus" else "cortex-m3"


def frontend_features(fe: FrontEnd, nnz: int) -> tuple[dict[str, float], dict[str, float]]:
    """(per-frame, per-window) features; `nnz`: the mel weights the device stores (as
    `nas.cost.analytic.mel_nonzeros`; padded here for a fixed front-end)."""
    frame = {f"fft{fe.n_fft}": 1.0, "mel": fe.n_mels, "mel_weight": nnz}
    if fe.arithmetic == "fixed":
        from nas.arch.fixedfe import tables

        k0 = tables(fe).pushes_per_frame
        moved = (k0 - 1) * fe.hop_length
        frame.update(mel_weight=int(tables(fe).lengths.sum()), hop_sample=fe.hop_length, moved_sample=moved,
                     odd_hop_byte=2 * moved if fe.hop_length % 2 else 0)
    window = {"window": 1.0, "slide_byte": (fe.frames - fe.window_hop_frames) * fe.n_mels}
    return frame, window


@dataclass(frozen=True)
class FrontEndModel:
    key: str
    frame: dict[str, float]
    window: dict[str, float]
    code_bytes: dict[int, int]

    def _check(self, fe: FrontEnd) -> None:
        if f"fft{fe.n_fft}" not in self.frame:
            raise KeyError(f"no front-end measurement for n_fft {fe.n_fft} ({self.key})")

    def per_frame(self, fe: FrontEnd, nnz: int) -> float:
        self._check(fe)
        f, _ = frontend_features(fe, nnz)
        return sum(self.frame.get(k, 0.0) * v for k, v in f.items())

    def per_window(self, fe: FrontEnd) -> float:
        _, w = frontend_features(fe, 0)
        return sum(self.window.get(k, 0.0) * v for k, v in w.items())

    def per_second(self, fe: FrontEnd, nnz: int) -> float:
        frames = fe.sample_rate / fe.hop_length
        return frames * self.per_frame(fe, nnz) + frames / fe.window_hop_frames * self.per_window(fe)

    def code(self, fe: FrontEnd) -> int:
        self._check(fe)
        return self.code_bytes[fe.n_fft]


def config_key(isa: str, opt: str, arithmetic: str = "float") -> str:
    return f"{isa}/{opt}" if arithmetic == "float" else f"{arithmetic}/{isa}/{opt}"


@lru_cache(maxsize=64)
def frontend_model(isa: str, opt: str, path=FRONTEND_FILE, arithmetic: str = "float") -> FrontEndModel:
    key = config_key(isa, opt, arithmetic)
    cfg = _load(str(path))["configs"].get(key)
    if cfg is None:
        raise KeyError(f"no front-end data for {key} in {path}")
    return FrontEndModel(key, cfg["per_frame"], cfg["per_window"], {int(k): v for k, v in cfg["code_bytes"].items()})
