"""Networks, built by name from a registry.

Every network maps ``(batch, frames, bands)`` float32 features to
``(batch, n_labels)`` logits (no softmax). Add an architecture with
:func:`register`; :func:`build` makes one from its name and keyword arguments,
so a run's ``config.json`` is enough to rebuild it.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

__all__ = ["CNN", "register", "build", "available", "count_parameters"]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "gelu": nn.GELU,
}


class CNN(nn.Module):
    """A regularised 2-D CNN over (time, frequency) feature maps.

    Input BatchNorm, then blocks of ``conv3x3 (padding 1) -> BN -> activation ->
    max-pool 2x2 -> dropout``, global average+max pooling, dropout, linear.

    Parameters
    ----------
    n_bands : int
        Feature bands per frame (mel bands or MFCCs).
    segment_frames : int
        Frames per input window (only recorded; the net accepts any length).
    n_labels : int
        Output classes.
    channels : sequence of int
        Output channels of each conv block.
    activation : {"relu", "elu", "leaky_relu", "gelu"}
        Non-linearity.
    dropout : float
        Dropout after each block (spatial) and before the classifier.
    """

    def __init__(
        self, n_bands: int, segment_frames: int, n_labels: int,
        channels: Sequence[int] = (16, 32, 64, 128), activation: str = "relu", dropout: float = 0.25,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r} (choose {sorted(_ACTIVATIONS)})")
        self.input_bn = nn.BatchNorm2d(1)
        blocks: list[nn.Module] = []
        c_in = 1
        for i, c in enumerate(channels):
            # small MFCC inputs: stop pooling frequency once it would vanish
            f_pool = 2 if n_bands // (2 ** (i + 1)) >= 1 else 1
            blocks += [
                nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                nn.BatchNorm2d(c),
                _ACTIVATIONS[activation](),
                nn.MaxPool2d((2, f_pool)),
                nn.Dropout2d(dropout / 2),
            ]
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * c_in, n_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, bands)`` features -> ``(batch, n_labels)`` logits."""
        h = self.blocks(self.input_bn(x.unsqueeze(1)))
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return self.head(self.dropout(pooled))


_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str, factory: Callable[..., nn.Module]) -> None:
    """Make ``factory(n_bands=, segment_frames=, n_labels=, **kwargs)`` buildable by ``name``."""
    _REGISTRY[name] = factory


def available() -> list[str]:
    """Registered architecture names."""
    return sorted(_REGISTRY)


def build(name: str, n_bands: int, segment_frames: int, n_labels: int, **kwargs: Any) -> nn.Module:
    """Instantiate a registered network."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown network {name!r} (available: {available()})")
    return _REGISTRY[name](n_bands=n_bands, segment_frames=segment_frames, n_labels=n_labels, **kwargs)


def count_parameters(net: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


register("cnn", CNN)
