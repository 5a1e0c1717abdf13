"""Search spaces: the YAML a user edits → Optuna parameters → `ArchSpec`.

`SearchSpace.suggest` asks an Optuna trial for one value per dimension (categorical, with fixed
names, so a study can be resumed and compared); `SearchSpace.build` turns those values into an
`ArchSpec` with no randomness, so a trial's parameters always rebuild the same network.

The network family is the thesis's, generalised: `blocks` conv blocks, the first a standard conv,
the rest standard or depthwise-separable (depthwise + 1x1), downsampling by 2x2 stride in every block
or by max-pooling after every block but the last; filters grow by `growth` per block (capped by
`max_filters`); a `flatten` head makes the last conv 'valid' (as the thesis did) before the dense
layers, a `global_avg` head pools instead.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nas.arch.frontend import empty_mel_bands
from nas.arch.spec import (ArchSpec, Arithmetic, Conv2D, Dense, DepthwiseConv2D, FrontEnd, GlobalAvgPool2D, Layer,
                           MaxPool2D, Softmax)
from nas.kinds import InvertedResidual
from nas.core import config
from nas.core.config import bounded

ConvType = Literal["standard", "depthwise_separable", "inverted_residual"]
Downsampling = Literal["maxpool", "strided"]
Head = Literal["flatten", "global_avg"]
OTHER_SECTIONS = ("training", "search")


class InvalidArchitecture(ValueError):
    """The sampled combination has no valid network (e.g. downsampled to nothing); rejected, not an error."""


def parse_pool(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"pool {text!r} is not of the form TIMExMEL, e.g. 2x2")
    return int(parts[0]), int(parts[1])


@dataclass(frozen=True)
class FrontEndSpace:
    sample_rate: tuple[int, ...] = bounded(ge=4000, le=192000, doc="sample rates in Hz")
    n_fft: tuple[int, ...] = bounded(ge=32, le=4096, doc="FFT lengths (powers of two)")
    n_mels: tuple[int, ...] = bounded(ge=1, le=512, doc="mel band counts")
    frames: tuple[int, ...] = bounded(ge=1, le=4096, doc="frames per classification window")
    hop_ratio: tuple[float, ...] = bounded((0.5,), gt=0.0, le=1.0, doc="hop as a share of n_fft")
    overlap: tuple[float, ...] = bounded((0.0,), ge=0.0, lt=1.0, doc="window overlaps at inference")
    fmin: float = bounded(0.0, ge=0.0)
    fmax: float | None = bounded(None, gt=0.0, doc="highest mel edge in Hz, capped at each rate's Nyquist")
    arithmetic: tuple[Arithmetic, ...] = bounded(("float",), doc="front-end arithmetics: float and/or fixed")


@dataclass(frozen=True)
class NetworkSpace:
    conv_type: tuple[ConvType, ...]
    downsampling: tuple[Downsampling, ...]
    blocks: tuple[int, ...] = bounded(ge=1, le=12)
    kernel: tuple[int, ...] = bounded(ge=1, le=15)
    base_filters: tuple[int, ...] = bounded(ge=1, le=1024)
    growth: tuple[float, ...] = bounded((1.5,), ge=0.25, le=4.0)
    max_filters: tuple[int, ...] = bounded((0,), ge=0, le=4096, doc="filter caps, 0 = no cap")
    pool: tuple[str, ...] = bounded(("2x2",), doc="max-pool sizes TIMExMEL, e.g. 2x3")
    head: tuple[Head, ...] = ("flatten",)
    dense_units: tuple[int, ...] = bounded((64,), ge=0, le=4096, doc="hidden dense units, 0 = none")
    expansion: tuple[int, ...] = bounded((4,), ge=1, le=16, doc="inverted residual blocks: expanded channels per "
                                         "input channel")
    repeats: tuple[int, ...] = bounded((1,), ge=1, le=8, doc="layers per block after the first: the block's first "
                                       "layer downsamples, each repeat keeps the size (residual for inverted "
                                       "residual blocks)")
    dropout: float = bounded(0.5, ge=0.0, lt=1.0)

    def __post_init__(self) -> None:
        for p in self.pool:
            parse_pool(p)


@dataclass(frozen=True)
class Params:
    """One point of a space; also the form of `references` in a space file."""

    sample_rate: int
    n_fft: int
    hop_ratio: float
    n_mels: int
    frames: int
    overlap: float
    conv_type: ConvType
    downsampling: Downsampling
    blocks: int
    kernel: int
    base_filters: int
    growth: float
    max_filters: int
    head: Head
    dense_units: int
    pool: str | None = None
    expansion: int | None = None
    repeats: int = 1
    arithmetic: Arithmetic = "float"


@dataclass(frozen=True)
class Reference:
    name: str
    params: Params


@dataclass(frozen=True)
class SearchSpace:
    name: str
    frontend: FrontEndSpace
    network: NetworkSpace
    num_classes: int = bounded(10, ge=2, le=1000)
    description: str = "search space"
    references: tuple[Reference, ...] = ()

    def __post_init__(self) -> None:
        for i, ref in enumerate(self.references):
            for key, value in ref.params.__dict__.items():
                if not self.applies(key, ref.params.__dict__):
                    continue
                choices = self.choices()[key]
                if value not in choices:
                    raise ValueError(f"references[{i}] ({ref.name}): params.{key} = {value!r} is not among "
                                     f"the space's choices {list(choices)}")

    @classmethod
    def load(cls, path: str | Path) -> "SearchSpace":
        """The space of a search-space file; its `training:` and `search:` sections (how candidates
        are trained and how training is spent) belong to nas.train.recipe and nas.search.fidelity."""
        data = config.read_yaml(path)
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if k not in OTHER_SECTIONS}
        return config.load(cls, data, str(path))

    def choices(self) -> dict[str, tuple]:
        f, n = self.frontend, self.network
        return {"sample_rate": f.sample_rate, "n_fft": f.n_fft, "hop_ratio": f.hop_ratio, "n_mels": f.n_mels,
                "frames": f.frames, "overlap": f.overlap, "conv_type": n.conv_type,
                "downsampling": n.downsampling, "blocks": n.blocks, "kernel": n.kernel,
                "base_filters": n.base_filters, "growth": n.growth, "max_filters": n.max_filters,
                "head": n.head, "dense_units": n.dense_units, "pool": n.pool, "expansion": n.expansion,
                "repeats": n.repeats, "arithmetic": f.arithmetic}

    def applies(self, key: str, params: dict[str, Any]) -> bool:
        """Whether dimension `key` exists for a point whose earlier dimensions are `params`: `pool` only
        for max-pool networks, `expansion` for inverted residual ones, `arithmetic` only when the space
        offers more than float (so a space without it samples, names and stores its points as before)."""
        if key == "pool":
            return params["downsampling"] == "maxpool"
        if key == "expansion":
            return params["conv_type"] == "inverted_residual"
        return key != "arithmetic" or self.frontend.arithmetic != ("float",)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample one point with Optuna's define-by-run API (the dimensions that apply to it)."""
        params: dict[str, Any] = {}
        for key, choices in self.choices().items():
            if self.applies(key, params):
                params[key] = trial.suggest_categorical(key, list(choices))
        return params

    def sample(self, rng: Any) -> dict[str, Any]:
        """A uniformly random point (any object with `choice`, e.g. random.Random), for random
        baselines, tests and benchmarks; the same form as `suggest` returns (the arithmetic, when
        offered, is drawn last, so the other dimensions of a seed's point do not depend on it)."""
        params = {key: rng.choice(choices) for key, choices in self.choices().items() if key != "arithmetic"}
        if self.applies("arithmetic", params):
            params["arithmetic"] = rng.choice(self.frontend.arithmetic)
        return {k: v for k, v in params.items() if self.applies(k, params)}

    def build(self, params: dict[str, Any], name: str = "candidate") -> ArchSpec:
        """Deterministic network for `params`; InvalidArchitecture if the combination has none."""
        p = Params(**params)
        fmax = min(self.frontend.fmax, p.sample_rate / 2) if self.frontend.fmax else None
        try:
            fe = FrontEnd(sample_rate=p.sample_rate, n_fft=p.n_fft, hop_length=max(1, int(p.n_fft * p.hop_ratio)),
                          n_mels=p.n_mels, frames=p.frames, overlap=p.overlap, fmin=self.frontend.fmin, fmax=fmax,
                          arithmetic=p.arithmetic)
            spec = ArchSpec(name=name, frontend=fe, layers=tuple(network_layers(p, self.network.dropout, self.num_classes)),
                            num_classes=self.num_classes)
        except ValueError as exc:
            raise InvalidArchitecture(str(exc)) from None
        empty = empty_mel_bands(fe)
        if empty:
            raise InvalidArchitecture(f"{p.n_mels} mel bands over a {p.n_fft}-point FFT leave band(s) "
                                      f"{empty[:5]} without any FFT bin")
        return spec

    def reference_params(self) -> dict[str, dict[str, Any]]:
        """References as Optuna parameter dicts (pool and expansion dropped where they are not parameters)."""
        out = {}
        for ref in self.references:
            params = dataclasses.asdict(ref.params)
            out[ref.name] = {k: v for k, v in params.items() if self.applies(k, params)}
        return out



def block_filters(base: int, growth: float, cap: int, blocks: int) -> list[int]:
    """Filters per block: int(base * growth**i), like the thesis's models, then capped."""
    filters = [int(base * growth ** i) for i in range(blocks)]
    return [min(f, cap) if cap else f for f in filters]


def network_layers(p: Params, dropout: float, num_classes: int) -> list[Layer]:
    layers: list[Layer] = []
    strided = p.downsampling == "strided"
    k = (p.kernel, p.kernel)
    for i, filters in enumerate(block_filters(p.base_filters, p.growth, p.max_filters, p.blocks)):
        last = i == p.blocks - 1
        for r in range(p.repeats):
            stride = (2, 2) if strided and r == 0 else (1, 1)
            padding = "valid" if last and r == p.repeats - 1 and p.head == "flatten" else "same"
            layers += _block_layers(p, i == 0, filters, k, stride, padding)
        if not strided and not last:
            layers.append(MaxPool2D(pool=parse_pool(p.pool or "2x2")))
    if p.head == "global_avg":
        layers.append(GlobalAvgPool2D())
    if p.dense_units:
        layers.append(Dense(units=p.dense_units, activation="relu"))
    layers.append(Dense(units=num_classes, activation="none", dropout=dropout))
    layers.append(Softmax())
    return layers


def _block_layers(p: Params, stem: bool, filters: int, k: tuple[int, int], stride: tuple[int, int],
                  padding: str) -> list[Layer]:
    """One layer of a block: the stem and standard blocks a conv, depthwise-separable ones a depthwise
    + 1x1 conv, inverted residual ones a block (always 'same': its residual needs the input's size)."""
    if stem or p.conv_type == "standard":
        return [Conv2D(filters=filters, kernel=k, stride=stride, padding=padding)]
    if p.conv_type == "inverted_residual":
        return [InvertedResidual(filters=filters, expansion=p.expansion or 4, kernel=k, stride=stride)]
    return [DepthwiseConv2D(kernel=k, stride=stride, padding=padding), Conv2D(filters=filters, kernel=(1, 1))]

