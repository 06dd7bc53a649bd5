"""Genre heads over musicnn's pooled features: the module, its training, its search on validation.

A head reads a window's pooled features ``(batch, 1506)`` and gives genre logits;
``fit_head`` trains one on cached embeddings (:mod:`train.embeddings`) in seconds, early
stopping on validation macro-F1 at track level, aggregated as the runtime aggregates.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .backbones.musicnn import MUSICNN_SPEC, Musicnn
from .constants import SEED
from .embeddings import EmbeddedTrack, select
from .metrics import TrackPrediction, scores, softmax, track_verdict

__all__ = ["HeadConfig", "Head", "predict", "fit_head", "evaluate_items", "second_logits", "SEARCH_SPACE",
           "search_heads", "rank_score"]


@dataclass
class HeadConfig:
    """A genre head on musicnn's pooled features."""

    kind: str = "mlp"  # "probe": pretrained dense 200 frozen + linear; "dense": pretrained dense trainable; "mlp"
    hidden: int = 256
    dropout: float = 0.5
    lr: float = 1e-3
    weight_decay: float = 1e-3
    batch_size: int = 64
    epochs: int = 60
    patience: int = 12
    mixup: float = 0.2
    label_smoothing: float = 0.05
    balance: bool = True  # weight the loss so every genre counts the same (the train split is very uneven)
    seed: int = SEED


class Head(nn.Module):
    """Pooled musicnn features ``(batch, 1506)`` → genre logits."""

    def __init__(self, backbone: Musicnn, n_labels: int, cfg: HeadConfig) -> None:
        super().__init__()
        self.kind = cfg.kind
        self.pool_bn = nn.BatchNorm1d(1506, eps=1e-3)
        self.pool_bn.load_state_dict(backbone.pool_bn.state_dict())
        if cfg.kind in ("probe", "dense"):
            self.dense = nn.Linear(1506, 200)
            self.dense.load_state_dict(backbone.penultimate.state_dict())
            self.dense_bn = nn.BatchNorm1d(200, eps=1e-3)
            self.dense_bn.load_state_dict(backbone.penultimate_bn.state_dict())
            width = 200
            if cfg.kind == "probe":
                for m in (self.pool_bn, self.dense, self.dense_bn):
                    m.requires_grad_(False)
        else:
            self.dense = nn.Linear(1506, cfg.hidden)
            self.dense_bn = nn.BatchNorm1d(cfg.hidden)
            width = cfg.hidden
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(width, n_labels)

    def train(self, mode: bool = True) -> Head:
        super().train(mode)
        if self.kind == "probe":  # frozen layers keep their running statistics
            for m in (self.pool_bn, self.dense_bn):
                m.eval()
        return self

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.pool_bn(pooled))
        h = self.dense_bn(torch.relu(self.dense(h)))
        return self.out(self.drop(h))



def predict(head: Head, items: list[EmbeddedTrack], temperature: float = 1.0) -> list[TrackPrediction]:
    """Window logits, probabilities and the runtime's track verdict of every item."""
    head.eval()
    preds = []
    with torch.no_grad():
        for it in items:
            logits = head(torch.from_numpy(it.pooled)).numpy()
            p = softmax(logits, temperature)
            preds.append(TrackPrediction(it.label, logits, p,
                                         track_verdict(logits, it.starts_s, MUSICNN_SPEC, it.n_samples, temperature)))
    return preds


def fit_head(
    backbone: Musicnn, train: list[EmbeddedTrack], valid: list[EmbeddedTrack], n_labels: int,
    cfg: HeadConfig, epochs: int | None = None,
) -> tuple[Head, dict[str, Any]]:
    """Train a head; early stopping on validation track macro-F1 (ties: segment macro-F1).

    With ``valid`` empty, trains for exactly ``epochs`` epochs (the retrain on all data).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    head = Head(backbone, n_labels, cfg)
    x = torch.from_numpy(np.concatenate([it.pooled for it in train]))
    y = torch.from_numpy(np.concatenate([np.full(len(it.pooled), it.label) for it in train])).long()
    params = [p for p in head.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_epochs = epochs or cfg.epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_epochs)
    weight = None
    if cfg.balance:  # inverse frequency of the genres' windows
        counts = torch.bincount(y, minlength=n_labels).double()
        weight = torch.where(counts > 0, counts.sum() / (n_labels * counts.clamp(min=1)), torch.zeros_like(counts))
    loss_fn = nn.CrossEntropyLoss(weight=None if weight is None else weight.float(),
                                  label_smoothing=cfg.label_smoothing)
    best: tuple[float, float] = (-1.0, -1.0)
    best_state, best_epoch, history = None, 0, []
    for epoch in range(1, n_epochs + 1):
        head.train()
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb, yb = x[idx], nn.functional.one_hot(y[idx], n_labels).float()
            if cfg.mixup > 0:
                lam = float(rng.beta(cfg.mixup, cfg.mixup))
                perm = torch.randperm(len(xb))
                xb, yb = lam * xb + (1 - lam) * xb[perm], lam * yb + (1 - lam) * yb[perm]
            loss = loss_fn(head(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        sched.step()
        row: dict[str, Any] = {"epoch": epoch, "loss": total / len(x)}
        if valid:
            s = scores(predict(head, valid), n_labels)
            row.update({f"valid_{k}": v for k, v in s.items()})
            key = (s["track_macro_f1"], s["segment_macro_f1"])
            if key > best:
                best, best_epoch = key, epoch
                best_state = {k: v.clone() for k, v in head.state_dict().items()}
            elif epoch - best_epoch >= cfg.patience:
                history.append(row)
                break
        history.append(row)
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return head, {"best_epoch": best_epoch or n_epochs, "history": history, "config": asdict(cfg)}


def evaluate_items(head: Head, items: list[EmbeddedTrack], n_labels: int, temperature: float = 1.0) -> dict[str, Any]:
    """Scores of a head over clean clips (version 0)."""
    return scores(predict(head, [it for it in items if it.version == 0], temperature), n_labels)



def second_logits(head: Head, items: list[EmbeddedTrack]) -> tuple[np.ndarray, np.ndarray]:
    """Per-second logits (window logits pooled as the runtime pools them) and labels of clean clips.

    The temperature is fitted on these: they are what the timeline's probabilities come from.
    """
    from genre_infer import timeline as tl

    head.eval()
    clean = [it for it in items if it.version == 0]
    out = []
    with torch.no_grad():
        for it in clean:
            z = head(torch.from_numpy(it.pooled)).numpy()
            out.append(tl.step_average(z, it.starts_s, MUSICNN_SPEC.segment_s, it.n_samples / MUSICNN_SPEC.sr))
    return np.concatenate(out), np.concatenate([np.full(len(z), it.label) for z, it in zip(out, clean)])


SEARCH_SPACE: dict[str, list[Any]] = {
    "kind": ["probe", "dense", "mlp"],
    "lr": [1e-3, 3e-4],
    "dropout": [0.3, 0.5],
    "mixup": [0.0, 0.2],
    "weight_decay": [1e-4, 1e-2],
    "balance": [True, False],
}



def search_heads(
    backbone: Musicnn, items: list[EmbeddedTrack], n_labels: int, trials: int, seed: int = SEED,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Random search over :data:`SEARCH_SPACE` (plus with/without augmented copies), ranked on validation only."""
    rng = np.random.default_rng(seed)
    valid = select(items, ("valid",), augmented=False)
    rows = []
    seen: set[str] = set()
    while len(rows) < trials and len(seen) < 200:
        choice = {k: v[int(rng.integers(len(v)))] for k, v in SEARCH_SPACE.items()}
        use_aug = bool(rng.integers(2)) if rows else True
        key = json.dumps([choice, use_aug], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        cfg = HeadConfig(**choice, seed=seed)
        t0 = time.time()
        head, info = fit_head(backbone, select(items, ("train", "extra"), use_aug), valid, n_labels, cfg)
        s = evaluate_items(head, valid, n_labels)
        row = {**choice, "augmented": use_aug, "best_epoch": info["best_epoch"], "wall_s": round(time.time() - t0, 1),
               **{f"valid_{k}": v for k, v in s.items()}}
        row["rank_score"] = rank_score(s)
        rows.append(row)
        log(json.dumps(row))
    return sorted(rows, key=lambda r: -r["rank_score"])


def rank_score(s: dict[str, Any]) -> float:
    """What a head search ranks on: the mean of validation track and segment macro-F1."""
    return (s["track_macro_f1"] + s["segment_macro_f1"]) / 2
