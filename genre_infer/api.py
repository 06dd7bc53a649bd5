"""``classify()`` and ``load_model()``: audio → features → network → timeline → result."""

from __future__ import annotations

import contextlib
import math
import os
import threading
from typing import Iterable, NamedTuple, Union

import numpy as np

from . import audio as audio_mod
from . import features as feat
from . import timeline as tl
from .constants import (
    LEVEL_KEEP_S, MAX_PEAK, MIN_DURATION_S, MIN_SECTION_S, SILENCE_PEAK, SMOOTHING_RADIUS, TIMELINE_STEP_S,
)
from .errors import AudioError, DecodeError, ModelError, SilentError, TooShortError
from .inference import make_runner
from .loudness import LevelMeter, gain_to
from .model import Device, GenreModel
from .result import UNCERTAIN, Result, Section

__all__ = ["Classifier", "Analysis", "load_model", "classify", "AudioInput"]

AudioInput = Union[str, "os.PathLike[str]", np.ndarray]


class Analysis(NamedTuple):
    """What the network saw: window logits and probabilities and where the windows lie."""

    logits: np.ndarray  #: ``(windows, labels)`` network outputs
    probs: np.ndarray  #: ``(windows, labels)`` calibrated probabilities
    starts_s: np.ndarray  #: ``(windows,)`` window start times in seconds
    n_samples: int  #: length of the signal at the model's rate
    peak: float  #: largest absolute sample value once each block's mean (DC offset) is removed


class Classifier:
    """A loaded model ready to classify many songs (one onnxruntime session, thread-safe).

    Parameters
    ----------
    model : str, os.PathLike or None
        ``.onnx`` path, a shipped model's name, or ``None`` for the default model.
    device : {"auto", "cpu", "cuda"}
        Execution device; ``auto`` picks CUDA when onnxruntime-gpu has it.
    threads : int, optional
        onnxruntime intra-op threads.
    """

    def __init__(
        self, model: str | os.PathLike[str] | None = None, *, device: Device = "auto",
        threads: int | None = None,
    ) -> None:
        self.model = GenreModel(model, device=device, threads=threads)

    def __repr__(self) -> str:
        device = "cuda" if self.model.providers[0] == "CUDAExecutionProvider" else "cpu"
        return f"Classifier(model={self.name!r}, version={self.version!r}, device={device!r}, path={str(self.model.path)!r})"

    @property
    def labels(self) -> tuple[str, ...]:
        """Genres this model tells apart."""
        return self.model.labels

    @property
    def name(self) -> str:
        """Model name from its metadata."""
        return self.model.info.name

    @property
    def version(self) -> str:
        """Model version from its metadata."""
        return self.model.info.version

    def _blocks(self, audio: AudioInput, sr: int | None) -> tuple[Iterable[np.ndarray], float | None]:
        """Mono float32 blocks at the model's rate from a path (streamed) or an array, and
        a file's gated level when the model normalises loudness (else ``None``: an array
        comes as a list, which :meth:`analyse` measures itself).

        The level needs the whole signal first: a file up to ``LEVEL_KEEP_S`` long is
        decoded once and its blocks kept meanwhile; a longer one is decoded twice.
        """
        target = self.model.features.sr
        normalise = self.model.features.level_db is not None
        if isinstance(audio, np.ndarray):
            if sr is None:
                raise AudioError("a numpy array needs its sample rate: classify(y, sr=...)")
            return [audio_mod.from_array(audio, sr, target)], None
        if not isinstance(audio, (str, os.PathLike)):
            raise AudioError(f"expected a file path or a numpy array, got {type(audio).__name__}")
        if not normalise:
            return audio_mod.stream(audio, target), None
        meter, kept, n = LevelMeter(target), [], 0
        for block in audio_mod.stream(audio, target):
            meter.push(block)
            n += len(block)
            if kept is not None:
                kept.append(block)
                if n > LEVEL_KEEP_S * target:
                    kept = None  # too long to keep: decoded again below
        level = meter.level_db()
        # NaN: measured, and nothing to measure (digital silence): analyse applies no gain
        return (kept if kept is not None else audio_mod.stream(audio, target)), (math.nan if level is None else level)

    def analyse(self, blocks: Iterable[np.ndarray], level_db: float | None = None) -> Analysis:
        """Run the network over a signal given as consecutive blocks at the model's rate.

        Features and windows are computed as the blocks arrive, so memory does
        not grow with the length of the signal; the windows are exactly those
        of :func:`genre_infer.features.window_starts` over the whole signal.
        A signal shorter than one window is repeated to fill it. A model that
        normalises loudness (``features.level_db``) needs the signal's gated level
        (:func:`genre_infer.loudness.gated_level_db`): pass ``level_db``, or pass the
        blocks as a list and it is measured here (NaN: measured, no level, no gain).

        Returns
        -------
        Analysis
            Window probabilities, their start times, the sample count and the peak.
        """
        spec = self.model.features
        if spec.level_db is not None and level_db is None:
            if not isinstance(blocks, (list, tuple)):
                raise ValueError("this model normalises loudness: pass level_db, or the blocks as a list")
            meter = LevelMeter(spec.sr)
            for b in blocks:
                meter.push(b)
            level_db = meter.level_db()
        nets = [_Network(self.model, level_db, spec.sr)]
        nets += [_Network(m, level_db, spec.sr) for m, _ in self.model.experts]
        n_samples, peak = 0, 0.0
        for block in blocks:
            if len(block) == 0:
                continue
            if not np.isfinite(block).all():  # arrays are checked on the way in; files here
                raise AudioError("the audio holds non-finite samples (NaN or infinity)")
            peak = max(peak, float(np.max(np.abs(block - block.mean()))))  # a DC offset is not signal
            n_samples += len(block)
            for net in nets:
                net.push(block)
        if n_samples == 0:
            empty = np.zeros((0, len(self.labels)), np.float32)
            return Analysis(empty, empty, np.zeros(0), 0, 0.0)
        logits, starts = nets[0].finish()
        for net, (_, weights) in zip(nets[1:], self.model.experts):
            logits = logits + weights * net.finish_at(starts)
        return Analysis(logits, self.model.calibrate(logits), starts, n_samples, peak)

    def window_probabilities(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities of every network window of a whole signal at the model's rate.

        Returns
        -------
        probs : np.ndarray
            ``(windows, labels)``.
        starts_s : np.ndarray
            ``(windows,)`` window start times in seconds.
        """
        a = self.analyse([np.asarray(y, dtype=np.float32)])
        return a.probs, a.starts_s

    def classify(self, audio: AudioInput, sr: int | None = None) -> Result:
        """Classify one song. See :func:`classify`."""
        spec = self.model.features
        with contextlib.ExitStack() as stack, np.errstate(all="ignore"):  # absurd values are refused below
            readable = audio
            if isinstance(audio, (str, os.PathLike)):  # a pipe can be read only once: copied first
                readable = stack.enter_context(audio_mod.seekable_copy(audio))
            blocks, level = self._blocks(readable, sr)
            a = self.analyse(blocks, level)
        duration = a.n_samples / spec.sr
        if a.n_samples == 0:
            raise DecodeError("no audio could be decoded (empty or truncated file)")
        if duration < MIN_DURATION_S:
            raise TooShortError(
                f"too short ({duration:.2f} s; at least {MIN_DURATION_S:g} s of audio is needed)"
            )
        if a.peak <= SILENCE_PEAK:
            raise SilentError("silent (no signal above -80 dBFS)")
        if a.peak > MAX_PEAK:
            raise AudioError(f"sample values far outside [-1, 1] (peak {a.peak:.3g}): not audio scaled as files are")
        if not np.isfinite(a.logits).all():  # sane audio in, garbage out: the model is broken
            raise ModelError(f"{self.model.path}: the network's output holds NaN or infinity (a broken model)")
        info = self.model.info
        steps, song = tl.timeline_from_logits(
            a.logits, a.starts_s, spec.segment_s, duration, TIMELINE_STEP_S, info.temperature,
            *info.smoothing_args,
        )
        sections = tuple(
            Section(lo, hi, UNCERTAIN if conf < info.uncertain_below else info.labels[i], conf)
            for lo, hi, i, conf in tl.segment_runs(
                steps, TIMELINE_STEP_S, duration, MIN_SECTION_S, SMOOTHING_RADIUS
            )
        )
        return Result(
            source=None if isinstance(audio, np.ndarray) else os.fspath(audio),
            duration=duration,
            labels=info.labels,
            probabilities=song,
            timeline_probabilities=steps,
            step=TIMELINE_STEP_S,
            sections=sections,
            model_name=info.name,
            model_version=info.version,
            uncertain_below=info.uncertain_below,
        )

    __call__ = classify


class _Network:
    """One network's features and windows over a signal that arrives in blocks at ``sr``
    (resampled to the network's own rate, scaled to its loudness level)."""

    def __init__(self, model: GenreModel, level_db: float | None, sr: int) -> None:
        self.model, self.spec = model, model.features
        self.gain = np.float32(1.0 if self.spec.level_db is None else gain_to(level_db, self.spec.level_db))
        self.resampler = audio_mod.block_resampler(sr, self.spec.sr)
        self.stream = feat.FeatureStream(self.spec)
        self.runner = make_runner(model)
        self.head: list[np.ndarray] = []  # the samples, kept only while shorter than one window

    def push(self, block: np.ndarray, last: bool = False) -> None:
        y = self.resampler(block, last)
        if self.gain != 1:
            y = y * self.gain
        if self.stream.n_samples < self.spec.segment_samples:
            self.head.append(y)
        self.runner.push(self.stream.push(y))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Window logits and window starts in seconds."""
        self.push(np.zeros(0, np.float32), last=True)
        self.runner.push(self.stream.finish())
        if self.runner.n_frames < self.spec.segment_frames:  # short input: repeat it to fill one window
            self.runner = make_runner(self.model)
            self.runner.push(feat.compute(feat.fill_window(np.concatenate(self.head), self.spec), self.spec))
        logits, starts = self.runner.finish()
        return logits, starts * self.spec.hop_length / self.spec.sr

    def finish_at(self, starts_s: np.ndarray) -> np.ndarray:
        """Window logits of the windows whose starts are nearest ``starts_s``."""
        logits, own = self.finish()
        if len(own) == 1:
            return np.repeat(logits, len(starts_s), axis=0)
        right = np.clip(np.searchsorted(own, starts_s), 1, len(own) - 1)
        nearer_left = starts_s - own[right - 1] <= own[right] - starts_s
        return logits[np.where(nearer_left, right - 1, right)]


def load_model(
    path: str | os.PathLike[str] | None = None, *, device: Device = "auto", threads: int | None = None
) -> Classifier:
    """Load a model once for classifying many songs.

    Parameters
    ----------
    path : str, os.PathLike or None
        ``.onnx`` file exported by ``python -m train export``, a shipped model's
        name, or ``None`` for the default model.
    device : {"auto", "cpu", "cuda"}
        Execution device.
    threads : int, optional
        onnxruntime intra-op threads.

    Returns
    -------
    Classifier
        Reusable, thread-safe classifier.

    Raises
    ------
    ModelError
        The file is not a genre-infer model.
    """
    return Classifier(path, device=device, threads=threads)


_cache: dict[tuple[str | None, str, int | None], Classifier] = {}
_cache_lock = threading.Lock()


def classify(
    audio: AudioInput, sr: int | None = None, *, model: str | os.PathLike[str] | Classifier | None = None,
    device: Device = "auto", threads: int | None = None,
) -> Result:
    """Classify the genre of a song, second by second.

    Parameters
    ----------
    audio : str, os.PathLike or np.ndarray
        A file path, or a signal ``(samples,)`` / ``(channels, samples)`` at ``sr`` Hz.
    sr : int, optional
        Sample rate of an array input (required then; ignored for files).
    model : str, os.PathLike, Classifier or None
        Model file or shipped model name (loaded once and cached), a
        :class:`Classifier`, or ``None`` for the default model.
    device : {"auto", "cpu", "cuda"}
        Execution device when the model is loaded here.
    threads : int, optional
        onnxruntime intra-op threads when the model is loaded here.

    Returns
    -------
    Result
        Verdict, per-genre probabilities, per-second timeline and sections.

    Raises
    ------
    AudioError
        Missing, undecodable, too short or silent audio.
    ModelError
        The model is not a genre-infer model.

    Examples
    --------
    >>> from genre_infer import classify
    >>> result = classify("song.mp3")                     # doctest: +SKIP
    >>> result.genre, round(result.confidence, 2)         # doctest: +SKIP
    ('rock', 0.88)
    """
    if isinstance(model, Classifier):
        return model.classify(audio, sr)
    key = (None if model is None else os.fspath(model), device, threads)
    with _cache_lock:
        clf = _cache.get(key)
        if clf is None:
            clf = _cache[key] = Classifier(model, device=device, threads=threads)
    return clf.classify(audio, sr)
