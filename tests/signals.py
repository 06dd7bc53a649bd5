"""Synthetic audio for the tests: tones, noise, clicks and rhythms (no dataset audio)."""

from __future__ import annotations

import numpy as np


def tone(sr: int, seconds: float, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    """A sine tone with a few harmonics."""
    t = np.arange(int(sr * seconds)) / sr
    y = sum(amp / k * np.sin(2 * np.pi * freq * k * t) for k in (1, 2, 3))
    return (y / 1.9).astype(np.float32)


def noise(sr: int, seconds: float, amp: float = 0.3, seed: int = 0, highpass: bool = True) -> np.ndarray:
    """White noise, optionally first-differenced (tilted towards high frequencies)."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(int(sr * seconds) + 1)
    if highpass:
        y = np.diff(y)
    else:
        y = y[:-1]
    return (amp * y / np.max(np.abs(y))).astype(np.float32)


def clicks(sr: int, seconds: float, bpm: float = 120.0, amp: float = 0.8) -> np.ndarray:
    """A click track: short decaying bursts on every beat."""
    y = np.zeros(int(sr * seconds), dtype=np.float32)
    click = amp * np.exp(-np.arange(int(0.01 * sr)) / (0.002 * sr)).astype(np.float32)
    for start in np.arange(0, seconds, 60.0 / bpm):
        i = int(start * sr)
        n = min(len(click), len(y) - i)
        y[i : i + n] += click[:n]
    return y


def rhythm(sr: int, seconds: float, bpm: float = 100.0, seed: int = 1) -> np.ndarray:
    """A kick-and-hat pattern over a bass tone: a crude synthetic song."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    y = 0.2 * tone(sr, seconds, 55.0)
    beat = 60.0 / bpm
    kick_t = np.arange(int(0.15 * sr)) / sr
    kick = (0.8 * np.sin(2 * np.pi * 60 * kick_t) * np.exp(-kick_t / 0.05)).astype(np.float32)
    hat = (0.2 * rng.standard_normal(int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / (0.005 * sr))).astype(np.float32)
    for k, start in enumerate(np.arange(0, seconds, beat / 2)):
        i = int(start * sr)
        src = kick if k % 2 == 0 else hat
        m = min(len(src), n - i)
        y[i : i + m] += src[:m]
    return np.clip(y, -1, 1).astype(np.float32)


def die_on(path: str) -> tuple[str, str]:
    """A stand-in for the CLI's per-file work in worker processes: the process dies
    (as if killed for memory) on a path containing "die", else returns ``("ok", path)``."""
    import os

    if "die" in path:
        os._exit(3)
    return "ok", path
