"""The ``fast`` model: a small fully convolutional student distilled from the musicnn model.

musicnn costs about 1.4 GMAC per 3-s window, far too much for the speed
targets. The student reads the same 96-band log-mel frames, treats the bands as
channels of 1-D convolutions over time (four conv / batch norm / ReLU / max-pool
blocks down to one output frame per 8 input frames, then two dilated
convolutions for context), and is run once over the whole melgram: a window's
logits are the mean of the frame logits it covers, exactly as
:class:`genre_infer.inference.SequenceRunner` computes them at run time.

It learns from the teacher on every cached clip version (the clean clip and its
augmented copies, :func:`train.embeddings.version_audio`):

- ``mse``: its window embedding matches musicnn's 200-d penultimate embedding
  (label-free knowledge from the Million Song Dataset);
- ``kd``: its window probabilities match the teacher's (temperature ``tau``);
- ``ce``: class-balanced cross-entropy on the true genre.

``python -m train distill`` trains on train+extra with early stopping on
validation and reports the student beside its teacher. Measured so far
(``runs/distill-v1``): 47.5% validation track accuracy against the teacher's
81.4%: 75 clips cannot teach a network what musicnn learnt from a million
songs, so the student is not shipped.
"""

from __future__ import annotations

import hashlib
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
from ..data import Track
from ..metrics import TrackPrediction, scores, softmax, track_verdict
from ..backbones.musicnn import MUSICNN_SPEC, load_backbone
from ..embeddings import EmbeddedTrack, embed_tracks, version_audio
from ..heads import Head, HeadConfig, fit_head

__all__ = ["StudentConfig", "Student", "StudentItem", "student_items", "fit_student", "predict", "run", "main"]

STRIDE = 8
DISTILL_DIR = REPO_ROOT / ".cache" / "distill"


@dataclass
class StudentConfig:
    """Width, regularisation and loss weights of the student."""

    widths: tuple[int, int, int, int] = (128, 128, 192, 256)
    embed: int = 200  # musicnn's penultimate width
    dilations: tuple[int, ...] = (2, 4)
    dropout: float = 0.3
    lr: float = 2e-3
    weight_decay: float = 1e-3
    batch_size: int = 16
    crop_frames: int = 928  # ~15 s, a multiple of STRIDE
    epochs: int = 80
    patience: int = 15
    mse: float = 1.0
    kd: float = 1.0
    ce: float = 0.5
    tau: float = 2.0
    seed: int = SEED


def _block(c_in: int, c_out: int, dilation: int = 1) -> list[nn.Module]:
    return [nn.Conv1d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True)]


class Student(nn.Module):
    """Log-mel frames ``(batch, frames, 96)`` → frame logits ``(batch, frames // 8, labels)``."""

    def __init__(self, n_labels: int, cfg: StudentConfig = StudentConfig(), n_mels: int = 96) -> None:
        super().__init__()
        w = cfg.widths
        layers: list[nn.Module] = [nn.BatchNorm1d(n_mels)]
        c = n_mels
        for i, width in enumerate(w):
            layers += _block(c, width)
            if i < 3:
                layers.append(nn.MaxPool1d(2))
            c = width
        for d in cfg.dilations:
            layers += _block(c, c, d)
        layers += [nn.Conv1d(c, cfg.embed, 1)]
        self.body = nn.Sequential(*layers)
        self.drop = nn.Dropout(cfg.dropout)
        self.classifier = nn.Conv1d(cfg.embed, n_labels, 1)

    @staticmethod
    def context_frames(cfg: StudentConfig = StudentConfig()) -> int:
        """Input frames on each side that reach an output frame, rounded up to a multiple of the stride."""
        radius = 1 + 2 + 4  # k=3 convs at strides 1, 2, 4
        radius += 8 * (1 + sum(cfg.dilations))  # the last pooled block and the dilated convs at stride 8
        radius += STRIDE  # pooling windows
        return -(-radius // STRIDE) * STRIDE

    def frame_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, 96)`` → ``(batch, embed, frames // 8)``."""
        return self.body(x.transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.frame_embeddings(x)).transpose(1, 2)


@dataclass
class StudentItem:
    """One clip version: its features, windows and the teacher's view of each window."""

    track: Track
    label: int
    version: int
    x: np.ndarray  # (frames, 96) float16
    starts: np.ndarray  # (windows,) start frames
    n_samples: int
    h: np.ndarray  # (windows, 200) teacher embedding
    t_logits: np.ndarray  # (windows, labels) teacher logits


def window_frame_ranges(starts: np.ndarray, segment_frames: int, stride: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Output frames ``[lo, hi)`` (one per ``stride`` input frames) that start inside each window."""
    starts = np.asarray(starts, dtype=np.int64)
    lo = np.minimum(-(-starts // stride), max(n_out - 1, 0))
    hi = np.clip(-(-(starts + segment_frames) // stride), lo + 1, max(n_out, 1))
    return lo, hi


def _features_path(track: Track, version: int, seed: int) -> Path:
    key = hashlib.sha1(f"{track.path}|{track.path.stat().st_size}|{version}|{seed}".encode()).hexdigest()[:16]
    return DISTILL_DIR / f"{track.path.stem}-{version}-{key}.npy"


def clip_features(track: Track, version: int, seed: int = SEED) -> np.ndarray:
    """Whole-clip features of a clip version (cached), the frames the teacher's windows were cut from."""
    path = _features_path(track, version, seed)
    if path.is_file():
        return np.load(path)
    y = version_audio(gi_audio.load(track.path, MUSICNN_SPEC.sr), track, version, seed)
    x = gi_features.compute(gi_features.fill_window(y, MUSICNN_SPEC), MUSICNN_SPEC).astype(np.float16)
    DISTILL_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


@torch.no_grad()
def teacher_outputs(head: Head, pooled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The teacher head's 200-d embedding and logits for pooled musicnn windows."""
    head.eval()
    h = head.dense_bn(torch.relu(head.dense(head.pool_bn(torch.from_numpy(pooled)))))
    return h.numpy(), head.out(h).numpy()


def student_items(items: list[EmbeddedTrack], head: Head) -> list[StudentItem]:
    """Join cached musicnn windows with the clip features and the teacher's outputs."""
    out = []
    for it in items:
        x = clip_features(it.track, it.version)
        starts = np.round(it.starts_s * MUSICNN_SPEC.sr / MUSICNN_SPEC.hop_length).astype(np.int64)
        if len(x) < MUSICNN_SPEC.segment_frames or starts[-1] + MUSICNN_SPEC.segment_frames != len(x):
            raise RuntimeError(f"{it.track.rel} v{it.version}: features disagree with the cached windows")
        h, z = teacher_outputs(head, it.pooled)
        out.append(StudentItem(it.track, it.label, it.version, x, starts, it.n_samples, h, z))
    return out


def _window_mean(frames: torch.Tensor, lo: np.ndarray, hi: np.ndarray) -> torch.Tensor:
    """Mean of ``frames (C, T)`` over each ``[lo, hi)`` → ``(windows, C)``, as the runtime pools."""
    csum = torch.cat([frames.new_zeros(frames.shape[0], 1), frames.cumsum(1)], dim=1)
    lo_t, hi_t = torch.from_numpy(lo), torch.from_numpy(hi)
    return ((csum[:, hi_t] - csum[:, lo_t]) / (hi_t - lo_t).to(frames.dtype)).T


@torch.no_grad()
def predict(net: Student, items: list[StudentItem], temperature: float = 1.0) -> list[TrackPrediction]:
    """Window and track predictions over whole clips, pooled as the runtime pools."""
    net.eval()
    preds = []
    for it in items:
        z = net(torch.from_numpy(it.x.astype(np.float32))[None])[0].numpy()
        lo, hi = window_frame_ranges(it.starts, MUSICNN_SPEC.segment_frames, STRIDE, len(z))
        csum = np.concatenate([np.zeros((1, z.shape[1])), np.cumsum(z, 0, dtype=np.float64)])
        logits = ((csum[hi] - csum[lo]) / (hi - lo)[:, None]).astype(np.float32)
        p = softmax(logits, temperature)
        starts_s = it.starts * MUSICNN_SPEC.hop_length / MUSICNN_SPEC.sr
        preds.append(TrackPrediction(it.label, logits, p, track_verdict(logits, starts_s, MUSICNN_SPEC, it.n_samples, temperature)))
    return preds


def _crop(it: StudentItem, rng: np.random.Generator, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random crop starting on a stride boundary and the windows wholly inside it."""
    seg = MUSICNN_SPEC.segment_frames
    n = min(frames, len(it.x) // STRIDE * STRIDE)
    first = int(rng.integers(0, (len(it.x) - n) // STRIDE + 1)) * STRIDE
    inside = np.flatnonzero((it.starts >= first) & (it.starts + seg <= first + n))
    if len(inside) == 0:  # the end-aligned window of a short clip
        inside = np.array([len(it.starts) - 1])
        first = max(0, int(it.starts[-1]) // STRIDE * STRIDE)
        n = len(it.x) - first
    return it.x[first : first + n].astype(np.float32), it.starts[inside] - first, it.h[inside], it.t_logits[inside]


def fit_student(
    train: list[StudentItem], valid: list[StudentItem], n_labels: int, cfg: StudentConfig,
    epochs: int | None = None, log: Any = print,
) -> tuple[Student, dict[str, Any]]:
    """Distil; early stopping on validation track macro-F1 (then segment macro-F1).

    With ``valid`` empty, trains for exactly ``epochs`` epochs.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = Student(n_labels, cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_epochs = epochs or cfg.epochs
    steps = n_epochs * -(-len(train) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.1)
    counts = np.bincount([it.label for it in train], minlength=n_labels).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / (n_labels * np.maximum(counts, 1)), 0.0), dtype=torch.float32)
    ce = nn.CrossEntropyLoss(weight=weight)
    seg = MUSICNN_SPEC.segment_frames
    best, best_state, best_epoch, history = (-1.0, -1.0), None, 0, []
    for epoch in range(1, n_epochs + 1):
        net.train()
        order = rng.permutation(len(train))
        totals = np.zeros(3)
        t0 = time.time()
        for i in range(0, len(order), cfg.batch_size):
            crops = [_crop(train[j], rng, cfg.crop_frames) for j in order[i : i + cfg.batch_size]]
            labels = [train[j].label for j in order[i : i + cfg.batch_size]]
            length = min(len(c[0]) for c in crops) // STRIDE * STRIDE
            xb = torch.from_numpy(np.stack([c[0][:length] for c in crops]))
            emb = net.frame_embeddings(xb)  # (B, E, T/8)
            h_hat, z_hat, h_t, z_t, y_t = [], [], [], [], []
            for b, (x, starts, h, z) in enumerate(crops):
                ok = starts + seg <= length
                if not ok.any():
                    continue
                lo, hi = window_frame_ranges(starts[ok], seg, STRIDE, emb.shape[2])
                e = _window_mean(emb[b], lo, hi)
                h_hat.append(e)
                z_hat.append(net.classifier(net.drop(e)[:, :, None])[:, :, 0])
                h_t.append(torch.from_numpy(h[ok]))
                z_t.append(torch.from_numpy(z[ok]))
                y_t.append(torch.full((int(ok.sum()),), labels[b], dtype=torch.long))
            h_hat_t, z_hat_t = torch.cat(h_hat), torch.cat(z_hat)
            h_tt, z_tt, y_tt = torch.cat(h_t), torch.cat(z_t), torch.cat(y_t)
            l_mse = nn.functional.mse_loss(h_hat_t, h_tt)
            l_kd = nn.functional.kl_div(nn.functional.log_softmax(z_hat_t / cfg.tau, 1),
                                        nn.functional.softmax(z_tt / cfg.tau, 1), reduction="batchmean") * cfg.tau**2
            l_ce = ce(z_hat_t, y_tt)
            loss = cfg.mse * l_mse + cfg.kd * l_kd + cfg.ce * l_ce
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            totals += [l_mse.item(), l_kd.item(), l_ce.item()]
        n_steps = -(-len(order) // cfg.batch_size)
        row: dict[str, Any] = {"epoch": epoch, "mse": totals[0] / n_steps, "kd": totals[1] / n_steps,
                               "ce": totals[2] / n_steps, "epoch_s": round(time.time() - t0, 1)}
        if valid:
            s = scores(predict(net, valid), n_labels)
            row.update({f"valid_{k}": v for k, v in s.items()})
            key = (s["track_macro_f1"], s["segment_macro_f1"])
            if key > best:
                best, best_epoch = key, epoch
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
        history.append(row)
        log(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
        if valid and epoch - best_epoch >= cfg.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return net, {"best_epoch": best_epoch or n_epochs, "history": history, "config": asdict(cfg)}


def run(root: str | os.PathLike[str], out_dir: Path, n_aug: int, cfg: StudentConfig, log: Any = print) -> dict[str, Any]:
    """Distil on train+extra (teacher: the shipped recipe's head trained on train+extra) and score on valid.

    Validation only: the student is not shipped unless it earns it, so test is not read.
    """
    from ..embeddings import select as _split
    from ..heads import evaluate_items

    t0 = time.time()
    items, labels, _ = embed_tracks(root, n_aug, log=log)
    meta = json.loads((REPO_ROOT / "exported" / "metrics.json").read_text())
    torch.set_num_threads(1)
    valid = _split(items, ("valid",), augmented=False)
    head, _ = fit_head(load_backbone(), _split(items, ("train", "extra"), True), valid, len(labels),
                       HeadConfig(**meta["config"]))
    teacher = evaluate_items(head, valid, len(labels))
    train = student_items(_split(items, ("train", "extra"), True), head)
    torch.set_num_threads(os.cpu_count() or 1)
    net, info = fit_student(train, student_items(valid, head), len(labels), cfg, log=log)
    student = scores(predict(net, student_items(valid, head)), len(labels))
    result = {"teacher_valid": teacher, "student_valid": student, "best_epoch": info["best_epoch"],
              "config": asdict(cfg), "n_aug": n_aug, "train_versions": len(train),
              "parameters": int(sum(p.numel() for p in net.parameters())), "wall_s": round(time.time() - t0, 1),
              "history": info["history"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "result.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    log(f"teacher valid {json.dumps(teacher)}\nstudent valid {json.dumps(student)}")
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m train distill", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gtzan"))
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/<time>-distill)")
    ap.add_argument("--n-aug", type=int, default=2, help="augmented copies per training clip (cached embeddings)")
    ap.add_argument("--epochs", type=int, default=StudentConfig.epochs)
    a = ap.parse_args(argv)
    out = a.out or REPO_ROOT / "runs" / (time.strftime("%Y%m%d-%H%M%S") + "-distill")
    run(a.data, out, a.n_aug, StudentConfig(epochs=a.epochs), log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
