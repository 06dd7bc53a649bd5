"""Genre heads over AudioSet's 527 window logits: zero-shot maps and small fitted ones.

Every head is affine, ``genre_logits = tags @ W.T + b`` (``W (labels, 527)``), so it
goes into the exported graph as it is (:class:`train.audioset.GenreMn04Stream`).

- :func:`zero_shot`: each genre takes its own AudioSet class's logit;
- :func:`fit_scale_bias`: a scale and a bias per genre, fitted on labelled windows
  with an L2 pull toward the zero-shot map (scale 1, bias 0);
- :func:`fit_stacked`: each genre a weighted sum of AudioSet's music-genre classes,
  fitted with an L2 pull toward the zero-shot map.

A genre with no training examples (``electronic`` on GTZAN) keeps its zero-shot row,
with the fitted heads' mean scale and bias, so no data it lacks decides it.
"""

from __future__ import annotations

import numpy as np
import torch

#: Fits run in float64: their result then does not depend on how many threads sum the loss.
F64 = torch.float64

__all__ = ["GENRE_CLASSES", "MUSIC_GENRE_CLASSES", "zero_shot", "fit_scale_bias", "fit_stacked", "fit_weighted",
           "window_weights"]

#: The AudioSet class each genre reads in zero-shot.
GENRE_CLASSES = {
    "blues": "Blues", "classical": "Classical music", "country": "Country", "disco": "Disco",
    "hiphop": "Hip hop music", "jazz": "Jazz", "metal": "Heavy metal", "pop": "Pop music",
    "reggae": "Reggae", "rock": "Rock music", "electronic": "Electronic music",
}

#: AudioSet's music-genre classes (ontology: Music > Music genre), the inputs of a stacked head.
MUSIC_GENRE_CLASSES = (
    "Pop music", "Hip hop music", "Rock music", "Heavy metal", "Punk rock", "Grunge", "Progressive rock",
    "Rock and roll", "Psychedelic rock", "Rhythm and blues", "Soul music", "Reggae", "Country", "Swing music",
    "Bluegrass", "Funk", "Folk music", "Middle Eastern music", "Jazz", "Disco", "Classical music", "Opera",
    "Electronic music", "House music", "Techno", "Dubstep", "Drum and bass", "Electronica",
    "Electronic dance music", "Ambient music", "Trance music", "Music of Latin America", "Salsa music",
    "Flamenco", "Blues", "Music for children", "New-age music", "Vocal music", "A capella", "Music of Africa",
    "Afrobeat", "Christian music", "Gospel music", "Music of Asia", "Carnatic music", "Music of Bollywood",
    "Ska", "Traditional music", "Independent music",
)


def zero_shot(labels: list[str], classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(W, b)`` with each genre's row selecting its AudioSet class (:data:`GENRE_CLASSES`)."""
    w = np.zeros((len(labels), len(classes)), np.float32)
    for i, g in enumerate(labels):
        w[i, classes.index(GENRE_CLASSES[g])] = 1.0
    return w, np.zeros(len(labels), np.float32)


def window_weights(clip_of_window: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights that give every clip the same total, and every genre present the same total."""
    n_clip = np.bincount(clip_of_window)[clip_of_window].astype(np.float64)
    w = 1.0 / n_clip
    for g in np.unique(y):
        m = y == g
        w[m] /= w[m].sum()
    return (w / w.sum() * len(w)).astype(np.float32)


def fit_weighted(params: list[torch.Tensor], logits_fn, y: np.ndarray, weights: np.ndarray, penalty_fn) -> None:
    """Fit ``params`` (LBFGS) to the weighted cross-entropy of ``logits_fn()`` against ``y`` plus ``penalty_fn()``."""
    yt = torch.as_tensor(y, dtype=torch.long)
    wt = torch.as_tensor(weights, dtype=F64)
    opt = torch.optim.LBFGS(params, lr=0.5, max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = logits_fn()
        loss = (torch.nn.functional.cross_entropy(z, yt, reduction="none") * wt).mean() + penalty_fn()
        loss.backward()
        return loss

    opt.step(closure)


def fit_scale_bias(tags: np.ndarray, y: np.ndarray, weights: np.ndarray, labels: list[str], classes: list[str],
                   l2: float, trained: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-genre scale and bias over the zero-shot logits, fitted on windows ``tags (n, 527)``
    with labels ``y`` (indices into ``labels``), penalised by ``l2 * ((a - 1)^2 + b^2)``.
    Genres not in ``trained`` get the trained genres' mean scale and bias."""
    w0, _ = zero_shot(labels, classes)
    z0 = torch.as_tensor(tags.astype(np.float64) @ w0.T.astype(np.float64))
    t = np.array([g in trained for g in labels])
    a = torch.ones(len(labels), dtype=F64, requires_grad=True)
    b = torch.zeros(len(labels), dtype=F64, requires_grad=True)
    mask = torch.as_tensor(t)

    def logits() -> torch.Tensor:
        return torch.where(mask, z0 * a + b, torch.full_like(z0, -1e4))  # only trained genres compete

    fit_weighted([a, b], logits, y, weights, lambda: l2 * (((a - 1) ** 2)[mask].sum() + (b**2)[mask].sum()))
    a_, b_ = a.detach().numpy().copy(), b.detach().numpy().copy()
    a_[~t], b_[~t] = a_[t].mean(), b_[t].mean()
    return (w0 * a_[:, None]).astype(np.float32), b_.astype(np.float32)


def fit_stacked(tags: np.ndarray, y: np.ndarray, weights: np.ndarray, labels: list[str], classes: list[str],
                l2: float, trained: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each genre's logit a weighted sum of AudioSet's music-genre classes plus a bias, fitted on
    windows with the penalty ``l2 * (|W - W0|^2 + |b|^2)`` toward the zero-shot map ``W0``.
    Genres not in ``trained`` keep their zero-shot row, with the trained rows' mean bias."""
    cols = [classes.index(c) for c in MUSIC_GENRE_CLASSES]
    w0_full, _ = zero_shot(labels, classes)
    w0 = torch.as_tensor(np.ascontiguousarray(w0_full[:, cols]), dtype=F64)
    x = torch.as_tensor(tags[:, cols], dtype=F64)
    t = np.array([g in trained for g in labels])
    mask = torch.as_tensor(t)
    w = w0.clone().contiguous().requires_grad_(True)
    b = torch.zeros(len(labels), dtype=F64, requires_grad=True)

    def logits() -> torch.Tensor:
        return torch.where(mask, x @ w.T + b, torch.full((len(x), len(labels)), -1e4, dtype=F64))

    fit_weighted([w, b], logits, y, weights, lambda: l2 * (((w - w0) ** 2)[mask].sum() + (b**2)[mask].sum()))
    w_, b_ = w.detach().numpy(), b.detach().numpy().copy()
    full = w0_full.copy()
    full[np.ix_(np.flatnonzero(t), cols)] = w_[t]
    b_[~t] = b_[t].mean()
    return full.astype(np.float32), b_.astype(np.float32)
