"""Waveform augmentations that mimic how real recordings differ from GTZAN clips.

Each function takes a mono float32 signal ``y`` at ``sr`` Hz and returns a new
one; :func:`random_chain` draws a random combination. They run before the
features (``genre_infer.features``), so a model learns from the same
front end it meets at run time.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

__all__ = ["gain", "drive", "tilt_eq", "add_noise", "speed", "lowpass", "mp3_roundtrip", "Chain", "random_chain"]


def gain(y: np.ndarray, db: float) -> np.ndarray:
    """Scale by ``db`` decibels (clipped to [-1, 1] like a real file would be)."""
    return np.clip(y * np.float32(10.0 ** (db / 20.0)), -1.0, 1.0).astype(np.float32)


def drive(y: np.ndarray, db: float, soft: bool = False) -> np.ndarray:
    """Push ``db`` decibels into full scale: hard clipping, or a ``tanh`` soft clipper.

    Loud modern masters are limited and clipped far more than GTZAN's clips; this
    mimics them (the level itself is normalised at run time, the distortion is not).

    Parameters
    ----------
    y : np.ndarray
        Mono float32 signal.
    db : float
        Gain before the clipper.
    soft : bool
        ``tanh`` (a soft knee, no flat tops) instead of clipping to [-1, 1].
    """
    z = y * np.float32(10.0 ** (db / 20.0))
    return (np.tanh(z) if soft else np.clip(z, -1.0, 1.0)).astype(np.float32)


def _filter(y: np.ndarray, sr: int, curve_db: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    spec = np.fft.rfft(y)
    f = np.fft.rfftfreq(len(y), 1.0 / sr)
    spec *= 10.0 ** (np.interp(f, freqs, curve_db) / 20.0)
    return np.fft.irfft(spec, n=len(y)).astype(np.float32)


def tilt_eq(y: np.ndarray, sr: int, rng: np.random.Generator, max_db: float = 6.0) -> np.ndarray:
    """A smooth random EQ: a spectral tilt plus a few broad boosts/cuts (±``max_db``)."""
    freqs = np.geomspace(20.0, sr / 2.0, 8)
    tilt = rng.uniform(-max_db, max_db) * np.linspace(-1.0, 1.0, len(freqs))
    bumps = rng.uniform(-max_db / 2, max_db / 2, len(freqs))
    return _filter(y, sr, tilt + bumps, freqs)


def lowpass(y: np.ndarray, sr: int, cutoff_hz: float) -> np.ndarray:
    """Remove content above ``cutoff_hz`` (a band-limited source or a low-bitrate codec)."""
    freqs = np.array([0.0, cutoff_hz * 0.95, cutoff_hz, sr / 2.0])
    return _filter(y, sr, np.array([0.0, 0.0, -60.0, -80.0]), freqs)


def add_noise(y: np.ndarray, rng: np.random.Generator, snr_db: float, pink: bool = True) -> np.ndarray:
    """Add white or pink noise at ``snr_db`` below the signal's RMS."""
    n = rng.standard_normal(len(y)).astype(np.float32)
    if pink:  # 1/f power: scale the spectrum by 1/sqrt(f)
        spec = np.fft.rfft(n)
        spec[1:] /= np.sqrt(np.arange(1, len(spec)))
        n = np.fft.irfft(spec, n=len(y)).astype(np.float32)
    rms_y = float(np.sqrt(np.mean(y**2))) + 1e-9
    rms_n = float(np.sqrt(np.mean(n**2))) + 1e-9
    return (y + n * (rms_y / rms_n) * 10.0 ** (-snr_db / 20.0)).astype(np.float32)


def speed(y: np.ndarray, sr: int, factor: float) -> np.ndarray:
    """Play ``factor`` times faster: tempo and pitch change together (tape/turntable speed)."""
    import soxr

    return soxr.resample(y, sr, int(round(sr / factor)), quality="HQ").astype(np.float32)


def mp3_roundtrip(y: np.ndarray, sr: int, quality: float) -> np.ndarray:
    """Encode to mp3 and decode again (``quality`` 0 best … 1 worst, libsndfile's VBR scale)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(y, -1, 1), sr, format="MP3", compression_level=float(quality))
    buf.seek(0)
    z, _ = sf.read(buf, dtype="float32")
    z = z[: len(y)]
    return np.pad(z, (0, len(y) - len(z))) if len(z) < len(y) else z


#: Probability that :func:`random_chain` band-limits a copy (a low-pass between 3.5 kHz and ``sr / 2.2``).
LOWPASS_P = 0.2


@dataclass(frozen=True)
class Chain:
    """The probabilities of :func:`random_chain`'s optional steps (its recipe).

    Attributes
    ----------
    lowpass_p : float
        Probability of a low-pass between 3.5 kHz and ``sr / 2.2`` (band-limited sources,
        low-bitrate codecs).
    drive_p : float
        Probability that the copy is finally driven 3–15 dB into full scale, hard or
        soft clipped (:func:`drive`; loud, limited masters). 0 draws nothing, so the
        chain's other steps are those of a recipe without it.
    """

    lowpass_p: float = LOWPASS_P
    drive_p: float = 0.0

    def _changed(self) -> list[tuple[str, float]]:
        """The probabilities that differ from the default recipe's, by field name."""
        default = Chain()
        return [(f, getattr(self, f)) for f in ("lowpass_p", "drive_p") if getattr(self, f) != getattr(default, f)]

    def key(self) -> str:
        """A cache-key suffix: empty for the default recipe, so older caches stay valid."""
        names = {"lowpass_p": "lowpass", "drive_p": "drive"}
        return "".join(f"|{names[f]}{p:g}" for f, p in self._changed())

    def describe(self) -> str:
        """How the recipe differs from the default, in words for a model's training note
        (empty for the default recipe)."""
        words = {"lowpass_p": "band-limited", "drive_p": "driven into clipping"}
        return "".join(f" ({p:g} of them {words[f]})" for f, p in self._changed())


def random_chain(y: np.ndarray, sr: int, rng: np.random.Generator, strength: float = 1.0,
                 chain: Chain = Chain()) -> np.ndarray:
    """A random mix of the augmentations above, each applied with some probability.

    Parameters
    ----------
    y : np.ndarray
        Mono float32 signal.
    sr : int
        Its sample rate.
    rng : np.random.Generator
        Source of randomness (seeded by the caller for reproducibility).
    strength : float
        Scales the ranges (0 returns ``y`` unchanged).
    chain : Chain
        The optional steps' probabilities.
    """
    if strength <= 0:
        return y
    out = y
    if rng.random() < 0.5:
        out = speed(out, sr, float(rng.uniform(1 - 0.08 * strength, 1 + 0.08 * strength)))
    if rng.random() < 0.7:
        out = tilt_eq(out, sr, rng, 6.0 * strength)
    if rng.random() < chain.lowpass_p:
        out = lowpass(out, sr, float(rng.uniform(3500.0, sr / 2.2)))
    if rng.random() < 0.4:
        out = add_noise(out, rng, float(rng.uniform(45.0 - 25.0 * strength, 45.0)), pink=bool(rng.random() < 0.5))
    if rng.random() < 0.3:
        out = mp3_roundtrip(out, sr, float(rng.uniform(0.3, 1.0)))
    peak = float(np.max(np.abs(out))) + 1e-9
    out = gain(out / peak * min(peak, 1.0), float(rng.uniform(-12.0 * strength, 3.0)))
    if chain.drive_p > 0 and rng.random() < chain.drive_p:
        out = drive(out, float(rng.uniform(3.0, 3.0 + 12.0 * strength)), soft=bool(rng.random() < 0.5))
    return out.astype(np.float32)
