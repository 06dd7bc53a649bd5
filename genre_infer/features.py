"""The one definition of the network's input: log-mel spectrograms and MFCCs.

Every parameter comes from a :class:`FeatureSpec`, which is stored in each
model's ONNX metadata by ``train/`` and read back by :mod:`genre_infer.model`.
Two front ends share the code:

- musicnn's (the defaults): the STFT computed with numpy exactly as ``librosa.stft``
  (centred frames, zero padding, periodic Hann window) and librosa's mel filterbank
  (Slaney scale and norm), so ``melgram`` equals ``librosa.feature.melspectrogram``
  followed by the log compression (the test suite checks it);
- EfficientAT's (AudioSet taggers; ``train.audioset.MN04_FEATURES``): pre-emphasis, a symmetric
  Hann window shorter than the FFT, reflect-padded centred frames, Kaldi's HTK-scale
  mel banks and ``ln(S + 1e-5)``, equal to the reference mel of ``mn04_as`` to 1e-5.

Features are laid out ``(frames, bands)``: time first, as the network reads them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any, Literal

import numpy as np

__all__ = [
    "FeatureSpec", "FeatureStream", "power_spectrogram", "melgram", "mfcc", "compute",
    "window_starts", "regular_window_starts", "window_hop_frames", "fill_window", "frame_windows",
]

Kind = Literal["melgram", "mfcc"]
Compression = Literal["log10_1p", "db", "ln"]
MelScale = Literal["slaney", "kaldi"]
PadMode = Literal["constant", "reflect"]


@dataclass(frozen=True)
class FeatureSpec:
    """Everything needed to turn a waveform into network input.

    Attributes
    ----------
    kind : {"melgram", "mfcc"}
        Front end: log-mel spectrogram, or MFCCs computed from the dB mel spectrogram.
    sr : int
        Sample rate in Hz the audio is resampled to.
    n_fft, hop_length : int
        STFT size and hop in samples (periodic Hann window, centred frames).
    n_mels : int
        Mel bands.
    fmin, fmax : float
        Mel band edges in Hz; ``fmax`` of ``None`` means ``sr / 2``.
    compression : {"log10_1p", "db", "ln"}
        ``log10(1 + log_scale * S)`` (musicnn's), ``10 * log10(max(S, 1e-10))``, or
        ``ln(S + log_scale)`` (EfficientAT's, with ``log_scale`` 1e-5).
    log_scale : float
        Multiplier ``C`` of the ``log10_1p`` compression; the offset of ``ln``.
    n_mfcc : int
        MFCC coefficients kept (``kind == "mfcc"`` only).
    segment_frames : int
        Frames per network input window.
    window_hop_s : float
        Hop between consecutive windows in seconds.
    mean, std : float
        Global standardisation applied last: ``(x - mean) / std``.
    level_db : float or None
        Gated RMS level (dBFS) every signal is scaled to before the features
        (:mod:`genre_infer.loudness`); ``None``: signals are taken at their own level.
    mel_scale : {"slaney", "kaldi"}
        librosa's Slaney-normalised filters, or Kaldi's unnormalised triangles on the
        HTK scale ``1127 ln(1 + f / 700)`` (zero at the Nyquist bin).
    win_length : int or None
        Window length in samples, centred in the FFT frame (``None``: ``n_fft``).
    symmetric_window : bool
        Symmetric Hann window (``False``: periodic).
    pad_mode : {"constant", "reflect"}
        How the signal is padded by ``n_fft // 2`` on each side for centred frames.
    preemphasis : float
        ``y[t + 1] - preemphasis * y[t]`` before the STFT (one sample fewer); 0: none.
    cutoff_hz : float or None
        FFT bins above this frequency are zeroed: every input is band-limited alike, so
        full-band and band-limited recordings look the same to the network. ``None``: none.

    Fields after ``level_db`` are stored in the metadata only when they differ from
    their defaults, so a model that does not use them reads as it always did.
    """

    kind: Kind = "melgram"
    sr: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    fmin: float = 0.0
    fmax: float | None = None
    compression: Compression = "log10_1p"
    log_scale: float = 10000.0
    n_mfcc: int = 20
    segment_frames: int = 187
    window_hop_s: float = 1.0
    mean: float = 0.0
    std: float = 1.0
    level_db: float | None = None
    mel_scale: MelScale = "slaney"
    win_length: int | None = None
    symmetric_window: bool = False
    pad_mode: PadMode = "constant"
    preemphasis: float = 0.0
    cutoff_hz: float | None = None

    @property
    def n_bands(self) -> int:
        """Number of feature rows per frame (mel bands or MFCCs)."""
        return self.n_mfcc if self.kind == "mfcc" else self.n_mels

    @property
    def segment_s(self) -> float:
        """Duration covered by one window, in seconds."""
        return self.segment_frames * self.hop_length / self.sr

    @property
    def segment_samples(self) -> int:
        """Samples needed for one full window."""
        return (self.segment_frames - 1) * self.hop_length + 1 + (self.preemphasis != 0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form stored in the model metadata (the optional fields only when they
        differ from their defaults, so a model without them reads as it always did)."""
        d = asdict(self)
        for f in fields(self):
            if f.name in _OPTIONAL_FIELDS and d[f.name] == f.default:
                del d[f.name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Build from metadata; unknown keys are an error (a newer format)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown feature parameters: {sorted(unknown)}")
        spec = cls(**d)
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise ``ValueError`` when a parameter has the wrong type, lies out of range, or
        disagrees with another (the schema in :mod:`genre_infer.schema`)."""
        from .schema import check_features

        check_features(asdict(self))


_OPTIONAL_FIELDS = ("level_db", "mel_scale", "win_length", "symmetric_window", "pad_mode", "preemphasis", "cutoff_hz")


@lru_cache(maxsize=8)
def _hann(n_fft: int, win_length: int | None = None, symmetric: bool = False) -> np.ndarray:
    """Hann window of ``win_length`` (periodic, or symmetric), zero-padded to ``n_fft`` and centred."""
    n = n_fft if win_length is None else int(win_length)
    period = n - 1 if symmetric else n
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / max(period, 1))
    left = (n_fft - n) // 2
    return np.pad(w, (left, n_fft - n - left)).astype(np.float32)


def _window(spec: FeatureSpec) -> np.ndarray:
    return _hann(spec.n_fft, spec.win_length, spec.symmetric_window)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    # Slaney's auditory-toolbox scale (librosa's default, htk=False)
    f = np.asarray(f, dtype=np.float64)
    mels = 3.0 * f / 200.0
    log = f >= 1000.0
    return np.where(log, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), 200.0 * m / 3.0)


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """Slaney-normalised triangular mel filters ``(n_mels, 1 + n_fft // 2)``.

    Equal to ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)``
    (checked by the tests), written out here so that importing the package does
    not pull in scipy.signal through librosa (about a second of start-up).
    """
    fmax = sr / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=8)
def _kaldi_mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> np.ndarray:
    """Kaldi's triangular mel filters ``(n_mels, 1 + n_fft // 2)`` (as torchaudio's
    ``compliance.kaldi.get_mel_banks`` with no VTLN warp, plus a zero Nyquist column):
    unnormalised triangles equally spaced on the HTK scale ``1127 ln(1 + f / 700)``."""
    fmax = sr / 2.0 if fmax is None else float(fmax)
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
    lo, hi = mel(fmin), mel(fmax)
    delta = (hi - lo) / (n_mels + 1)
    left = lo + np.arange(n_mels)[:, None] * delta
    centre, right = left + delta, left + 2.0 * delta
    m = mel(sr / n_fft * np.arange(n_fft // 2))[None, :]
    weights = np.maximum(0.0, np.minimum((m - left) / (centre - left), (right - m) / (right - centre)))
    return np.pad(weights, ((0, 0), (0, 1))).astype(np.float32)


@lru_cache(maxsize=8)
def _filters(spec: FeatureSpec) -> np.ndarray:
    """The mel filters ``(n_mels, bins)`` of a spec, with the bins above ``cutoff_hz`` zeroed."""
    make = _kaldi_mel_basis if spec.mel_scale == "kaldi" else _mel_basis
    basis = make(spec.sr, spec.n_fft, spec.n_mels, spec.fmin, spec.fmax)
    if spec.cutoff_hz is not None:
        basis = basis.copy()
        basis[:, np.fft.rfftfreq(spec.n_fft, 1.0 / spec.sr) > float(spec.cutoff_hz)] = 0.0
    return basis


@lru_cache(maxsize=4)
def _dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    # orthonormal DCT-II, the one librosa.feature.mfcc uses (scipy dct type=2 norm="ortho")
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def _power_frames(padded: np.ndarray, n_fft: int, hop_length: int, n_frames: int,
                  window: np.ndarray | None = None) -> np.ndarray:
    frames = np.lib.stride_tricks.as_strided(
        padded,
        shape=(n_frames, n_fft),
        strides=(padded.strides[0] * hop_length, padded.strides[0]),
        writeable=False,
    )
    spec = np.fft.rfft(frames * (_hann(n_fft) if window is None else window), axis=1)
    return (spec.real**2 + spec.imag**2).astype(np.float32)


def _preemphasise(y: np.ndarray, coef: float) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    return y if coef == 0.0 else y[1:] - np.float32(coef) * y[:-1]


def power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int, spec: FeatureSpec | None = None) -> np.ndarray:
    """Power STFT ``|X|**2`` with centred frames.

    With no ``spec`` (or musicnn's defaults) as ``librosa.stft(center=True, pad_mode="constant")``;
    a ``spec`` may add pre-emphasis, a shorter or symmetric window and reflect padding.

    Parameters
    ----------
    y : np.ndarray
        Mono float32 signal.
    n_fft, hop_length : int
        Frame size and hop in samples.
    spec : FeatureSpec, optional
        Window, padding and pre-emphasis (``n_fft`` and ``hop_length`` are taken from the arguments).

    Returns
    -------
    np.ndarray
        ``(frames, 1 + n_fft // 2)`` float32, frames = ``1 + len(y) // hop_length`` (one sample
        fewer with pre-emphasis).
    """
    window = None
    mode = "constant"
    if spec is not None:
        y, window, mode = _preemphasise(y, spec.preemphasis), _window(spec), spec.pad_mode
    padded = np.pad(np.asarray(y, dtype=np.float32), n_fft // 2, mode=mode)
    return _power_frames(padded, n_fft, hop_length, 1 + (len(padded) - n_fft) // hop_length, window)


def _mel_power(power: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    return power @ _filters(spec).T


def _compress(s: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    if spec.compression == "log10_1p":
        return np.log10(1.0 + spec.log_scale * s)
    if spec.compression == "ln":
        return np.log(s + np.float32(spec.log_scale))
    return 10.0 * np.log10(np.maximum(s, 1e-10))


def _from_power(power: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    mel = _mel_power(power, spec)
    if spec.kind == "mfcc":
        db = 10.0 * np.log10(np.maximum(mel, 1e-10))
        x = db @ _dct_matrix(spec.n_mfcc, spec.n_mels).T
    else:
        x = _compress(mel, spec)
    if spec.mean != 0.0 or spec.std != 1.0:
        x = (x - np.float32(spec.mean)) / np.float32(spec.std)
    return x.astype(np.float32, copy=False)


def melgram(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Compressed mel spectrogram ``(frames, n_mels)``, before standardisation."""
    mel = _mel_power(power_spectrogram(y, spec.n_fft, spec.hop_length, spec), spec)
    return _compress(mel, spec).astype(np.float32)


def mfcc(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """MFCCs ``(frames, n_mfcc)`` from the dB mel spectrogram (librosa's definition, no top_db)."""
    mel = _mel_power(power_spectrogram(y, spec.n_fft, spec.hop_length, spec), spec)
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return (db @ _dct_matrix(spec.n_mfcc, spec.n_mels).T).astype(np.float32)


def compute(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Network features of a whole signal: ``(frames, n_bands)`` float32, standardised.

    Parameters
    ----------
    y : np.ndarray
        Mono float32 signal at ``spec.sr``.
    spec : FeatureSpec
        The model's feature parameters.
    """
    return _from_power(power_spectrogram(y, spec.n_fft, spec.hop_length, spec), spec)


class FeatureStream:
    """Features of a signal that arrives in blocks, equal to :func:`compute` on the whole.

    Feed blocks with :meth:`push`, which returns the frames completed so far;
    :meth:`finish` returns the last frames. Only about ``n_fft`` samples are kept
    between calls, so memory does not grow with the signal's length.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.n_samples = 0
        self._reflect = spec.pad_mode == "reflect"
        self._started = not self._reflect  # reflect padding waits for the first n_fft // 2 + 1 samples
        self._last: np.ndarray | None = None  # the previous block's last raw sample (pre-emphasis)
        pad = 0 if self._reflect else spec.n_fft // 2  # centred frames: left zero pad
        self._buf = np.zeros(pad, dtype=np.float32)

    def push(self, y: np.ndarray) -> np.ndarray:
        """Add a block of samples; return the ``(new_frames, n_bands)`` now complete."""
        y = np.asarray(y, dtype=np.float32)
        self.n_samples += len(y)
        if self.spec.preemphasis != 0.0 and len(y):
            joined = y if self._last is None else np.concatenate([self._last, y])
            self._last = y[-1:].copy()
            y = _preemphasise(joined, self.spec.preemphasis)
        self._buf = np.concatenate([self._buf, y])
        if not self._started:
            half = self.spec.n_fft // 2
            if len(self._buf) <= half:
                return np.zeros((0, self.spec.n_bands), dtype=np.float32)
            self._buf = np.concatenate([self._buf[1 : half + 1][::-1], self._buf])
            self._started = True
        return self._take()

    def finish(self) -> np.ndarray:
        """Close the signal (right padding) and return the remaining frames."""
        half = self.spec.n_fft // 2
        if self._reflect:
            if not self._started:  # the whole signal is shorter than half a frame
                self._buf = np.pad(self._buf, half, mode="reflect") if len(self._buf) > half else self._buf
                self._started = True
            elif len(self._buf) > half:
                self._buf = np.concatenate([self._buf, self._buf[-half - 1 : -1][::-1]])
        else:
            self._buf = np.concatenate([self._buf, np.zeros(half, dtype=np.float32)])
        return self._take()

    def _take(self) -> np.ndarray:
        n_fft, hop = self.spec.n_fft, self.spec.hop_length
        n = 1 + (len(self._buf) - n_fft) // hop if len(self._buf) >= n_fft else 0
        if n == 0:
            return np.zeros((0, self.spec.n_bands), dtype=np.float32)
        x = _from_power(_power_frames(self._buf, n_fft, hop, n, _window(self.spec)), self.spec)
        self._buf = self._buf[n * hop :].copy()
        return x


def fill_window(y: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Repeat a signal shorter than one window until it fills one (longer signals unchanged)."""
    if len(y) >= spec.segment_samples:
        return y
    return np.tile(y, int(np.ceil(spec.segment_samples / len(y))))


def window_hop_frames(spec: FeatureSpec) -> float:
    """Hop between windows in (fractional) feature frames."""
    return spec.window_hop_s * spec.sr / spec.hop_length


def regular_window_starts(first: int, last: int, hop_frames: float) -> np.ndarray:
    """Starts ``round(k * hop_frames)`` for ``k >= first`` that are at most ``last``."""
    if last < 0:
        return np.zeros(0, dtype=np.int64)
    k = np.arange(first, int(np.floor((last + 1e-9) / hop_frames)) + 1)
    return np.round(k * hop_frames).astype(np.int64)


def window_starts(n_frames: int, spec: FeatureSpec) -> np.ndarray:
    """First frame of each network window over ``n_frames`` feature frames.

    Windows start every ``window_hop_s`` seconds; when the last regular window
    stops short of the end, one more window is aligned to the end so every
    frame is seen. Requires ``n_frames >= spec.segment_frames``.
    """
    last = n_frames - spec.segment_frames
    if last < 0:
        raise ValueError("fewer frames than one window")
    starts = regular_window_starts(0, last, window_hop_frames(spec))
    return starts if starts[-1] == last else np.append(starts, last)


def frame_windows(x: np.ndarray, starts: np.ndarray, segment_frames: int) -> np.ndarray:
    """Stack windows ``x[s : s + segment_frames]`` into ``(windows, segment_frames, bands)``."""
    view = np.lib.stride_tricks.sliding_window_view(x, segment_frames, axis=0)
    # sliding_window_view puts the window axis last: (n, bands, seg) -> (n, seg, bands)
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1))
