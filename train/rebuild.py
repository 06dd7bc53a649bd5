"""Rebuild an exported musicnn model's graph from its own weights (``python -m train rebuild``).

When the network's code changes in ways that keep its numbers (a faster but
equivalent graph), the shipped model need not be retrained: the genre head's
weights are read back from the ONNX initializers (the exporter keeps the
names of weights it does not fold), the frozen backbone comes from the
converted musicnn checkpoint, both go into today's
:class:`~train.transfer.GenreMusicnnSequence`,
exported again with the same metadata (new version, and a note of where it came
from), and checked twice: onnxruntime against torch, and the new file against
the old one on the same input. Nothing is written unless both agree.
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from genre_infer.model import GenreModel, ModelInfo

from .export import PARITY_TOL, write_checked
from .transfer import GenreMusicnnSequence, Head, HeadConfig, load_backbone

__all__ = ["state_from_onnx", "rebuild", "main"]


def state_from_onnx(path: Path) -> dict[str, torch.Tensor]:
    """The named initializers of an ONNX file as a torch state dict."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}


def _example(info: ModelInfo, frames: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardised random features and every runtime window start in them (parity input)."""
    from genre_infer import features as feat

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, frames, info.features.n_bands)).astype(np.float32)
    return x, feat.window_starts(frames, info.features).astype(np.int64)


def rebuild(src: Path, out: Path, version: str) -> dict[str, float]:
    """Re-export the sequence-layout musicnn model ``src`` as ``out`` with today's graph.

    Returns
    -------
    dict
        ``torch_vs_onnx`` and ``old_vs_new``: max abs logit differences on the parity input.

    Raises
    ------
    RuntimeError
        ``src`` is not a musicnn sequence model with named weights, or the new file
        disagrees with torch or with ``src`` (``out`` is then untouched).
    """
    old = GenreModel(src, device="cpu")
    info = old.info
    if info.network.layout != "sequence":
        raise RuntimeError(f"{src}: not a sequence-layout model")
    training = info.extra.get("training", {})
    if "musicnn" not in str(training.get("pretrained", "")):
        raise RuntimeError(f"{src}: not a musicnn transfer model")
    cfg = HeadConfig(**training["config"])
    backbone = load_backbone()  # frozen in training: the old file is checked against it below
    head = Head(backbone, len(info.labels), cfg)
    state = state_from_onnx(src)
    needed = {k for k in head.state_dict() if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in needed if f"head.{k}" not in state)
    if missing:
        raise RuntimeError(f"{src}: head weights not found among its initializers: {missing[:4]}")
    head.load_state_dict({k: state[f"head.{k}"] for k in needed}, strict=False)
    net = GenreMusicnnSequence(backbone, head).eval()

    meta = info.to_metadata()
    extra = {k: v for k, v in info.extra.items()}
    extra["training"] = {**training, "rebuilt_from": {"version": info.version, "date": datetime.now(
        timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__}}
    new_info = ModelInfo.from_metadata({**meta, **extra, "version": version})
    x, starts = _example(info)
    staged = out.with_name(f".{out.stem}-rebuilt.onnx")  # out may be src: replace it only once all is checked
    try:
        diffs = {"torch_vs_onnx": write_checked(net, new_info, (x, starts), staged)}
        new = GenreModel(staged, device="cpu")
        diffs["old_vs_new"] = float(np.abs(new.sequence_logits(x[0], starts) - old.sequence_logits(x[0], starts)).max())
        if not diffs["old_vs_new"] < PARITY_TOL:
            raise RuntimeError(f"the rebuilt graph disagrees with {src}: max abs diff {diffs['old_vs_new']:.3g}")
        os.replace(staged, out)
    finally:
        if staged.exists():
            staged.unlink()
    return diffs


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m train rebuild SRC.onnx --out NEW.onnx --version V``."""
    ap = argparse.ArgumentParser(prog="python -m train rebuild", description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="an exported musicnn sequence model")
    ap.add_argument("--out", type=Path, required=True, help="where to write the rebuilt model")
    ap.add_argument("--version", required=True, help="version of the rebuilt model")
    a = ap.parse_args(argv)
    diffs = rebuild(a.src, a.out, a.version)
    print(f"rebuilt {a.src} -> {a.out} ({a.version}): " + json.dumps(diffs))
    return 0
