"""From window logits to a per-second timeline, sections and a verdict.

Windows are pooled as *logits*: a second's logits are the overlap-weighted mean
of the logits of the windows that cover it, and the model's temperature turns
them into calibrated probabilities, so the temperature changes how sure a
second says it is, never which genre wins it. The song's verdict is the
time-weighted mean of the seconds' probabilities: each genre's share of the
song, so a mix of genres reads as its parts rather than as the genre nearest
its average sound (:func:`timeline_from_logits`).

A model may also smooth the seconds over time (:func:`sticky_smooth`, parameters in its
metadata): each second's probabilities become the posterior of a hidden Markov model in
which the genre rarely changes, so a second that disagrees with its neighbours on weak
evidence follows them, while a real change, sustained for a few seconds, switches sharply
where it happens instead of being blurred as a moving average blurs it.

Pure numpy functions: the training wing uses the same ones for its
track-level metrics, so "track accuracy" means what the CLI shows.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "softmax", "step_average", "time_average", "timeline_from_logits", "sticky_smooth", "smooth",
    "segment_runs", "verdict",
]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64 inside, float32 out)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def step_average(
    window_values: np.ndarray,
    window_start_s: np.ndarray,
    window_len_s: float,
    duration: float,
    step: float = 1.0,
) -> np.ndarray:
    """Average overlapping per-window values (logits or probabilities) onto a regular time grid.

    Step ``k`` covers ``[k * step, min((k + 1) * step, duration))``; its
    values are the mean of the windows that overlap it, weighted by the
    length of the overlap.

    Parameters
    ----------
    window_values : np.ndarray
        ``(windows, labels)`` logits or probabilities.
    window_start_s : np.ndarray
        ``(windows,)`` start time of each window in seconds.
    window_len_s : float
        Window duration in seconds.
    duration : float
        Length of the audio in seconds.
    step : float
        Grid resolution in seconds.

    Returns
    -------
    np.ndarray
        ``(ceil(duration / step), labels)`` float32.
    """
    values = np.asarray(window_values, dtype=np.float64)
    n_steps = max(1, math.ceil(duration / step - 1e-9))
    n_labels = values.shape[1]
    acc = np.zeros((n_steps, n_labels), dtype=np.float64)
    weight = np.zeros(n_steps, dtype=np.float64)
    starts = np.asarray(window_start_s, dtype=np.float64)
    ends = starts + window_len_s
    first = np.floor(starts / step).astype(np.int64)
    for j in range(math.ceil(window_len_s / step) + 1):
        k = first + j
        lo = np.maximum(starts, k * step)
        hi = np.minimum(np.minimum(ends, (k + 1) * step), duration)
        overlap = hi - lo
        ok = (overlap > 1e-9) & (k < n_steps) & (k >= 0)
        np.add.at(acc, k[ok], overlap[ok, None] * values[ok])
        np.add.at(weight, k[ok], overlap[ok])
    empty = weight <= 0
    if empty.any():  # cannot happen with windows that cover the audio; stay defined anyway
        nearest = np.clip(np.searchsorted(starts, np.arange(n_steps) * step), 0, len(starts) - 1)
        acc[empty] = values[nearest[empty]]
        weight[empty] = 1.0
    return (acc / weight[:, None]).astype(np.float32)


def time_average(step_values: np.ndarray, step: float, duration: float) -> np.ndarray:
    """Time-weighted mean of a timeline's rows (the last, partial step weighs its length)."""
    n = len(step_values)
    weights = np.full(n, step, dtype=np.float64)
    weights[-1] = max(duration - (n - 1) * step, 1e-9)
    return ((np.asarray(step_values, np.float64) * weights[:, None]).sum(axis=0) / weights.sum()).astype(np.float32)


def sticky_smooth(probs: np.ndarray, switch_prob: float, temperature: float = 1.0) -> np.ndarray:
    """Smooth a ``(steps, labels)`` probability timeline with a sticky hidden Markov model.

    The hidden state is the genre; from one step to the next it stays with probability
    ``1 - switch_prob`` and moves to each other genre with ``switch_prob / (labels - 1)``;
    each step's probabilities are its evidence. The result is the forward-backward
    posterior of every step (it weighs the steps before and after it), raised to
    ``1 / temperature`` and normalised again, since evidence from overlapping windows is
    not independent and the raw posterior is overconfident.

    Parameters
    ----------
    probs : np.ndarray
        ``(steps, labels)`` probabilities, each row summing to 1.
    switch_prob : float
        Probability per step that the genre changes, in ``(0, 1)``.
    temperature : float
        Calibration temperature of the posterior.

    Returns
    -------
    np.ndarray
        ``(steps, labels)`` float32 probabilities.
    """
    e = np.asarray(probs, dtype=np.float64)
    if not np.isfinite(e).all():
        raise ValueError("sticky_smooth: probabilities must be finite")
    if not 0.0 < switch_prob < 1.0 or not temperature > 0.0:
        raise ValueError("sticky_smooth: switch_prob must lie in (0, 1) and temperature be positive")
    e = np.clip(e, 1e-12, None)
    n, k = e.shape
    if n == 0 or k < 2:
        return np.asarray(probs, dtype=np.float32)
    other = switch_prob / (k - 1)
    stay = 1.0 - switch_prob - other  # A = stay * I + other * ones: A @ v = stay * v + other * sum(v)
    fwd = np.empty_like(e)
    bwd = np.empty_like(e)
    v = e[0] / k
    fwd[0] = v / v.sum()
    for t in range(1, n):
        v = e[t] * (stay * fwd[t - 1] + other)  # fwd rows sum to 1
        fwd[t] = v / v.sum()
    bwd[-1] = 1.0 / k
    for t in range(n - 2, -1, -1):
        v = e[t + 1] * bwd[t + 1]
        w = stay * v + other * v.sum()
        bwd[t] = w / w.sum()
    return softmax(np.log(fwd * bwd), temperature)


def timeline_from_logits(
    window_logits: np.ndarray, window_start_s: np.ndarray, window_len_s: float, duration: float,
    step: float = 1.0, temperature: float = 1.0, switch_prob: float = 0.0, smoothed_temperature: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step and song probabilities from window logits, as ``genre-infer`` reports them.

    Parameters
    ----------
    window_logits : np.ndarray
        ``(windows, labels)`` network outputs.
    window_start_s : np.ndarray
        ``(windows,)`` window starts in seconds.
    window_len_s, duration, step : float
        Window length, audio length and timeline resolution in seconds.
    temperature : float
        The model's calibration temperature.
    switch_prob, smoothed_temperature : float
        Smoothing over time (:func:`sticky_smooth`); ``switch_prob`` 0 leaves the steps alone.

    Returns
    -------
    steps : np.ndarray
        ``(ceil(duration / step), labels)`` probabilities of each step.
    song : np.ndarray
        ``(labels,)`` each genre's share of the song: the time-weighted mean of ``steps``.
    """
    steps = softmax(step_average(window_logits, window_start_s, window_len_s, duration, step), temperature)
    if switch_prob > 0.0:
        steps = sticky_smooth(steps, switch_prob, smoothed_temperature)
    return steps, verdict(steps, step, duration)


def smooth(probs: np.ndarray, radius: int) -> np.ndarray:
    """Moving average of ``(steps, labels)`` probabilities over ``±radius`` steps."""
    if radius <= 0 or len(probs) < 2:
        return probs
    padded = np.concatenate([np.zeros((1, probs.shape[1])), np.cumsum(probs, axis=0, dtype=np.float64)])
    idx = np.arange(len(probs))
    lo = np.maximum(idx - radius, 0)
    hi = np.minimum(idx + radius + 1, len(probs))
    return ((padded[hi] - padded[lo]) / (hi - lo)[:, None]).astype(np.float32)


def segment_runs(
    probs: np.ndarray, step: float, duration: float, min_len_s: float, radius: int
) -> list[tuple[float, float, int, float]]:
    """Split the timeline into sections of one genre.

    The probabilities are smoothed (``±radius`` steps), each step takes its
    winning genre, runs of one genre become sections, and sections shorter
    than ``min_len_s`` are merged into their longer neighbour until none is
    left (a song shorter than that is one section). Each section's genre is
    the winner of its mean probabilities.

    Returns
    -------
    list of (start_s, end_s, label_index, confidence)
        Contiguous sections covering ``[0, duration]``.
    """
    winners = smooth(probs, radius).argmax(axis=1)
    bounds = [0, *(np.flatnonzero(np.diff(winners)) + 1).tolist(), len(winners)]
    runs = [[bounds[i], bounds[i + 1]] for i in range(len(bounds) - 1)]

    def seconds(run: list[int]) -> float:
        return min(run[1] * step, duration) - run[0] * step

    while len(runs) > 1:
        lengths = [seconds(r) for r in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_len_s:
            break
        if i == 0:
            j = 1
        elif i == len(runs) - 1:
            j = i - 1
        else:
            j = i - 1 if lengths[i - 1] >= lengths[i + 1] else i + 1
        a, b = sorted((i, j))
        runs[a:b + 1] = [[runs[a][0], runs[b][1]]]
        runs = _merge_same(runs, probs)

    out = []
    for lo, hi in runs:
        mean = probs[lo:hi].mean(axis=0)
        label = int(mean.argmax())
        out.append((lo * step, min(hi * step, duration), label, float(mean[label])))
    return out


def _merge_same(runs: list[list[int]], probs: np.ndarray) -> list[list[int]]:
    merged: list[list[int]] = []
    last_label = -1
    for run in runs:
        label = int(probs[run[0]:run[1]].mean(axis=0).argmax())
        if merged and label == last_label:
            merged[-1][1] = run[1]
        else:
            merged.append(list(run))
        last_label = label
    return merged


def verdict(step_probs: np.ndarray, step: float, duration: float) -> np.ndarray:
    """Song-level probabilities as the time-weighted mean of a probability timeline."""
    p = time_average(step_probs, step, duration).astype(np.float64)
    return (p / p.sum()).astype(np.float32)
