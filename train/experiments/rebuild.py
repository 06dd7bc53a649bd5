"""Rebuild an exported musicnn model's graph from its own weights (``python -m train rebuild``).

When the network's code changes in ways that keep its numbers (a faster but
equivalent graph), the shipped model need not be retrained: the genre head's
weights are read back from the ONNX initializers (the exporter keeps the
names of weights it does not fold), the frozen backbone comes from the
converted musicnn checkpoint, both go into today's
network of the requested layout (:data:`~train.layouts.NETWORKS`),
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

from genre_infer.inference import window_logits
from genre_infer.model import GenreModel, ModelInfo

from ..export import PARITY_TOL, write_checked
from ..backbones.musicnn import load_backbone
from ..heads import Head, HeadConfig
from ..layouts import NETWORKS, export_example

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


def rebuild(src: Path, out: Path, version: str, layout: str | None = None) -> dict[str, float]:
    """Re-export the musicnn model ``src`` (sequence or stream layout) as ``out`` with today's graph.

    ``layout`` (default: ``src``'s) may turn a sequence model into a stream one; the
    comparison with ``src`` then runs both through their runtimes' runners over
    several stretches.

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
    if info.network.layout not in ("sequence", "stream"):
        raise RuntimeError(f"{src}: not a sequence- or stream-layout model")
    layout = layout or info.network.layout
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
    net = NETWORKS[layout](backbone, head).eval()

    meta = info.to_metadata()
    extra = {k: v for k, v in info.extra.items()}
    live = net.frames.live
    extra["training"] = {**training, "rebuilt_from": {
        "version": info.version, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "live_filters": f"front end {live['front']} of 561, mid1 {live['mid1']} of 64 (the rest are dead: constant rows)"}}
    extra["parameters"] = int(sum(p.numel() for p in net.parameters()))
    network = {"layout": layout, "context_frames": info.network.context_frames}
    new_info = ModelInfo.from_metadata({**meta, **extra, "version": version, "network": network,
                                        "format_version": 3})  # to_metadata writes the layout's own format
    x, starts = _example(info)
    example = export_example(layout, x[0], starts)
    staged = out.with_name(f".{out.stem}-rebuilt.onnx")  # out may be src: replace it only once all is checked
    try:
        diffs = {"torch_vs_onnx": write_checked(net, new_info, example, staged)}
        new = GenreModel(staged, device="cpu")
        long = np.random.default_rng(2).standard_normal((3000, info.features.n_bands)).astype(np.float32)
        diffs["old_vs_new"] = float(np.abs(window_logits(new, long)[0] - window_logits(old, long)[0]).max())
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
    ap.add_argument("src", type=Path, help="an exported musicnn model (sequence or stream layout)")
    ap.add_argument("--out", type=Path, required=True, help="where to write the rebuilt model")
    ap.add_argument("--version", required=True, help="version of the rebuilt model")
    ap.add_argument("--layout", choices=["sequence", "stream"], default=None,
                    help="network layout of the rebuilt model (default: the source's)")
    a = ap.parse_args(argv)
    diffs = rebuild(a.src, a.out, a.version, a.layout)
    print(f"rebuilt {a.src} -> {a.out} ({a.version}): " + json.dumps(diffs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
