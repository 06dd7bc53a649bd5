"""Feed feature frames to the network as they arrive: the three network layouts.

Every runner takes consecutive frames with :meth:`~_Runner.push`, cut the
runtime's windows (:func:`genre_infer.features.window_starts`: one every
``window_hop_s``, plus one aligned to the end) as soon as their frames are
there, keep only the frames that later windows need, and return at
:meth:`~_Runner.finish` the logits and starts of every window, equal to one
pass over the whole signal:

- :class:`WindowRunner` runs each window on its own, in small batches;
- :class:`SequenceRunner` runs a sequence network once over a stretch of about
  :data:`~genre_infer.constants.SEQUENCE_CHUNK_FRAMES` frames holding many
  windows, cut with the network's ``context_frames`` on each side, so
  overlapping windows share their computation;
- :class:`StreamRunner` runs a stream network over consecutive stretches of
  :data:`~genre_infer.constants.SEQUENCE_CHUNK_FRAMES` new frames (plus the
  context), keeps the frame embeddings each call returns, and pools every
  window as soon as its frames are embedded: a frame is embedded once,
  whichever windows and stretches it belongs to.
"""

from __future__ import annotations

import numpy as np

from . import features as feat
from .constants import SEQUENCE_CHUNK_FRAMES
from .model import GenreModel

__all__ = ["WindowRunner", "SequenceRunner", "StreamRunner", "make_runner", "window_logits"]


class _Runner:
    """Window bookkeeping shared by every layout; subclasses say how windows are run."""

    def __init__(self, model: GenreModel) -> None:
        self.model = model
        spec = model.features
        self.seg, self.hop = spec.segment_frames, feat.window_hop_frames(spec)
        self.buf = np.zeros((0, spec.n_bands), dtype=np.float32)  # frames [offset, offset + len(buf))
        self.offset = self.next_k = 0
        self.last_start = -1
        self.pending = np.zeros(0, dtype=np.int64)  # window starts cut but not yet run
        self.logits: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []

    @property
    def n_frames(self) -> int:
        """Frames pushed so far."""
        return self.offset + len(self.buf)

    def _first_unrun(self) -> int:
        """The first frame a window still to run starts at: the oldest pending window, else the
        next regular one, and never after the end-aligned window (``finish`` may add it)."""
        first = int(self.pending[0]) if len(self.pending) else int(round(self.next_k * self.hop))
        return min(first, self.n_frames - self.seg)

    def _keep_from(self, frame: int) -> None:
        drop = frame - self.offset
        if drop > 0:
            self.buf, self.offset = self.buf[drop:], self.offset + drop

    def _add(self, starts: np.ndarray, final: bool) -> None:
        raise NotImplementedError

    def push(self, frames: np.ndarray) -> None:
        """Add frames; run the windows whose frames (and context) are all there."""
        self.buf = np.concatenate([self.buf, frames])
        new = feat.regular_window_starts(self.next_k, self.n_frames - self.seg, self.hop)
        self.next_k += len(new)
        if len(new):
            self.last_start = int(new[-1])
        self._add(new, final=False)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Run the remaining windows (one aligned to the end) → ``(logits, starts)`` of all windows.

        Requires at least ``segment_frames`` frames in all.
        """
        last = self.n_frames - self.seg
        new = feat.regular_window_starts(self.next_k, last, self.hop)
        final = int(new[-1]) if len(new) else self.last_start
        if final != last:
            new = np.append(new, last).astype(np.int64)
        self._add(new, final=True)
        return np.concatenate(self.logits), np.concatenate(self.starts)


class WindowRunner(_Runner):
    """Windows ``(segment_frames, bands)`` through a windowed network, a batch per block."""

    def _add(self, starts: np.ndarray, final: bool) -> None:
        if len(starts):
            self.logits.append(self.model.logits(feat.frame_windows(self.buf, starts - self.offset, self.seg)))
            self.starts.append(starts)
        if not final:  # the next regular window, and the end-aligned one, need no earlier frames
            self._keep_from(self._first_unrun())


class _StretchRunner(_Runner):
    """A network run over stretches of about ``chunk_frames`` frames, cut with its context."""

    def __init__(self, model: GenreModel, chunk_frames: int = SEQUENCE_CHUNK_FRAMES) -> None:
        super().__init__(model)
        self.context = model.info.network.context_frames
        self.chunk = max(1, chunk_frames)


class SequenceRunner(_StretchRunner):
    """Stretches of frames through a sequence network, each pooling many windows."""

    def _run(self, starts: np.ndarray) -> None:
        lo = max(0, int(starts[0]) - self.context)
        hi = min(self.n_frames, int(starts[-1]) + self.seg + self.context)
        self.logits.append(self.model.sequence_logits(self.buf[lo - self.offset : hi - self.offset], starts - lo))
        self.starts.append(starts)

    def _add(self, starts: np.ndarray, final: bool) -> None:
        self.pending = np.concatenate([self.pending, starts])
        # a window is ready once its right context has arrived (or the signal has ended)
        ready_until = self.n_frames if final else self.n_frames - self.seg - self.context
        while len(self.pending):
            group = self.pending[self.pending < self.pending[0] + self.chunk]
            if not final and (group[-1] > ready_until or self.pending[-1] < self.pending[0] + self.chunk):
                break  # wait for a full stretch, so calls stay large
            self._run(group)
            self.pending = self.pending[len(group):]
        if not final:
            self._keep_from(self._first_unrun() - self.context)


class StreamRunner(_StretchRunner):
    """Consecutive stretches through a stream network; windows pooled from the kept embeddings."""

    def __init__(self, model: GenreModel, chunk_frames: int = SEQUENCE_CHUNK_FRAMES) -> None:
        super().__init__(model, chunk_frames)
        self.emb = np.zeros((0, model.frame_dim), dtype=np.float32)  # embeddings of frames [emb_offset, embedded)
        self.emb_offset = self.embedded = 0

    def _embed(self, end: int) -> None:
        """Embed frames ``[embedded, end)`` in one call and pool every window they complete."""
        lo, hi = max(0, self.embedded - self.context), min(self.n_frames, end + self.context)
        ready = self.pending[self.pending + self.seg <= end]
        logits, frames = self.model.stream_logits(
            self.buf[lo - self.offset : hi - self.offset], (self.embedded - lo, end - lo), self.emb,
            ready - self.emb_offset)
        self.emb, self.embedded = np.concatenate([self.emb, frames]), end
        if len(ready):
            self.logits.append(logits)
            self.starts.append(ready)
            self.pending = self.pending[len(ready):]
        # after every call, however many frames one push brought: keep only the embeddings
        # later windows need (the next call gets them as `past`), and the features later calls need
        first = max(self.emb_offset, min(self._first_unrun(), self.embedded))
        self.emb, self.emb_offset = self.emb[first - self.emb_offset :], first
        self._keep_from(self.embedded - self.context)

    def _add(self, starts: np.ndarray, final: bool) -> None:
        self.pending = np.concatenate([self.pending, starts])
        if final:
            while self.embedded < self.n_frames:
                self._embed(min(self.n_frames, self.embedded + self.chunk))
            if len(self.pending):
                raise RuntimeError(f"{len(self.pending)} windows were never pooled")  # a bookkeeping bug
            return
        # a full stretch and its right context, leaving at least one frame for finish() (which
        # adds the end-aligned window: it must be completed by a call of its own)
        while self.embedded + self.chunk + self.context < self.n_frames:
            self._embed(self.embedded + self.chunk)


def make_runner(model: GenreModel) -> WindowRunner | SequenceRunner | StreamRunner:
    """The runner for a model's network layout."""
    layout = model.info.network.layout
    if layout == "stream":
        return StreamRunner(model, model.info.network.chunk_frames or SEQUENCE_CHUNK_FRAMES)
    return SequenceRunner(model) if layout == "sequence" else WindowRunner(model)


def window_logits(model: GenreModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits and starts of every runtime window of features ``x (frames, bands)``, handed over at
    once (at least ``segment_frames`` frames), whatever the model's layout."""
    runner = make_runner(model)
    runner.push(x)
    return runner.finish()
