"""Feature-domain augmentation: random crops, gain, SpecAugment masks, mixup.

Gain is applied to *raw* (unstandardised) features and is exact for every
front end, because a gain ``g`` (power ratio) multiplies the mel power ``S``:

- ``log10_1p``: ``x = log10(1 + C S)`` becomes ``log10(1 + g (10**x - 1))``;
- ``db``: ``x`` becomes ``x + 10 log10 g``;
- ``mfcc`` (orthonormal DCT of dB mel): only ``c0`` moves, by ``10 log10(g) * sqrt(n_mels)``.

The ``db`` forms are exact wherever the mel power is above the ``1e-10``
(-100 dB) floor of :mod:`genre_infer.features`; digital silence stays at the floor.
"""

from __future__ import annotations

import numpy as np

from genre_infer.features import FeatureSpec

__all__ = ["random_crop", "apply_gain", "spec_augment", "mixup"]


def random_crop(x: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random window of ``frames`` frames from a whole-track ``(n, bands)`` matrix."""
    start = int(rng.integers(0, len(x) - frames + 1))
    return x[start : start + frames]


def apply_gain(x: np.ndarray, gain_db: float, spec: FeatureSpec) -> np.ndarray:
    """Raw features of the same audio scaled by ``gain_db`` decibels (exact, see module doc)."""
    if gain_db == 0.0:
        return x
    if spec.kind == "mfcc":
        out = x.copy()
        out[..., 0] += np.float32(gain_db * np.sqrt(spec.n_mels))
        return out
    if spec.compression == "db":
        return np.maximum(x + np.float32(gain_db), np.float32(-100.0)).astype(np.float32)  # the -100 dB floor
    g = 10.0 ** (gain_db / 10.0)
    return np.log10(1.0 + g * np.expm1(x.astype(np.float64) * np.log(10.0))).astype(np.float32)


def spec_augment(
    x: np.ndarray, rng: np.random.Generator, freq_mask: int, time_mask: int, n_masks: int = 1
) -> np.ndarray:
    """Zero (the standardised mean) random bands and frame ranges of a ``(frames, bands)`` window."""
    out = x.copy()
    frames, bands = out.shape
    for _ in range(n_masks):
        if freq_mask > 0:
            w = int(rng.integers(0, min(freq_mask, bands // 2) + 1))
            f0 = int(rng.integers(0, bands - w + 1))
            out[:, f0 : f0 + w] = 0.0
        if time_mask > 0:
            w = int(rng.integers(0, min(time_mask, frames // 2) + 1))
            t0 = int(rng.integers(0, frames - w + 1))
            out[t0 : t0 + w, :] = 0.0
    return out


def mixup(
    x: np.ndarray, y: np.ndarray, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mix a batch with a permutation of itself: ``x`` windows, ``y`` one-hot targets."""
    if alpha <= 0:
        return x, y
    lam = np.float32(rng.beta(alpha, alpha))
    perm = rng.permutation(len(x))
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
