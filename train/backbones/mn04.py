"""EfficientAT ``mn04_as`` (Schmid, Koutini & Widmer, ICASSP 2023) in PyTorch.

A MobileNetV3-Large at width 0.4, trained on AudioSet's 527 classes by knowledge
distillation from a transformer ensemble. Re-implemented from the paper and
the layer list of the released checkpoint (``../shared/weights/efficientat``):

- a 3x3 stride-2 convolution (8 channels), batch norm, hard-swish;
- fifteen inverted-residual blocks: an optional 1x1 expansion, a depthwise
  ``k x k`` convolution (stride 1 or 2), channel squeeze-and-excitation on the
  blocks that have it (mean over frequency and time, two dense layers, a
  sigmoid), a 1x1 linear projection, a residual connection where the shape
  allows; every convolution is bias-free and followed by batch norm
  (eps 1e-3);
- a 1x1 convolution to 384 channels, batch norm, hard-swish;
- the "mlp" head: mean over frequency and time, dense 512, hard-swish, dense 527.

Input is the log-mel spectrogram of :func:`genre_infer.features.melgram` with
EfficientAT's parameters, laid out ``(batch, 1, 128 mels, frames)``. The
network downsamples time and frequency by 32; :meth:`Mn04.columns` returns its
feature map averaged over frequency, one 384-d column per 32 frames, which the
genre models pool into windows (:class:`train.audioset.GenreMn04Stream`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Mn04", "load_mn04", "BLOCKS", "N_MELS", "N_CLASSES", "EMBED_DIM", "TIME_STRIDE"]

N_MELS = 128
N_CLASSES = 527
EMBED_DIM = 384
HIDDEN = 512
TIME_STRIDE = 32
BN_EPS = 1e-3
WIDTH = 0.4

#: MobileNetV3-Large's blocks at width 1: (in, kernel, expanded, out, squeeze-excite, hard-swish, stride).
_LARGE = (
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
)


def _divisible(v: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor``, never more than 10% down."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


#: The blocks at width 0.4: (in, kernel, expanded, out, se, hard-swish, stride).
BLOCKS = tuple(
    (_divisible(i * WIDTH), k, _divisible(e * WIDTH), _divisible(o * WIDTH), se, hs, s)
    for i, k, e, o, se, hs, s in _LARGE
)


class _ConvBN(nn.Module):
    """Bias-free convolution → batch norm → optional activation (``0`` conv, ``1`` norm in the checkpoint)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = None) -> None:
        super().__init__()
        self.add_module("0", nn.Conv2d(c_in, c_out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False))
        self.add_module("1", nn.BatchNorm2d(c_out, eps=BN_EPS))
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self._modules["1"](self._modules["0"](x)))


class _SqueezeExcite(nn.Module):
    """Channel attention: mean over frequency and time → dense (ReLU) → dense (sigmoid) → scale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, _divisible(channels // 4))
        self.fc2 = nn.Linear(_divisible(channels // 4), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * s[:, :, None, None]


class _SEBlock(nn.Module):
    """The checkpoint's wrapper around one squeeze-and-excitation (``conc_se_layers.0``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conc_se_layers = nn.ModuleList([_SqueezeExcite(channels)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conc_se_layers[0](x)


class _InvertedResidual(nn.Module):
    def __init__(self, c_in: int, kernel: int, expanded: int, c_out: int, se: bool, hs: bool, stride: int) -> None:
        super().__init__()
        act = nn.Hardswish if hs else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != c_in:
            layers.append(_ConvBN(c_in, expanded, 1, act=act))
        layers.append(_ConvBN(expanded, expanded, kernel, stride, groups=expanded, act=act))
        if se:
            layers.append(_SEBlock(expanded))
        layers.append(_ConvBN(expanded, c_out, 1))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return y + x if self.residual else y


class Mn04(nn.Module):
    """EfficientAT ``mn04_as``: ``(B, 1, 128, frames)`` log-mel → ``(B, 527)`` AudioSet logits."""

    def __init__(self) -> None:
        super().__init__()
        first = BLOCKS[0][0]
        last = BLOCKS[-1][3]
        layers: list[nn.Module] = [_ConvBN(1, first, 3, 2, act=nn.Hardswish)]
        layers += [_InvertedResidual(*b) for b in BLOCKS]
        layers.append(_ConvBN(last, EMBED_DIM, 1, act=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(EMBED_DIM, HIDDEN), nn.Hardswish(),
            nn.Dropout(0.2), nn.Linear(HIDDEN, N_CLASSES),
        )

    def columns(self, mel: torch.Tensor) -> torch.Tensor:
        """Feature map averaged over frequency: ``(B, 384, ceil(frames / 32))``."""
        return self.features(mel).mean(dim=2)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """AudioSet logits ``(B, 527)`` from pooled features ``(B, 384)``."""
        c = self.classifier
        return c[5](c[3](c[2](pooled)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.columns(mel).mean(dim=2))


def load_mn04(npz: str | Path) -> Mn04:
    """``Mn04`` in eval mode with the checkpoint's arrays (``mn04_as.npz``).

    Every array of the file must match a parameter or buffer of the same shape, and
    every parameter and buffer must be in the file; anything else raises ``ValueError``.
    """
    net = Mn04()
    state = net.state_dict()
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    missing = sorted(set(state) - set(arrays))
    extra = sorted(set(arrays) - set(state))
    if missing or extra:
        raise ValueError(f"checkpoint does not match mn04: missing {missing[:5]}, unexpected {extra[:5]}")
    for k, v in arrays.items():
        if tuple(v.shape) != tuple(state[k].shape):
            raise ValueError(f"{k}: checkpoint shape {v.shape}, network {tuple(state[k].shape)}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{k}: non-finite values in the checkpoint")
    net.load_state_dict({k: torch.from_numpy(np.asarray(v)).to(state[k].dtype) for k, v in arrays.items()})
    return net.eval()
