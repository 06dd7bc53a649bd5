"""Transfer learning from musicnn: cached embeddings, genre heads, and the exportable network.

Data this scarce (154 GTZAN clips) cannot teach a network music from scratch;
musicnn, trained on the Million Song Dataset's tags, already knows it. The
pretrained front and mid end turn each 3-s window into 1506 pooled features;
a small head learns genres from them.

1. ``embed``: decode every clip once, make ``K`` augmented versions of each
   training clip (:mod:`train.audio_augment`: speed, EQ, low-pass, noise, mp3,
   gain), compute the runtime's windows (``genre_infer.features``) and cache
   musicnn's pooled features per window (``.cache/embeddings``).
2. ``fit_head``: train a head on the cached features (seconds per run), early
   stopping on validation macro-F1 at track level, aggregated as the runtime does.
3. :class:`GenreMusicnn` joins the frozen backbone and the head into one
   network ``(batch, 187, 96) → logits`` that :mod:`train.export` writes to ONNX.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genre_infer import audio as gi_audio
from genre_infer import features as gi_features
from genre_infer.features import FeatureSpec
from genre_infer.loudness import LEVEL_METER, to_level

from .audio_augment import Chain, random_chain
from .constants import REPO_ROOT, SEED
from .data import Track, assign_splits, discover
from .metrics import TrackPrediction, scores, softmax, track_timeline, track_verdict, track_windows
from .musicnn import PATCH_FRAMES, LiveFrames, Musicnn

__all__ = ["MUSICNN_SPEC", "EmbeddedTrack", "version_audio", "embed_tracks", "HeadConfig", "Head", "GenreMusicnn",
           "GenreMusicnnSequence", "GenreMusicnnStream", "NETWORKS", "export_example", "pool_windows", "pool_rows", "fit_head", "run"]

#: musicnn's features (its training used these, with a float16 round trip we skip).
MUSICNN_SPEC = FeatureSpec(kind="melgram", sr=16000, n_fft=512, hop_length=256, n_mels=96,
                           compression="log10_1p", log_scale=10000.0, segment_frames=PATCH_FRAMES,
                           window_hop_s=1.0)
EMBED_DIR = REPO_ROOT / ".cache" / "embeddings"
PRETRAINED = REPO_ROOT / ".cache" / "pretrained" / "msd_musicnn.pt"


@dataclass
class EmbeddedTrack:
    """Pooled musicnn features of every runtime window of one version of a track."""

    track: Track
    label: int
    version: int  # 0 = the clean clip, 1.. = augmented copies
    pooled: np.ndarray  # (windows, 1506) float32
    starts_s: np.ndarray  # (windows,)
    n_samples: int


def load_backbone(path: Path = PRETRAINED) -> Musicnn:
    """musicnn with the converted MSD weights, in eval mode (run ``python -m train pretrained`` first)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m train pretrained --wheel musicnn-0.1.0-...whl`")
    net = Musicnn()
    net.load_state_dict(torch.load(path, map_location="cpu"))
    return net.eval()


#: Frames on each side that reach a frame's musicnn features: the 128-frame temporal
#: convolutions reach 64 frames, the three 7-frame mid-end layers 9 more.
CONTEXT_FRAMES = 80


def pool_windows(frames: torch.Tensor, starts: torch.Tensor, segment_frames: int = PATCH_FRAMES) -> torch.Tensor:
    """musicnn's max-and-mean pooling of each window of per-frame features.

    ``frames (753, T)`` and window ``starts (W,)`` → ``(W, 1506)``, interleaved per
    channel exactly as :meth:`Musicnn.pool` (the head's pretrained layers expect that order).
    """
    return pool_rows(frames.T, starts, segment_frames)


def pool_rows(rows: torch.Tensor, starts: torch.Tensor, segment_frames: int = PATCH_FRAMES) -> torch.Tensor:
    """:func:`pool_windows` of frame embeddings stored as rows ``(T, 753)``."""
    # gather whole frames (rows of 753 values), not single values: 10x faster in onnxruntime
    g = rows[starts[:, None] + torch.arange(segment_frames)[None, :]]  # (W, seg, 753)
    return torch.stack([g.amax(dim=1), g.mean(dim=1)], dim=2).flatten(1)


@torch.no_grad()
def pooled_sequence(live: LiveFrames, y: np.ndarray, spec: FeatureSpec = MUSICNN_SPEC) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features of the runtime windows, with musicnn run once over the whole signal."""
    x = gi_features.compute(gi_features.fill_window(y, spec), spec)
    starts = gi_features.window_starts(len(x), spec)
    frames = live(torch.from_numpy(x)[None])[0]
    return pool_windows(frames, torch.from_numpy(starts)).numpy(), starts * spec.hop_length / spec.sr


@torch.no_grad()
def pooled_windows(net: Musicnn, y: np.ndarray, spec: FeatureSpec = MUSICNN_SPEC,
                   batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """musicnn's pooled features for the runtime windows of a signal → ``(pooled, starts_s)``."""
    w, starts_s = track_windows(gi_features.compute(gi_features.fill_window(y, spec), spec), spec)
    out = [net.pool(net.frame_features(torch.from_numpy(w[i : i + batch]))).numpy()
           for i in range(0, len(w), batch)]
    return np.concatenate(out), starts_s


def version_audio(y: np.ndarray, track: Track, version: int, seed: int = SEED, strength: float = 1.0,
                  chain: Chain = Chain()) -> np.ndarray:
    """Version ``version`` of a clip at 16 kHz: itself for 0, else a seeded random augmentation chain.

    Deterministic in ``(seed, version, track)``, so the student of :mod:`train.distill`
    sees exactly the audio whose musicnn features the cache holds.
    """
    if version == 0:
        return y
    rng = np.random.default_rng([seed, version, int(hashlib.sha1(track.rel.encode()).hexdigest()[:8], 16)])
    return random_chain(y, MUSICNN_SPEC.sr, rng, strength, chain)


def _cache_path(track: Track, version: int, seed: int, layout: str = "windows", level_db: float | None = None,
                chain: Chain = Chain()) -> Path:
    level = "" if level_db is None else f"|level{level_db:.2f}|{LEVEL_METER}"
    recipe = "" if version == 0 else chain.key()
    key = hashlib.sha1(f"{track.path}|{track.path.stat().st_size}|{version}|{seed}{level}{recipe}".encode()).hexdigest()[:16]
    folder = EMBED_DIR if layout == "windows" else EMBED_DIR.with_name(f"embeddings-{layout}")
    return folder / f"{track.path.stem}-{version}-{key}.npz"


def embed_tracks(
    root: str | os.PathLike[str], n_aug: int = 4, seed: int = SEED, strength: float = 1.0,
    log: Any = print, layout: str = "windows", level_db: float | None = None, chain: Chain = Chain(),
) -> tuple[list[EmbeddedTrack], list[str], str]:
    """Embed every clip of a data root (augmented copies for train/extra), cached.

    ``layout`` ``"windows"`` runs musicnn on each 3-s window alone (as it was
    trained); ``"sequence"`` runs it once over the whole clip and pools each
    window from it, as the sequence network does at run time. With ``level_db``
    every clip version is scaled to that gated level first, as the runtime does
    for a model whose features set it (:mod:`genre_infer.loudness`).

    Returns
    -------
    items : list of EmbeddedTrack
    labels : list of str
    split : str
        How the split was made (``lists`` or a stratified description).
    """
    tracks, labels = discover(root)
    how = assign_splits(tracks, root, seed)
    index = {g: i for i, g in enumerate(labels)}
    net = load_backbone()
    live = LiveFrames(net)  # the same frame features, a tenth of the work
    torch.set_num_threads(os.cpu_count() or 1)
    if layout not in ("windows", "sequence"):
        raise ValueError(f"unknown layout {layout!r}")
    items: list[EmbeddedTrack] = []
    t0 = time.time()
    for n, track in enumerate(t for t in tracks if t.split):
        versions = 1 + (n_aug if track.split in ("train", "extra") else 0)
        y = None
        for v in range(versions):
            path = _cache_path(track, v, seed, layout, level_db, chain)
            if path.is_file():
                z = np.load(path)
                pooled, starts_s, n_samples = z["pooled"].astype(np.float32), z["starts_s"], int(z["n_samples"])
            else:
                if y is None:
                    y = gi_audio.load(track.path, MUSICNN_SPEC.sr)
                yv = version_audio(y, track, v, seed, strength, chain)
                yv = to_level(yv, MUSICNN_SPEC.sr, level_db)
                pooled, starts_s = (pooled_sequence(live, yv) if layout == "sequence" else pooled_windows(net, yv))
                n_samples = len(yv)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(path, pooled=pooled.astype(np.float16), starts_s=starts_s, n_samples=n_samples)
            items.append(EmbeddedTrack(track, index[track.genre], v, pooled, starts_s, n_samples))
        if (n + 1) % 10 == 0:
            log(f"embedded {n + 1} tracks in {time.time() - t0:.0f} s")
    return items, labels, how


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


class GenreMusicnn(nn.Module):
    """The shipped network: log-mel windows ``(batch, 187, 96)`` → genre logits."""

    def __init__(self, backbone: Musicnn, head: Head) -> None:
        super().__init__()
        self.frames = LiveFrames(backbone)  # frame_features without the dead filters: same numbers
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(Musicnn.pool(self.frames(x)))


class GenreMusicnnSequence(nn.Module):
    """The same network in the sequence layout: features ``(1, frames, 96)`` and window
    starts ``(W,)`` → ``(W, labels)``; musicnn runs once over all the frames."""

    def __init__(self, backbone: Musicnn, head: Head) -> None:
        super().__init__()
        self.frames = LiveFrames(backbone)
        self.head = head

    def forward(self, x: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        return self.head(pool_windows(self.frames(x)[0], starts))


class GenreMusicnnStream(nn.Module):
    """The same network in the stream layout (see :mod:`genre_infer.model`): features
    ``(1, frames, 96)``, ``keep (2,)``, ``past (rows, 753)`` and ``starts (W,)`` →
    ``(logits (W, labels), frames (keep[1] - keep[0], 753))``. The runtime hands each
    call's kept frame embeddings on to later calls, so no frame is embedded twice."""

    frame_dim = 753  # musicnn's per-frame features: front end 561 + mid end 3 x 64

    def __init__(self, backbone: Musicnn, head: Head) -> None:
        super().__init__()
        self.frames = LiveFrames(backbone)
        self.head = head

    def forward(self, x: torch.Tensor, keep: torch.Tensor, past: torch.Tensor,
                starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.frames(x)[0].T                                  # (T, 753)
        kept = torch.index_select(f, 0, torch.arange(keep[0], keep[1]))
        return self.head(pool_rows(torch.cat([past, kept]), starts)), kept


#: The exportable network of each layout.
NETWORKS: dict[str, type[nn.Module]] = {"windows": GenreMusicnn, "sequence": GenreMusicnnSequence,
                                        "stream": GenreMusicnnStream}


def export_example(layout: str, x: np.ndarray, starts: np.ndarray,
                   context: int = 100) -> np.ndarray | tuple[np.ndarray, ...]:
    """Parity input for exporting a network of ``layout`` from features ``x (frames, 96)`` and
    window ``starts``: windows; the whole stretch; or (stream) a stretch with ``context`` frames
    on each side, a few frame embeddings handed on from an earlier call, and the windows
    those and the kept frames complete."""
    if layout == "windows":
        return gi_features.frame_windows(x, starts, PATCH_FRAMES)[:16]
    if layout == "sequence":
        return (x[None], starts)
    past = np.random.default_rng(1).standard_normal((40, GenreMusicnnStream.frame_dim)).astype(np.float32)
    kept = len(x) - 2 * context + len(past)
    return (x[None], np.array([context, len(x) - context]), past, starts[starts + PATCH_FRAMES <= kept])


def _predict(head: Head, items: list[EmbeddedTrack], temperature: float = 1.0) -> list[TrackPrediction]:
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
            s = scores(_predict(head, valid), n_labels)
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
    return scores(_predict(head, [it for it in items if it.version == 0], temperature), n_labels)


def save_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")


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


def _split(items: list[EmbeddedTrack], splits: tuple[str, ...], augmented: bool = True) -> list[EmbeddedTrack]:
    return [it for it in items if it.track.split in splits and (augmented or it.version == 0)]


def search_heads(
    backbone: Musicnn, items: list[EmbeddedTrack], n_labels: int, trials: int, seed: int = SEED,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Random search over :data:`SEARCH_SPACE` (plus with/without augmented copies), ranked on validation only."""
    rng = np.random.default_rng(seed)
    valid = _split(items, ("valid",), augmented=False)
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
        head, info = fit_head(backbone, _split(items, ("train", "extra"), use_aug), valid, n_labels, cfg)
        s = evaluate_items(head, valid, n_labels)
        row = {**choice, "augmented": use_aug, "best_epoch": info["best_epoch"], "wall_s": round(time.time() - t0, 1),
               **{f"valid_{k}": v for k, v in s.items()}}
        row["rank_score"] = (s["track_macro_f1"] + s["segment_macro_f1"]) / 2
        rows.append(row)
        log(json.dumps(row))
    return sorted(rows, key=lambda r: -r["rank_score"])


def _table_md(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _report(head: Head, items: list[EmbeddedTrack], labels: list[str], temperature: float) -> dict[str, Any]:
    """Scores, per-genre report, confusion matrix and per-source track accuracy on clean clips."""
    from sklearn.metrics import classification_report, confusion_matrix

    clean = [it for it in items if it.version == 0]
    preds = _predict(head, clean, temperature)
    truth = [p.label for p in preds]
    guess = [int(p.track_probs.argmax()) for p in preds]
    present = sorted(set(truth) | set(guess))
    by_source: dict[str, list[bool]] = {}
    for it, p in zip(clean, preds):
        src = "16 kHz source" if "16 kHz" in it.track.source else "15 s excerpt" if "15 s" in it.track.source \
            else "22050 Hz source"
        by_source.setdefault(src, []).append(int(p.track_probs.argmax()) == p.label)
    second_hits = []
    for it, p in zip(clean, preds):
        steps, _ = track_timeline(p.window_logits, it.starts_s, MUSICNN_SPEC, it.n_samples, temperature)
        second_hits.append(steps.argmax(1) == it.label)
    hits = np.concatenate(second_hits)
    return {
        "scores": {**scores(preds, len(labels)), "second_accuracy": float(hits.mean()), "seconds": int(len(hits))},
        "per_genre": classification_report(truth, guess, labels=present, target_names=[labels[i] for i in present],
                                           output_dict=True, zero_division=0),
        "confusion": {"labels": [labels[i] for i in present],
                      "matrix": confusion_matrix(truth, guess, labels=present).tolist()},
        "by_source": {k: {"tracks": len(v), "track_accuracy": float(np.mean(v))} for k, v in by_source.items()},
        "tracks": {it.track.rel: labels[int(p.track_probs.argmax())] for it, p in zip(clean, preds)},
    }


def run(
    root: str | os.PathLike[str], out_dir: Path, n_aug: int, trials: int, export_to: Path | None,
    name: str, version: str, uncertain_below: float, read_test: bool, log: Any = print,
    layout: str = "stream", head_from: Path | None = None, export_valid_to: Path | None = None,
    level_db: float | None = None, chain: Chain = Chain(),
) -> dict[str, Any]:
    """The whole transfer recipe: embed, search (valid), calibrate (valid), retrain, test once, CV, export.

    Without ``read_test`` the test split is read nowhere: no test report, and the
    cross-validation holds out the train and valid partitions only."""
    from datetime import datetime, timezone

    from genre_infer.model import ModelInfo, NetworkSpec

    from .export import ece, fit_temperature, write_checked

    t_start = time.time()
    # the stream layout embeds exactly what the sequence layout does: they share its cache
    items, labels, how = embed_tracks(root, n_aug, log=log, layout="windows" if layout == "windows" else "sequence",
                                      level_db=level_db, chain=chain)
    spec = MUSICNN_SPEC if level_db is None else replace(MUSICNN_SPEC, level_db=round(level_db, 2))
    n_labels = len(labels)
    backbone = load_backbone()
    # heads are tiny: one thread avoids the thread pool's waits when another process holds a core
    torch.set_num_threads(1)
    valid = _split(items, ("valid",), augmented=False)
    test = _split(items, ("test",), augmented=False)

    if head_from is not None:  # the head configuration another run selected on validation; no new search
        prev = json.loads(Path(head_from).read_text())["search_best"]
        choice = {k: prev[k] for k in SEARCH_SPACE}
        h, info_prev = fit_head(backbone, _split(items, ("train", "extra"), bool(prev["augmented"])), valid, n_labels,
                                HeadConfig(**choice, seed=SEED))
        s = evaluate_items(h, valid, n_labels)
        rows = [{**choice, "augmented": bool(prev["augmented"]), "best_epoch": info_prev["best_epoch"],
                 **{f"valid_{k}": v for k, v in s.items()}, "rank_score": (s["track_macro_f1"] + s["segment_macro_f1"]) / 2,
                 "config_from": str(head_from)}]
    else:
        rows = search_heads(backbone, items, n_labels, trials, log=log)
    cols = ["kind", "lr", "dropout", "mixup", "weight_decay", "augmented", "best_epoch", "valid_track_accuracy",
            "valid_track_macro_f1", "valid_segment_accuracy", "valid_segment_macro_f1", "wall_s"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "search.md").write_text(_table_md(rows, cols))
    save_json(out_dir / "search.json", rows)
    best = rows[0]
    cfg = HeadConfig(**{k: best[k] for k in SEARCH_SPACE}, seed=SEED)
    use_aug = bool(best["augmented"])

    # the selected model (trained without valid) gives the validation figures and the temperature
    head_sel, info_sel = fit_head(backbone, _split(items, ("train", "extra"), use_aug), valid, n_labels, cfg)
    z, y = second_logits(head_sel, valid)
    temperature = fit_temperature(z, y)
    preds_t = _predict(head_sel, valid, temperature)
    calib = {"temperature": temperature, "ece_before": ece(softmax(z), y), "ece_after": ece(softmax(z, temperature), y),
             "fitted_on": "per-second logits of the validation clips, model trained on train+extra",
             "track_ece_after": ece(np.stack([p.track_probs for p in preds_t]), np.array([p.label for p in preds_t]))}
    p_valid = softmax(z, temperature)
    conf, hit = p_valid.max(1), p_valid.argmax(1) == y
    calib["uncertain_below"] = uncertain_below
    calib["valid_windows_below"] = float((conf < uncertain_below).mean())
    calib["valid_accuracy_above"] = float(hit[conf >= uncertain_below].mean()) if (conf >= uncertain_below).any() else 0.0
    calib["valid_accuracy_below"] = float(hit[conf < uncertain_below].mean()) if (conf < uncertain_below).any() else 0.0
    valid_report = _report(head_sel, valid, labels, temperature)
    log(f"valid {json.dumps(valid_report['scores'])} calibration {json.dumps(calib)}")

    # cross-validation over the artist-disjoint partitions of the filtered split (extra always trains)
    cv = {}
    parts = ("train", "valid", "test") if read_test else ("train", "valid")
    for held in parts:
        rest = tuple(s for s in (*parts, "extra") if s != held)
        h, _ = fit_head(backbone, _split(items, rest, use_aug), [], n_labels, cfg, epochs=best["best_epoch"])
        cv[held] = evaluate_items(h, _split(items, (held,), False), n_labels, temperature)
        log(f"cv held-out {held}: {json.dumps(cv[held])}")
    accs = [v["track_accuracy"] for v in cv.values()]
    f1s = [v["track_macro_f1"] for v in cv.values()]
    cv_summary = {"folds": cv, "track_accuracy_mean": float(np.mean(accs)), "track_accuracy_std": float(np.std(accs)),
                  "track_macro_f1_mean": float(np.mean(f1s)), "track_macro_f1_std": float(np.std(f1s)),
                  "weighted_track_accuracy": float(sum(v["track_accuracy"] * v["tracks"] for v in cv.values())
                                                   / sum(v["tracks"] for v in cv.values()))}

    # the shipped head: the same recipe on train+valid+extra for the selected number of epochs
    head, _ = fit_head(backbone, _split(items, ("train", "valid", "extra"), use_aug), [], n_labels, cfg,
                       epochs=best["best_epoch"])
    test_report = _report(head, test, labels, temperature) if read_test else None
    if test_report:
        log(f"TEST (read once): {json.dumps(test_report['scores'])}")

    net_cls = NETWORKS[layout]
    net = net_cls(backbone, head).eval()
    result = {
        "labels": labels, "split": how, "search_best": best, "config": asdict(cfg), "augmented": use_aug,
        "n_aug": n_aug, "lowpass_p": chain.lowpass_p, "drive_p": chain.drive_p, "layout": layout, "valid": valid_report, "calibration": calib, "cv": cv_summary, "test": test_report,
        "parameters": int(sum(p.numel() for p in net.parameters())), "wall_s": round(time.time() - t_start, 1),
    }
    save_json(out_dir / "result.json", result)
    if export_to is not None or export_valid_to is not None:
        extra = {
            "training": {
                "data": f"GTZAN subset ({Path(root).name}): {len(items)} clip versions", "split": how,
                "recipe": f"musicnn (MSD) front/mid end frozen ({layout} layout); genre head trained on pooled features "
                          f"of {n_aug} augmented copies per training clip"
                          + chain.describe()
                          + (f", every version scaled to {level_db:.2f} dBFS gated level" if level_db is not None else "")
                          + "; selected on valid; retrained on train+valid+extra for the selected epochs",
                "pretrained": "musicnn 0.1.0 MSD_musicnn (PyPI wheel, ISC licence)",
                "config": asdict(cfg), "augmented": use_aug, "epochs": best["best_epoch"], "seed": SEED,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
            },
            "metrics": {
                "valid": valid_report["scores"], "valid_model": "trained on train+extra (before the retrain)",
                "test": test_report["scores"] if test_report else None, "cv": {k: v for k, v in cv_summary.items()},
                "calibration": calib,
            },
            "parameters": result["parameters"],
        }
        network = NetworkSpec() if layout == "windows" else NetworkSpec(layout, CONTEXT_FRAMES)
        first = test[0] if test else valid[0]
        y0 = gi_audio.load(first.track.path, MUSICNN_SPEC.sr)
        x0 = gi_features.compute(y0, MUSICNN_SPEC)
        starts0 = gi_features.window_starts(len(x0), MUSICNN_SPEC)
        example = export_example(layout, x0, starts0)
        if export_to is not None:
            info = ModelInfo(name, version, tuple(labels), features=spec, temperature=temperature,
                             uncertain_below=uncertain_below, extra=extra, network=network)
            diff = write_checked(net, info, example, export_to)
            log(f"exported {export_to} (parity {diff:.2e})")
            result["parity"] = diff
        if export_valid_to is not None:  # the selected model before the retrain: valid is held out from it
            training = {**extra["training"], "recipe": extra["training"]["recipe"].split("; retrained")[0]
                        + "; NOT retrained: the validation model, for scoring graph approximations on valid"}
            info = ModelInfo(f"{name}-valid", version, tuple(labels), features=spec, temperature=temperature,
                             uncertain_below=uncertain_below, network=network,
                             extra={**extra, "training": training, "metrics": {"valid": valid_report["scores"]}})
            diff = write_checked(net_cls(backbone, head_sel).eval(), info, example, export_valid_to)
            log(f"exported the validation model {export_valid_to} (parity {diff:.2e})")
        save_json(out_dir / "result.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m train transfer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gtzan"))
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/<time>-transfer)")
    ap.add_argument("--n-aug", type=int, default=2, help="augmented copies per training clip")
    ap.add_argument("--trials", type=int, default=12, help="head configurations tried (ranked on valid)")
    ap.add_argument("--export", type=Path, default=None, help="write the ONNX model here")
    ap.add_argument("--export-valid", type=Path, default=None,
                    help="also write the selected model before its retrain on valid (valid stays held out "
                         "from it): to score approximations of the graph, e.g. `python -m train quantize`")
    ap.add_argument("--name", default="gtzan-musicnn")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--uncertain-below", type=float, default=0.35)
    ap.add_argument("--no-test", action="store_true", help="do not read the test split")
    ap.add_argument("--head-from", type=Path, default=None,
                    help="reuse the head configuration selected by another run (its result.json) instead of searching")
    ap.add_argument("--normalise", action="store_true",
                    help="loudness normalisation: every clip version (and, at run time, every song) is scaled "
                         "to the training clips' median gated level before the features")
    ap.add_argument("--lowpass-p", type=float, default=Chain().lowpass_p,
                    help=f"probability that an augmented copy is band-limited (default {Chain().lowpass_p:g})")
    ap.add_argument("--drive-p", type=float, default=Chain().drive_p,
                    help=f"probability that an augmented copy is driven 3-15 dB into clipping (default {Chain().drive_p:g})")
    ap.add_argument("--layout", choices=["stream", "sequence", "windows"], default="stream",
                    help="stream (shipped): musicnn over stretches that hand their frame embeddings on, "
                         "windows pooled from them; sequence: one call over a whole stretch, windows pooled "
                         "from it; windows: musicnn on each 3-s window alone, as it was trained")
    a = ap.parse_args(argv)
    out = a.out or REPO_ROOT / "runs" / (time.strftime("%Y%m%d-%H%M%S") + "-transfer")
    level_db = None
    if a.normalise:
        from .level import stored_level_db

        level_db = stored_level_db(a.data, MUSICNN_SPEC.sr)
    run(a.data, out, a.n_aug, a.trials, a.export, a.name, a.version, a.uncertain_below, not a.no_test,
        log=lambda m: print(m, flush=True), layout=a.layout, head_from=a.head_from,
        export_valid_to=a.export_valid, level_db=level_db,
        chain=Chain(lowpass_p=a.lowpass_p, drive_p=a.drive_p))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
