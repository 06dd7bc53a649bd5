"""Calibration: the softmax temperature and the figures of the ``uncertain`` threshold.

The temperature is fitted on per-second logits of the validation clips (what the
timeline's probabilities come from) by a model that never saw them; the threshold below
which a second reads ``uncertain`` is reported with how many validation seconds fall
under it and how often those above and below it are right.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["fit_temperature", "ece", "uncertain_figures"]


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Temperature ``T > 0`` minimising the NLL of ``softmax(logits / T)`` (LBFGS on ``log T``)."""
    z = torch.from_numpy(logits.astype(np.float64))
    y = torch.from_numpy(labels.astype(np.int64))
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of top-1 confidence (equal-width bins)."""
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def uncertain_figures(probs: np.ndarray, labels: np.ndarray, uncertain_below: float) -> dict[str, float]:
    """Share of rows whose top probability is below ``uncertain_below``, and the accuracy above and below it."""
    conf, hit = probs.max(1), probs.argmax(1) == labels
    low = conf < uncertain_below
    return {"uncertain_below": uncertain_below,
            "valid_windows_below": float(low.mean()),
            "valid_accuracy_above": float(hit[~low].mean()) if (~low).any() else 0.0,
            "valid_accuracy_below": float(hit[low].mean()) if low.any() else 0.0}
