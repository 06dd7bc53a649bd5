"""Training loop: random-crop batches, augmentation, optimizers, schedulers, early stopping.

:func:`fit` trains one configuration on the training splits (``train`` +
``extra``), scores the validation split after every epoch, keeps the weights
of the epoch with the best validation segment macro-F1 (scored per epoch on
non-overlapping windows; the kept epoch is re-scored on the runtime's windows) (ties: track macro-F1,
then lower loss) and stops after ``patience`` epochs without improvement.
It never touches the test split. Every run gets a folder
``runs/<timestamp>-<name>/`` with ``config.json``, ``epochs.csv``,
``metrics.json`` and ``model.pt``, and one line in ``runs/results.csv``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genre_infer.features import FeatureSpec

from . import augment, data, metrics, nets
from .constants import CACHE_DIR, RESULTS_CSV, RUNS_DIR, THREADS_ENV, WINDOW_HOP_S
from .fit_config import FitConfig

__all__ = ["FitConfig", "Prepared", "prepare", "fit", "make_spec", "load_run", "device"]


def segment_frames(segment_s: float, sr: int, hop_length: int) -> int:
    """Frames of a ``segment_s`` window: ``1 + segment_s * sr // hop`` (63 for 1 s, 187 for 3 s)."""
    return 1 + int(round(segment_s * sr)) // hop_length


def make_spec(cfg: FitConfig, mean: float = 0.0, std: float = 1.0) -> FeatureSpec:
    """The :class:`FeatureSpec` of a configuration."""
    spec = FeatureSpec(
        kind=cfg.kind, sr=cfg.sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels,
        compression=cfg.compression, log_scale=cfg.log_scale, n_mfcc=cfg.n_mfcc,  # type: ignore[arg-type]
        segment_frames=segment_frames(cfg.segment_s, cfg.sr, cfg.hop_length),
        window_hop_s=WINDOW_HOP_S, mean=mean, std=std,
    )
    spec.validate()
    return spec


@dataclass
class Prepared:
    """Features of every split, standardised with training-set statistics."""

    spec: FeatureSpec
    labels: list[str]
    clips: dict[str, list[data.Clip]]
    split: dict[str, Any]


def prepare(
    root: str | os.PathLike[str], cfg: FitConfig, cache_dir: str | os.PathLike[str] = CACHE_DIR,
    splits: tuple[str, ...] = ("train", "extra", "valid"),
) -> Prepared:
    """Load (cached) features of ``splits`` and of ``cfg.train_splits`` (which give mean/std)."""
    tracks, labels = data.discover(root)
    how = data.assign_splits(tracks, root, cfg.seed)
    spec = make_spec(cfg)
    wanted = [t for t in tracks if t.split in set(splits) | set(cfg.train_splits)]
    clips = data.load_clips(wanted, labels, spec, cache_dir)
    by_split: dict[str, list[data.Clip]] = {s: [] for s in (*splits, *cfg.train_splits)}
    for c in clips:
        by_split[c.track.split].append(c)
    mean, std = data.standardisation([c for s in cfg.train_splits for c in by_split.get(s, [])])
    spec = make_spec(cfg, mean, std)
    m, s = np.float32(mean), np.float32(std)
    for c in clips:
        c.x = ((c.x - m) / s).astype(np.float32)  # the runtime's float32 arithmetic
    return Prepared(spec, labels, by_split, data.split_description(tracks, how))


def device() -> torch.device:
    """CUDA when torch sees it, else CPU with every core (``TRAIN_THREADS`` overrides the count)."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(int(os.environ.get(THREADS_ENV) or os.cpu_count() or 1))
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Fix Python, numpy and torch seeds; deterministic kernels where torch has them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def make_optimizer(cfg: FitConfig, params: Any) -> torch.optim.Optimizer:
    """sgd (Nesterov momentum), adam, adamw or adagrad."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def make_scheduler(cfg: FitConfig, opt: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
    """step, cosine, onecycle (stepped per batch), plateau (on validation macro-F1) or none."""
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg.epochs // 3), gamma=0.3)
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch,
                                                   cycle_momentum=cfg.optimizer != "adagrad")  # adagrad has no momentum
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.3, patience=max(1, cfg.patience // 3))
    if cfg.scheduler == "none":
        return None
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}")


def epoch_batches(
    clips: list[data.Clip], spec: FeatureSpec, cfg: FitConfig, n_labels: int, rng: np.random.Generator
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One epoch of augmented batches: ``crops_per_track`` random windows per training track."""
    order = [i for i in range(len(clips)) for _ in range(cfg.crops_per_track)]
    rng.shuffle(order)
    m, s = np.float32(spec.mean), np.float32(spec.std)
    batches = []
    for b in range(0, len(order), cfg.batch_size):
        idx = order[b : b + cfg.batch_size]
        xs = []
        for i in idx:
            w = augment.random_crop(clips[i].x, spec.segment_frames, rng)
            if cfg.gain_db > 0:
                raw = w * s + m
                w = (augment.apply_gain(raw, float(rng.uniform(-cfg.gain_db, cfg.gain_db)), spec) - m) / s
            w = augment.spec_augment(w, rng, cfg.freq_mask, cfg.time_mask)
            xs.append(w)
        x = np.stack(xs).astype(np.float32)
        y = np.eye(n_labels, dtype=np.float32)[[clips[i].label for i in idx]]
        x, y = augment.mixup(x, y, cfg.mixup_alpha, rng)
        batches.append((x, y.astype(np.float32)))
    return batches


def torch_logits(net: nn.Module, dev: torch.device, batch: int = 256) -> Any:
    """A ``windows -> logits`` function running ``net`` in eval mode."""

    def run(w: np.ndarray) -> np.ndarray:
        net.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(w), batch):
                out.append(net(torch.from_numpy(np.ascontiguousarray(w[i : i + batch])).to(dev)).float().cpu().numpy())
        return np.concatenate(out)

    return run


def evaluate_split(
    net: nn.Module, clips: list[data.Clip], spec: FeatureSpec, n_labels: int, dev: torch.device,
    fast: bool = False, temperature: float = 1.0,
) -> tuple[dict[str, float | int], list[metrics.TrackPrediction]]:
    """Scores and predictions of ``net`` on standardised clips (runtime aggregation at ``temperature``,
    which can change a song's verdict: it is the mean of the seconds' probabilities).

    ``fast`` uses non-overlapping windows (hop = window length) instead of the
    runtime's 1 s hop: about ``segment_s`` times fewer windows, for per-epoch
    early stopping. Reported figures always use the runtime's windows.
    """
    if fast:
        spec = replace(spec, window_hop_s=spec.segment_s)
    preds = metrics.predict_tracks([(c.x, c.label, c.n_samples) for c in clips], spec, torch_logits(net, dev),
                                   temperature)
    sc = metrics.scores(preds, n_labels)
    logits = np.concatenate([p.window_logits for p in preds])
    labels = np.concatenate([np.full(len(p.window_logits), p.label) for p in preds])
    sc["loss"] = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
    return sc, preds


def _run_dir(name: str, runs_dir: Path) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    d = runs_dir / f"{stamp}-{name}"
    k = 1
    while d.exists():
        k += 1
        d = runs_dir / f"{stamp}-{name}-{k}"
    d.mkdir(parents=True)
    return d


def _append_results(runs_dir: Path, row: dict[str, Any]) -> None:
    path = runs_dir / RESULTS_CSV
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def fit(
    cfg: FitConfig, runs_dir: str | os.PathLike[str] = RUNS_DIR, cache_dir: str | os.PathLike[str] = CACHE_DIR,
    prepared: Prepared | None = None, verbose: bool = True,
) -> Path:
    """Train one configuration; return its run folder.

    Parameters
    ----------
    cfg : FitConfig
        The recipe (``cfg.data`` is the data root).
    runs_dir : str or os.PathLike
        Parent of the run folder; ``results.csv`` there gets one line.
    cache_dir : str or os.PathLike
        Feature cache.
    prepared : Prepared, optional
        Features already loaded for this configuration (the search reuses them).
    verbose : bool
        Print one line per epoch.
    """
    t0 = time.time()
    runs_dir = Path(runs_dir)
    seed_everything(cfg.seed)
    dev = device()
    prep = prepared or prepare(cfg.data, cfg, cache_dir)
    spec, labels = prep.spec, prep.labels
    train_clips = [c for s in cfg.train_splits for c in prep.clips.get(s, [])]
    valid_clips = prep.clips.get("valid", [])
    if not train_clips or not valid_clips:
        raise ValueError("need training and validation tracks")
    net = nets.build(cfg.net, spec.n_bands, spec.segment_frames, len(labels),
                     channels=cfg.channels, activation=cfg.activation, dropout=cfg.dropout).to(dev)
    n_params = nets.count_parameters(net)
    opt = make_optimizer(cfg, net.parameters())
    steps = -(-len(train_clips) * cfg.crops_per_track // cfg.batch_size)
    sched = make_scheduler(cfg, opt, steps)
    rng = np.random.default_rng(cfg.seed)
    run = _run_dir(cfg.name, runs_dir)
    (run / "config.json").write_text(json.dumps(
        {"config": asdict(cfg), "features": spec.to_dict(), "labels": labels, "split": prep.split,
         "parameters": n_params, "device": str(dev), "torch": torch.__version__,
         "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=2))
    best: tuple[float, float, float] = (-1.0, -1.0, 0.0)
    best_epoch, best_state, best_valid = 0, None, {}
    log = (run / "epochs.csv").open("w", newline="")
    writer = csv.writer(log)
    writer.writerow(["epoch", "lr", "train_loss", "valid_loss", "valid_segment_accuracy", "valid_segment_macro_f1",
                     "valid_track_accuracy", "valid_track_macro_f1", "seconds"])
    epochs_run = 0
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        losses = []
        for x, y in epoch_batches(train_clips, spec, cfg, len(labels), rng):
            xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
            if cfg.label_smoothing > 0:
                yt = yt * (1 - cfg.label_smoothing) + cfg.label_smoothing / len(labels)
            loss = torch.sum(-yt * torch.log_softmax(net(xt), dim=1), dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if cfg.scheduler == "onecycle":
                sched.step()
            losses.append(loss.item())
        sc, _ = evaluate_split(net, valid_clips, spec, len(labels), dev, fast=True)
        lr = opt.param_groups[0]["lr"]
        if cfg.scheduler == "plateau":
            sched.step(sc["segment_macro_f1"])
        elif sched is not None and cfg.scheduler != "onecycle":
            sched.step()
        epochs_run = epoch
        writer.writerow([epoch, f"{lr:.3g}", f"{np.mean(losses):.4f}", f"{sc['loss']:.4f}",
                         f"{sc['segment_accuracy']:.4f}", f"{sc['segment_macro_f1']:.4f}",
                         f"{sc['track_accuracy']:.4f}", f"{sc['track_macro_f1']:.4f}", f"{time.time() - t0:.1f}"])
        log.flush()
        key = (sc["segment_macro_f1"], sc["track_macro_f1"], -sc["loss"])
        if verbose:
            print(f"epoch {epoch:3d} loss {np.mean(losses):.3f} valid seg-F1 {sc['segment_macro_f1']:.3f} "
                  f"trk-acc {sc['track_accuracy']:.3f} ({time.time() - t0:.0f}s)", flush=True)
        if key > best:
            best, best_epoch, best_valid = key, epoch, sc
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        elif epoch - best_epoch >= cfg.patience:
            break
        if cfg.max_minutes and time.time() - t0 > 60 * cfg.max_minutes:
            break
    log.close()
    net.load_state_dict(best_state)
    best_valid, _ = evaluate_split(net, valid_clips, spec, len(labels), dev)  # the runtime's windows
    wall = time.time() - t0
    torch.save({"state_dict": best_state, "config": asdict(cfg), "features": spec.to_dict(), "labels": labels,
                "split": prep.split, "parameters": n_params}, run / "model.pt")
    result = {"valid": best_valid, "best_epoch": best_epoch, "epochs_run": epochs_run,
              "wall_s": round(wall, 1), "parameters": n_params}
    (run / "metrics.json").write_text(json.dumps(result, indent=2))
    _append_results(runs_dir, {
        "run": run.name, "kind": cfg.kind, "segment_s": cfg.segment_s, "optimizer": cfg.optimizer, "lr": cfg.lr,
        "batch_size": cfg.batch_size, "activation": cfg.activation, "scheduler": cfg.scheduler,
        "best_epoch": best_epoch, "epochs_run": epochs_run,
        **{f"valid_{k}": round(v, 4) if isinstance(v, float) else v for k, v in best_valid.items()},
        "wall_s": round(wall, 1), "parameters": n_params,
    })
    if verbose:
        print(f"run {run}  best epoch {best_epoch}  valid {json.dumps(best_valid)}  {wall:.0f}s", flush=True)
    return run


def load_run(run: str | os.PathLike[str]) -> tuple[nn.Module, FitConfig, FeatureSpec, list[str], dict[str, Any]]:
    """Rebuild the best network of a run folder (eval mode, CPU).

    Returns
    -------
    net, config, spec, labels, checkpoint
    """
    ckpt = torch.load(Path(run) / "model.pt", map_location="cpu", weights_only=False)
    cfg = FitConfig.from_dict(ckpt["config"])
    spec = FeatureSpec.from_dict(ckpt["features"])
    net = nets.build(cfg.net, spec.n_bands, spec.segment_frames, len(ckpt["labels"]),
                     channels=cfg.channels, activation=cfg.activation, dropout=cfg.dropout)
    net.load_state_dict(ckpt["state_dict"])
    net.eval()
    return net, cfg, spec, list(ckpt["labels"]), ckpt
