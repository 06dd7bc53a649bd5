"""The exportable network in each run-time layout: the frozen musicnn and a genre head as one graph.

``windows``: log-mel windows ``(batch, 187, 96)`` → logits; ``sequence``: one call over a
whole stretch, windows pooled from it; ``stream`` (shipped): stretches that hand their frame
embeddings on to later calls (see :mod:`genre_infer.model`). All three compute the same
logits; :mod:`train.export` writes them to ONNX and checks onnxruntime against torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from genre_infer import features as gi_features

from .backbones.musicnn import PATCH_FRAMES, LiveFrames, Musicnn, pool_rows, pool_windows
from .heads import Head

__all__ = ["GenreMusicnn", "GenreMusicnnSequence", "GenreMusicnnStream", "NETWORKS", "export_example"]


class GenreMusicnn(nn.Module):
    """The shipped network: log-mel windows ``(batch, 187, 96)`` → genre logits."""

    def __init__(self, backbone: Musicnn, head: Head) -> None:
        super().__init__()
        self.frames = LiveFrames(backbone)  # frame_features without the dead filters: same numbers
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(Musicnn.pool(self.frames(x)))


class GenreMusicnnSequence(nn.Module):
    """The same network in the sequence layout: features ``(1, frames, 96)`` and window
    starts ``(W,)`` → ``(W, labels)``; musicnn runs once over all the frames."""

    def __init__(self, backbone: Musicnn, head: Head) -> None:
        super().__init__()
        self.frames = LiveFrames(backbone)
        self.head = head

    def forward(self, x: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        return self.head(pool_windows(self.frames(x)[0], starts))


class GenreMusicnnStream(nn.Module):
    """The same network in the stream layout (see :mod:`genre_infer.model`): features
    ``(1, frames, 96)``, ``keep (2,)``, ``past (rows, 753)`` and ``starts (W,)`` →
    ``(logits (W, labels), frames (keep[1] - keep[0], 753))``. The runtime hands each
    call's kept frame embeddings on to later calls, so no frame is embedded twice."""

    frame_dim = 753  # musicnn's per-frame features: front end 561 + mid end 3 x 64

    def __init__(self, backbone: Musicnn, head: Head) -> None:
        super().__init__()
        self.frames = LiveFrames(backbone)
        self.head = head

    def forward(self, x: torch.Tensor, keep: torch.Tensor, past: torch.Tensor,
                starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.frames(x)[0].T                                  # (T, 753)
        kept = torch.index_select(f, 0, torch.arange(keep[0], keep[1]))
        return self.head(pool_rows(torch.cat([past, kept]), starts)), kept


#: The exportable network of each layout.
NETWORKS: dict[str, type[nn.Module]] = {"windows": GenreMusicnn, "sequence": GenreMusicnnSequence,
                                        "stream": GenreMusicnnStream}


def export_example(layout: str, x: np.ndarray, starts: np.ndarray,
                   context: int = 100) -> np.ndarray | tuple[np.ndarray, ...]:
    """Parity input for exporting a network of ``layout`` from features ``x (frames, 96)`` and
    window ``starts``: windows; the whole stretch; or (stream) a stretch with ``context`` frames
    on each side, a few frame embeddings handed on from an earlier call, and the windows
    those and the kept frames complete."""
    if layout == "windows":
        return gi_features.frame_windows(x, starts, PATCH_FRAMES)[:16]
    if layout == "sequence":
        return (x[None], starts)
    past = np.random.default_rng(1).standard_normal((40, GenreMusicnnStream.frame_dim)).astype(np.float32)
    kept = len(x) - 2 * context + len(past)
    return (x[None], np.array([context, len(x) - context]), past, starts[starts + PATCH_FRAMES <= kept])
