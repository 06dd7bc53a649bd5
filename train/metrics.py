"""Segment- and track-level scores, aggregated exactly as the runtime aggregates.

A track's verdict is what ``genre-infer`` prints: window logits ->
:func:`genre_infer.timeline.timeline_from_logits` -> argmax, over the windows of
:func:`genre_infer.features.window_starts`. Pass the model's temperature: the
verdict is a mean of calibrated per-second probabilities, so it can depend on it.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from genre_infer import timeline as tl
from genre_infer.timeline import softmax
from genre_infer.constants import TIMELINE_STEP_S
from genre_infer.features import FeatureSpec, frame_windows, window_starts

__all__ = ["softmax", "track_windows", "track_timeline", "track_verdict", "scores", "TrackPrediction", "predict_tracks"]




def track_windows(x: np.ndarray, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    """All network windows of a (standardised) whole-track matrix and their start times (s)."""
    starts = window_starts(len(x), spec)
    return frame_windows(x, starts, spec.segment_frames), starts * spec.hop_length / spec.sr


def track_timeline(
    logits: np.ndarray, starts_s: np.ndarray, spec: FeatureSpec, n_samples: int, temperature: float = 1.0,
    smoothing: tuple[float, float] = (0.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Per-second and track probabilities from window logits, as ``genre-infer`` computes them
    (pass the model's ``info.smoothing_args`` as ``smoothing``)."""
    return tl.timeline_from_logits(logits, starts_s, spec.segment_s, n_samples / spec.sr, TIMELINE_STEP_S,
                                   temperature, *smoothing)


def track_verdict(
    logits: np.ndarray, starts_s: np.ndarray, spec: FeatureSpec, n_samples: int, temperature: float = 1.0,
) -> np.ndarray:
    """Track probabilities from window logits, as ``genre-infer`` computes them."""
    return track_timeline(logits, starts_s, spec, n_samples, temperature)[1]


class TrackPrediction:
    """Window and track outputs of one track."""

    def __init__(self, label: int, window_logits: np.ndarray, window_probs: np.ndarray, track_probs: np.ndarray):
        self.label = label
        self.window_logits = window_logits
        self.window_probs = window_probs
        self.track_probs = track_probs


def predict_tracks(
    items: list[tuple[np.ndarray, int, int]], spec: FeatureSpec,
    logits_fn: Callable[[np.ndarray], np.ndarray], temperature: float = 1.0,
) -> list[TrackPrediction]:
    """Run ``logits_fn`` over every window of each ``(standardised x, label, n_samples)``."""
    out = []
    for x, label, n in items:
        w, starts_s = track_windows(x, spec)
        logits = logits_fn(w)
        p = softmax(logits, temperature)
        out.append(TrackPrediction(label, logits, p, track_verdict(logits, starts_s, spec, n, temperature)))
    return out


def scores(preds: list[TrackPrediction], n_labels: int) -> dict[str, float | int]:
    """Segment and track accuracy and macro-F1 (over all ``n_labels`` classes present in truth)."""
    seg_true = np.concatenate([np.full(len(p.window_probs), p.label) for p in preds])
    seg_pred = np.concatenate([p.window_probs.argmax(1) for p in preds])
    trk_true = np.array([p.label for p in preds])
    trk_pred = np.array([int(p.track_probs.argmax()) for p in preds])
    present = sorted(set(seg_true.tolist()))
    return {
        "segment_accuracy": float(accuracy_score(seg_true, seg_pred)),
        "segment_macro_f1": float(f1_score(seg_true, seg_pred, labels=present, average="macro", zero_division=0)),
        "track_accuracy": float(accuracy_score(trk_true, trk_pred)),
        "track_macro_f1": float(f1_score(trk_true, trk_pred, labels=present, average="macro", zero_division=0)),
        "segments": int(len(seg_true)),
        "tracks": int(len(trk_true)),
    }
