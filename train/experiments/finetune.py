"""Experiment: fine-tune musicnn's mid end with the genre head (``python -m train finetune``).

The shipped recipe (:mod:`train.transfer`) freezes all of musicnn and trains a head on its
pooled features. Here the front end stays frozen (its 561 per-frame outputs are cached for
every clip version) while the mid end's three convolutions train together with the head,
from the pretrained weights, at their own (smaller) learning rate; batch-norm statistics
stay as pretrained. The same code with the mid end's learning rate at 0 is the frozen
baseline, so both arms share data, augmented versions, windows, head recipe and early
stopping (validation track macro-F1, then segment macro-F1). Scored on validation only;
nothing is exported.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genre_infer import audio as gi_audio
from genre_infer import features as gi_features

from ..constants import REPO_ROOT, SEED
from ..data import Track, assign_splits, discover
from ..backbones.musicnn import MUSICNN_SPEC, PATCH_FRAMES, Musicnn, load_backbone, pool_windows
from ..embeddings import EmbeddedTrack, version_audio
from ..embeddings import cache_path as _cache_path
from ..heads import Head, HeadConfig, evaluate_items

__all__ = ["FrontTrack", "FinetuneConfig", "front_tracks", "MidAndHead", "finetune", "main"]

#: Frames on each side that reach a frame through the mid end (three 7-frame convolutions).
MID_CONTEXT = 9


@dataclass
class FrontTrack:
    """The frozen front end's output for one version of one clip."""

    track: Track
    label: int
    version: int
    front: np.ndarray  # (561, frames) float16
    n_samples: int


@dataclass
class FinetuneConfig:
    """Both arms' settings (``lr_mid`` 0 is the frozen baseline)."""

    lr_mid: float = 1e-4
    lr_head: float = 3e-4
    weight_decay: float = 1e-4
    batch_size: int = 32
    windows_per_version: int = 16  # training windows drawn per clip version and epoch
    epochs: int = 30
    patience: int = 8
    mixup: float = 0.2
    label_smoothing: float = 0.05
    seed: int = SEED


def front_tracks(root: str | os.PathLike[str], n_aug: int = 2, seed: int = SEED,
                 log: Any = print) -> tuple[list[FrontTrack], list[str]]:
    """Front-end outputs of every clip version (augmented copies for train/extra), cached."""
    tracks, labels = discover(root)
    assign_splits(tracks, root, seed)
    index = {g: i for i, g in enumerate(labels)}
    net = load_backbone()
    torch.set_num_threads(os.cpu_count() or 1)
    out: list[FrontTrack] = []
    t0 = time.time()
    for n, track in enumerate(t for t in tracks if t.split in ("train", "extra", "valid")):
        y = None
        for v in range(1 + (n_aug if track.split in ("train", "extra") else 0)):
            path = _cache_path(track, v, seed, "frontend").with_suffix(".npz")
            if path.is_file():
                z = np.load(path)
                front, n_samples = z["front"], int(z["n_samples"])
            else:
                if y is None:
                    y = gi_audio.load(track.path, MUSICNN_SPEC.sr)
                yv = version_audio(y, track, v, seed)
                x = gi_features.compute(gi_features.fill_window(yv, MUSICNN_SPEC), MUSICNN_SPEC)
                with torch.no_grad():
                    front = net.front_end(torch.from_numpy(x)[None])[0].numpy().astype(np.float16)
                n_samples = len(yv)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(path, front=front, n_samples=n_samples)
            out.append(FrontTrack(track, index[track.genre], v, front, n_samples))
        if (n + 1) % 20 == 0:
            log(f"front end of {n + 1} clips in {time.time() - t0:.0f} s")
    return out, labels


class MidAndHead(nn.Module):
    """musicnn's mid end (trainable copy) and a genre head over the pooled windows."""

    def __init__(self, backbone: Musicnn, head: Head) -> None:
        super().__init__()
        self.net = copy.deepcopy(backbone)
        for name, p in self.net.named_parameters():
            p.requires_grad_(name.startswith(("mid1.conv", "mid2.conv", "mid3.conv")))
        self.head = head

    def train(self, mode: bool = True) -> MidAndHead:
        super().train(mode)
        self.net.eval()  # pretrained batch-norm statistics stay (75 clips would not estimate them)
        self.head.train(mode)
        return self

    def window_logits(self, fronts: torch.Tensor) -> torch.Tensor:
        """Training windows with mid-end context ``(B, 561, 187 + 2 * MID_CONTEXT)`` → logits."""
        frames = self.net.mid_end(fronts)[:, :, MID_CONTEXT : MID_CONTEXT + PATCH_FRAMES]
        return self.head(Musicnn.pool(frames))

    @torch.no_grad()
    def pooled(self, front: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Pooled features of a whole clip's windows, the mid end run once over the clip."""
        frames = self.net.mid_end(torch.from_numpy(front.astype(np.float32))[None])[0]
        return pool_windows(frames, torch.from_numpy(starts)).numpy()


def _window_batch(items: list[FrontTrack], picks: list[tuple[int, int]]) -> torch.Tensor:
    """Crops with mid-end context (zeros outside the clip: the whole-clip pass pads each mid-end
    layer's input, so a crop reaching past an edge is close to it but not equal)."""
    out = np.zeros((len(picks), items[0].front.shape[0], PATCH_FRAMES + 2 * MID_CONTEXT), dtype=np.float32)
    for b, (i, s) in enumerate(picks):
        f = items[i].front
        lo, hi = s - MID_CONTEXT, s + PATCH_FRAMES + MID_CONTEXT
        a, z = max(lo, 0), min(hi, f.shape[1])
        out[b, :, a - lo : z - lo] = f[:, a:z]
    return torch.from_numpy(out)


def _evaluate(model: MidAndHead, valid: list[FrontTrack], n_labels: int) -> dict[str, Any]:
    model.eval()
    items = []
    for it in valid:
        starts = gi_features.window_starts(it.front.shape[1], MUSICNN_SPEC)
        items.append(EmbeddedTrack(it.track, it.label, it.version, model.pooled(it.front, starts),
                                   starts * MUSICNN_SPEC.hop_length / MUSICNN_SPEC.sr, it.n_samples))
    return evaluate_items(model.head, items, n_labels)


def finetune(items: list[FrontTrack], n_labels: int, head_cfg: HeadConfig, cfg: FinetuneConfig,
             log: Any = print) -> dict[str, Any]:
    """Train one arm; early stopping on validation. Returns its history and best validation scores."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    train = [it for it in items if it.track.split in ("train", "extra")]
    valid = [it for it in items if it.track.split == "valid" and it.version == 0]
    backbone = load_backbone()
    model = MidAndHead(backbone, Head(backbone, n_labels, head_cfg))
    mid = [p for n, p in model.net.named_parameters() if p.requires_grad]
    head = [p for p in model.head.parameters() if p.requires_grad]
    groups = [{"params": head, "lr": cfg.lr_head}] + ([{"params": mid, "lr": cfg.lr_mid}] if cfg.lr_mid > 0 else [])
    if cfg.lr_mid <= 0:
        for p in mid:
            p.requires_grad_(False)
    opt = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    labels = torch.tensor([it.label for it in train])
    counts = torch.bincount(labels, minlength=n_labels).double()
    weight = torch.where(counts > 0, counts.sum() / (n_labels * counts.clamp(min=1)), torch.zeros_like(counts))
    loss_fn = nn.CrossEntropyLoss(weight=weight.float(), label_smoothing=cfg.label_smoothing)
    best, best_epoch, best_state, history = (-1.0, -1.0), 0, None, []
    t0 = time.time()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        # starts with the mid end's whole context inside the clip, where a crop equals the whole-clip pass
        picks = [(i, int(rng.integers(MID_CONTEXT, max(MID_CONTEXT + 1, it.front.shape[1] - PATCH_FRAMES - MID_CONTEXT + 1))))
                 for i, it in enumerate(train) for _ in range(cfg.windows_per_version)]
        order = rng.permutation(len(picks))
        total = 0.0
        for k in range(0, len(order), cfg.batch_size):
            batch = [picks[j] for j in order[k : k + cfg.batch_size]]
            xb = _window_batch(train, batch)
            yb = nn.functional.one_hot(torch.tensor([train[i].label for i, _ in batch]), n_labels).float()
            if cfg.mixup > 0:  # mixup of the inputs: both pass through the trainable mid end
                lam = float(rng.beta(cfg.mixup, cfg.mixup))
                perm = torch.randperm(len(xb))
                xb, yb = lam * xb + (1 - lam) * xb[perm], lam * yb + (1 - lam) * yb[perm]
            loss = loss_fn(model.window_logits(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        sched.step()
        s = _evaluate(model, valid, n_labels)
        row = {"epoch": epoch, "loss": total / len(picks), **{f"valid_{k}": v for k, v in s.items()},
               "wall_s": round(time.time() - t0, 1)}
        history.append(row)
        log(json.dumps(row))
        key = (s["track_macro_f1"], s["segment_macro_f1"])
        if key > best:
            best, best_epoch = key, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= cfg.patience:
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    return {"config": asdict(cfg), "best_epoch": best_epoch, "valid": _evaluate(model, valid, n_labels),
            "history": history}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m train finetune [--n-aug 2] [--lr-mid 1e-4] [--out runs/finetune]``."""
    ap = argparse.ArgumentParser(prog="python -m train finetune", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gtzan"))
    ap.add_argument("--n-aug", type=int, default=2)
    ap.add_argument("--lr-mid", type=float, nargs="+", default=[0.0, 1e-4],
                    help="one arm per value (0: the frozen baseline)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--head-from", type=Path, default=REPO_ROOT / "runs" / "transfer-v1" / "result.json",
                    help="a transfer run's result.json: its selected head configuration")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / (time.strftime("%Y%m%d-%H%M%S") + "-finetune"))
    a = ap.parse_args(argv)
    prev = json.loads(a.head_from.read_text())["search_best"]
    head_cfg = HeadConfig(**{k: prev[k] for k in ("kind", "lr", "dropout", "mixup", "weight_decay")}, seed=SEED)
    items, labels = front_tracks(a.data, a.n_aug, log=lambda m: print(m, flush=True))
    torch.set_num_threads(os.cpu_count() or 1)
    a.out.mkdir(parents=True, exist_ok=True)
    results = []
    for lr_mid in a.lr_mid:
        cfg = FinetuneConfig(lr_mid=lr_mid, lr_head=head_cfg.lr, weight_decay=head_cfg.weight_decay,
                             mixup=head_cfg.mixup, epochs=a.epochs)
        r = finetune(items, len(labels), head_cfg, cfg, log=lambda m: print(m, flush=True))
        print(f"lr_mid {lr_mid}: best epoch {r['best_epoch']}, valid {json.dumps(r['valid'])}", flush=True)
        results.append(r)
        (a.out / "result.json").write_text(json.dumps({"head": asdict(head_cfg), "arms": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
