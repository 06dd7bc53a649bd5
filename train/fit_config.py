"""The configuration of a from-scratch training run (:mod:`train.fit`), without torch, so the
command line can show its defaults instantly."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from .constants import (
    BATCH_SIZE, CROPS_PER_TRACK, DEFAULT_SEGMENT_S, EPOCHS, FREQ_MASK, GAIN_DB, HOP_LENGTH, LEARNING_RATE,
    LOG_SCALE, MIXUP_ALPHA, N_FFT, N_MELS, N_MFCC, PATIENCE, SAMPLE_RATE, SEED, TIME_MASK, TRAIN_SPLITS,
    WEIGHT_DECAY,
)

__all__ = ["FitConfig"]


@dataclass
class FitConfig:
    """Everything that defines a training run (saved as ``config.json``)."""

    data: str = ""
    name: str = "run"
    kind: str = "melgram"
    segment_s: float = DEFAULT_SEGMENT_S
    sr: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    n_mels: int = N_MELS
    n_mfcc: int = N_MFCC
    log_scale: float = LOG_SCALE
    compression: str = "log10_1p"
    net: str = "cnn"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    activation: str = "relu"
    dropout: float = 0.3
    optimizer: str = "adamw"
    lr: float = LEARNING_RATE
    momentum: float = 0.9
    weight_decay: float = WEIGHT_DECAY
    scheduler: str = "cosine"
    batch_size: int = BATCH_SIZE
    epochs: int = EPOCHS
    patience: int = PATIENCE
    crops_per_track: int = CROPS_PER_TRACK
    gain_db: float = GAIN_DB
    freq_mask: int = FREQ_MASK
    time_mask: int = TIME_MASK
    mixup_alpha: float = MIXUP_ALPHA
    label_smoothing: float = 0.0
    train_splits: tuple[str, ...] = TRAIN_SPLITS
    seed: int = SEED
    max_minutes: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitConfig:
        """Inverse of ``asdict`` (lists back to tuples; unknown keys rejected)."""
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise ValueError(f"unknown config keys {sorted(bad)}")
        d = dict(d)
        for k in ("channels", "train_splits"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)
