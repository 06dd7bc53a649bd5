"""Genre models over EfficientAT ``mn04_as``, the AudioSet tagger (:mod:`train.mn04`).

The network runs in the runtime's ``stream`` layout: each call embeds a stretch of
``CHUNK_FRAMES`` new mel frames (10.24 s, about the 10-s clips it was trained on,
so its squeeze-and-excitation sees what it saw in training) plus ``CONTEXT_FRAMES``
on each side; every mel frame's embedding is the 384-d column of the feature map
that holds it (the network downsamples time by 32, and the stretches start on that
grid); a window's pooled embedding is the mean of its frames', which goes through
the AudioSet classifier to 527 logits and then through a genre head: an affine
map ``W @ logits + b`` from AudioSet's classes to the model's genres.

The *tagger* (:func:`tagger_model`) is the same graph with the identity head and
AudioSet's 527 class names as labels. It is what heads are fitted on: its window
logits come from the runtime itself (:func:`window_tags`), so a head fitted on them
gives the shipped model's window logits exactly, whatever the chunking.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genre_infer.features import FeatureSpec
from genre_infer.model import ModelInfo, NetworkSpec

from .backbones.mn04 import EMBED_DIM, N_CLASSES, TIME_STRIDE, Mn04, load_mn04
from .transfer import save_json  # noqa: F401 - the project's one JSON writer, used by the audioset modules

__all__ = [
    "MN04_FEATURES", "CHUNK_FRAMES", "CONTEXT_FRAMES", "WEIGHTS", "CLASS_CSV", "audioset_labels",
    "GenreMn04Stream", "tagger_model", "export_stream", "window_tags", "save_json",
]

WEIGHTS = Path(__file__).resolve().parents[1] / ".." / "shared" / "weights" / "efficientat" / "mn04_as.npz"
CLASS_CSV = WEIGHTS.with_name("audioset_class_labels_indices.csv")

#: EfficientAT's front end in eval mode (``AugmentMelSTFT``): 32 kHz, pre-emphasis 0.97, a
#: symmetric Hann window of 800 samples in a 1024-point FFT, hop 320 (10 ms), 128 Kaldi mel
#: bands 0-15 kHz, ``(ln(S + 1e-5) + 4.5) / 5``. Windows of 3 s, one per second.
MN04_FEATURES = FeatureSpec(
    kind="melgram", sr=32000, n_fft=1024, hop_length=320, n_mels=128, fmin=0.0, fmax=15000.0,
    compression="ln", log_scale=1e-5, segment_frames=300, window_hop_s=1.0, mean=-4.5, std=5.0,
    mel_scale="kaldi", win_length=800, symmetric_window=True, pad_mode="reflect", preemphasis=0.97,
)
#: New mel frames per network call (32 columns of the feature map: 10.24 s).
CHUNK_FRAMES = 32 * TIME_STRIDE
#: Frames of context on each side of a call (3 columns: 0.96 s).
CONTEXT_FRAMES = 3 * TIME_STRIDE


def audioset_labels(path: Path = CLASS_CSV) -> list[str]:
    """AudioSet's 527 class names in output order."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    names = [r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"]))]
    if len(names) != N_CLASSES:
        raise ValueError(f"{path}: {len(names)} classes, expected {N_CLASSES}")
    return names


class GenreMn04Stream(nn.Module):
    """mn04 in the stream layout with an affine genre head over its AudioSet logits.

    Inputs ``features (1, frames, 128)``, ``keep (2,)``, ``past (rows, 384)``, ``starts (W,)``;
    outputs ``logits (W, labels)`` and ``frames (keep[1] - keep[0], 384)``.
    """

    frame_dim = EMBED_DIM

    def __init__(self, backbone: Mn04, weight: np.ndarray, bias: np.ndarray,
                 segment_frames: int = MN04_FEATURES.segment_frames) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        self.register_buffer("weight", torch.as_tensor(np.asarray(weight, np.float32)))
        self.register_buffer("bias", torch.as_tensor(np.asarray(bias, np.float32)))
        self.segment_frames = int(segment_frames)

    def forward(self, x: torch.Tensor, keep: torch.Tensor, past: torch.Tensor,
                starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cols = self.backbone.columns(x.transpose(1, 2)[:, None])[0]            # (384, ceil(T / 32))
        idx = torch.div(torch.arange(keep[0], keep[1]), TIME_STRIDE, rounding_mode="floor")
        kept = torch.index_select(cols, 1, idx).T                             # (kept, 384)
        rows = torch.cat([past, kept])
        g = rows[starts[:, None] + torch.arange(self.segment_frames)[None, :]]  # (W, seg, 384)
        tags = self.backbone.head(g.mean(dim=1))                               # (W, 527)
        return tags @ self.weight.T + self.bias, kept


def tagger_model(weights: Path = WEIGHTS) -> GenreMn04Stream:
    """The stream network with the identity head: window logits are AudioSet's 527."""
    return GenreMn04Stream(load_mn04(weights), np.eye(N_CLASSES, dtype=np.float32), np.zeros(N_CLASSES, np.float32))


def _example(spec: FeatureSpec, dim: int) -> tuple[torch.Tensor, ...]:
    frames = CHUNK_FRAMES + 2 * CONTEXT_FRAMES
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((1, frames, spec.n_bands)).astype(np.float32))
    past = torch.from_numpy(rng.standard_normal((40, dim)).astype(np.float32))
    kept = CHUNK_FRAMES + len(past)
    starts = torch.arange(0, kept - spec.segment_frames + 1, 100)
    return x, torch.tensor([CONTEXT_FRAMES, CONTEXT_FRAMES + CHUNK_FRAMES]), past, starts


def export_stream(net: GenreMn04Stream, labels: list[str], spec: FeatureSpec, out: Path, name: str,
                  version: str, extra: dict | None = None, temperature: float = 1.0,
                  uncertain_below: float = 0.0) -> ModelInfo:
    """Export ``net`` to ONNX at ``out`` with its metadata, checked against torch on an example call."""
    import onnxruntime as ort

    from .export import OPSET, write_metadata

    args = _example(spec, net.frame_dim)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.export")
    torch.onnx.export(
        net.eval(), args, str(tmp), input_names=["features", "keep", "past", "starts"],
        output_names=["logits", "frames"], opset_version=OPSET, dynamo=False,
        dynamic_axes={"features": {1: "frames"}, "past": {0: "rows"}, "starts": {0: "windows"},
                      "logits": {0: "windows"}, "frames": {0: "kept"}},
    )
    with torch.no_grad():
        want = [t.numpy() for t in net(*args)]
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = sess.run(["logits", "frames"], {k: v.numpy() for k, v in zip(["features", "keep", "past", "starts"], args)})
    err = max(float(np.abs(a - b).max()) for a, b in zip(want, got))
    if not err < 1e-3:
        raise RuntimeError(f"onnxruntime and torch disagree by {err:g}")
    info = ModelInfo(name=name, version=version, labels=tuple(labels), features=spec, temperature=temperature,
                     uncertain_below=uncertain_below, extra={"parity_max_abs": err, **(extra or {})},
                     network=NetworkSpec("stream", CONTEXT_FRAMES, CHUNK_FRAMES))
    write_metadata(tmp, info, out)
    tmp.unlink(missing_ok=True)
    return info


def _file_key(model: Path) -> str:
    return hashlib.sha256(model.read_bytes()).hexdigest()[:16]


def window_tags(model: Path, paths: list[Path], cache_dir: Path, root: Path | None = None,
                level_db_of: dict[str, float] | None = None) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Window logits, window starts (s) and duration (s) of each file, as the runtime computes them
    with ``model`` (a tagger or any genre-infer model); cached per model file and path."""
    from genre_infer.api import Classifier

    clf: Classifier | None = None
    key = cache_dir / _file_key(model)
    key.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        rel = str(p.relative_to(root)) if root is not None else p.name
        f = key / (hashlib.sha1(rel.encode()).hexdigest()[:16] + ".npz")
        if f.exists():
            with np.load(f) as z:
                out.append((z["logits"], z["starts"], float(z["duration"])))
            continue
        if clf is None:
            clf = Classifier(model, device="cpu", threads=1)
        blocks, level = clf._blocks(p, None)
        a = clf.analyse(blocks, level)
        dur = a.n_samples / clf.model.features.sr
        np.savez(f, logits=a.logits, starts=a.starts_s, duration=dur, rel=rel)
        out.append((a.logits, a.starts_s, dur))
    return out

