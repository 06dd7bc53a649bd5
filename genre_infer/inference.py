"""Feed feature frames to the network as they arrive: the two network layouts.

Both runners take consecutive frames with :meth:`push`, keep only what the
next network call needs, and return at :meth:`finish` the window logits and
window starts (in frames) that one pass over the whole signal would give:

- :class:`WindowRunner` cuts the runtime's windows
  (:func:`genre_infer.features.window_starts`) and runs them in small batches;
- :class:`SequenceRunner` runs a fully convolutional network over stretches of
  :data:`~genre_infer.constants.SEQUENCE_CHUNK_FRAMES` frames, overlapped by the
  network's context so the frame logits equal one call over the whole signal,
  and averages the frame logits each window covers: overlapping windows share
  their computation.
"""

from __future__ import annotations

import numpy as np

from . import features as feat
from .constants import SEQUENCE_CHUNK_FRAMES
from .model import GenreModel, window_frame_ranges

__all__ = ["WindowRunner", "SequenceRunner", "make_runner"]


class WindowRunner:
    """Windows ``(segment_frames, bands)`` every ``window_hop_s``, one batch call per block."""

    def __init__(self, model: GenreModel) -> None:
        self.model = model
        spec = model.features
        self.seg, self.hop = spec.segment_frames, feat.window_hop_frames(spec)
        self.buf = np.zeros((0, spec.n_bands), dtype=np.float32)  # frames [offset, offset + len(buf))
        self.offset = self.next_k = 0
        self.logits: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []

    @property
    def n_frames(self) -> int:
        """Frames pushed so far."""
        return self.offset + len(self.buf)

    def _run(self, starts: np.ndarray) -> None:
        if len(starts):
            self.logits.append(self.model.logits(feat.frame_windows(self.buf, starts - self.offset, self.seg)))
            self.starts.append(starts)

    def push(self, frames: np.ndarray) -> None:
        """Add frames; run every regular window now complete and drop frames no window needs."""
        self.buf = np.concatenate([self.buf, frames])
        new = feat.regular_window_starts(self.next_k, self.n_frames - self.seg, self.hop)
        self._run(new)
        self.next_k += len(new)
        drop = min(int(round(self.next_k * self.hop)) - self.offset, len(self.buf) - self.seg)
        if drop > 0:
            self.buf, self.offset = self.buf[drop:], self.offset + drop

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """The remaining windows (one aligned to the end) → ``(logits, starts)`` of all windows.

        Requires at least ``segment_frames`` frames in all.
        """
        last = self.n_frames - self.seg
        new = feat.regular_window_starts(self.next_k, last, self.hop)
        final = new[-1] if len(new) else self.starts[-1][-1] if self.starts else -1
        self._run(new if final == last else np.append(new, last).astype(np.int64))
        return np.concatenate(self.logits), np.concatenate(self.starts)


class SequenceRunner:
    """Frame logits over overlapping stretches, averaged per window."""

    def __init__(self, model: GenreModel, chunk_frames: int = SEQUENCE_CHUNK_FRAMES) -> None:
        self.model = model
        net = model.info.network
        self.stride, self.context = net.stride, net.context_frames
        self.chunk = max(self.stride, chunk_frames // self.stride * self.stride)
        self.buf = np.zeros((0, model.features.n_bands), dtype=np.float32)  # frames [offset, ...)
        self.offset = 0
        self.done = 0  # frames [0, done) have their output frames; a multiple of stride
        self.out: list[np.ndarray] = []

    @property
    def n_frames(self) -> int:
        """Frames pushed so far."""
        return self.offset + len(self.buf)

    def _run(self, end: int | None) -> None:
        # outputs for input frames [done, end), computed from [done - context, end + context)
        lo = max(0, self.done - self.context)
        hi = self.n_frames if end is None else end + self.context
        z = self.model.frame_logits(self.buf[lo - self.offset : hi - self.offset])
        first = (self.done - lo) // self.stride
        take = len(z) - first if end is None else (end - self.done) // self.stride
        self.out.append(z[first : first + take])
        if end is not None:
            self.done = end
            keep = self.done - self.context - self.offset
            if keep > 0:
                self.buf, self.offset = self.buf[keep:], self.offset + keep

    def push(self, frames: np.ndarray) -> None:
        """Add frames; run every stretch whose right context has arrived."""
        self.buf = np.concatenate([self.buf, frames])
        while self.n_frames >= self.done + self.chunk + self.context:
            self._run(self.done + self.chunk)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Run the last stretch → ``(logits, starts)`` of the runtime's windows.

        Requires at least ``segment_frames`` frames in all.
        """
        self._run(None)
        frame_logits = np.concatenate(self.out)
        starts = feat.window_starts(self.n_frames, self.model.features)
        lo, hi = window_frame_ranges(starts, self.model.features.segment_frames, self.stride, len(frame_logits))
        csum = np.concatenate([np.zeros((1, frame_logits.shape[1]), np.float64), np.cumsum(frame_logits, 0, np.float64)])
        logits = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
        return logits.astype(np.float32), starts


def make_runner(model: GenreModel) -> WindowRunner | SequenceRunner:
    """The runner for a model's network layout."""
    return SequenceRunner(model) if model.info.network.layout == "sequence" else WindowRunner(model)
