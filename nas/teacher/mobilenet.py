"""The EfficientAT "mn04_as" AudioSet tagger (Schmid, Koutini, Widmer, ICASSP 2023), written here.

A MobileNetV3-Large at width 0.4 on a [B, 1, 128 mel bands, T frames] log-mel input
(`nas.teacher.melspec`): a 3x3/2 stem, fifteen inverted-residual blocks (1x1 expansion, depthwise
k x k, channel squeeze-excitation on the expanded channels in some blocks, linear 1x1 projection,
residual where shape allows; ReLU early, hard-swish late), a 1x1 convolution to 6x the last block's
channels, global average pooling (the 384-value embedding) and an MLP head (512 hidden, hard-swish)
to the 527 AudioSet logits. BatchNorm eps 1e-3. The module and parameter names follow the published
state dict, so the released weights load with `strict=True`; nothing here is the upstream code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

WIDTH = 0.4
AUDIOSET_CLASSES = 527
BN_EPS = 1e-3


@dataclass(frozen=True)
class BlockRow:
    """One row of MobileNetV3-Large's block table, channels at width 1."""

    inp: int
    kernel: int
    expanded: int
    out: int
    se: bool
    hardswish: bool
    stride: int


#                     in  k  exp  out   SE    HS  stride
BLOCKS = tuple(BlockRow(*row) for row in (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
))
HEAD_HIDDEN = 1280      # at width 1


def scaled(channels: float, divisor: int = 8) -> int:
    """Channels at a width multiplier: rounded to a multiple of `divisor`, never below it nor more
    than 10 % under the exact value (MobileNet's rule)."""
    out = max(divisor, int(channels + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * channels else out


class ConvBN(nn.Sequential):
    """Convolution (no bias, 'same' padding) → BatchNorm → optional activation; children 0, 1, 2."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = None):
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout, eps=BN_EPS)]
        super().__init__(*layers, *([act()] if act is not None else []))


class _Excite(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, squeeze)
        self.fc2 = nn.Linear(squeeze, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.fc1(x.mean(dim=(2, 3))))
        return x * torch.sigmoid(self.fc2(s))[:, :, None, None]


class SqueezeExcite(nn.Module):
    """Channel squeeze-excitation: mean over frequency and time, bottleneck of channels/4 (ReLU),
    sigmoid gate per channel. Held in a one-element list, as the published weights name it."""

    def __init__(self, channels: int):
        super().__init__()
        self.conc_se_layers = nn.ModuleList([_Excite(channels, scaled(channels // 4))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class InvertedResidual(nn.Module):
    def __init__(self, row: BlockRow, width: float):
        super().__init__()
        cin, exp, cout = (scaled(c * width) for c in (row.inp, row.expanded, row.out))
        act = nn.Hardswish if row.hardswish else nn.ReLU
        layers: list[nn.Module] = [] if exp == cin else [ConvBN(cin, exp, 1, act=act)]
        layers.append(ConvBN(exp, exp, row.kernel, row.stride, groups=exp, act=act))
        if row.se:
            layers.append(SqueezeExcite(exp))
        layers.append(ConvBN(exp, cout, 1))
        self.block = nn.Sequential(*layers)
        self.residual = row.stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.residual else y


class MobileNetAudio(nn.Module):
    """`forward(mel)` → AudioSet logits; `embed(mel)` → the pooled 384-value embedding."""

    def __init__(self, width: float = WIDTH, num_classes: int = AUDIOSET_CLASSES):
        super().__init__()
        first = scaled(BLOCKS[0].inp * width)
        last = scaled(BLOCKS[-1].out * width)
        layers: list[nn.Module] = [ConvBN(1, first, 3, 2, act=nn.Hardswish)]
        layers += [InvertedResidual(row, width) for row in BLOCKS]
        layers.append(ConvBN(last, 6 * last, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.embedding_size = 6 * last
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1),
                                        nn.Linear(6 * last, scaled(HEAD_HIDDEN * width)), nn.Hardswish(),
                                        nn.Dropout(0.2), nn.Linear(scaled(HEAD_HIDDEN * width), num_classes))

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """[B, 1, mels, frames] → [B, embedding_size]: the feature map averaged over frequency and time."""
        return self.features(mel).mean(dim=(2, 3))

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """The AudioSet head on pooled embeddings [B, embedding_size] → [B, 527]."""
        return self.classifier[2:](embedding)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.logits(self.embed(mel))
