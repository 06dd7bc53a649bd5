"""How a model's figures hold up when the audio is not a clean GTZAN clip (``python -m train robustness``).

Real recordings differ from the 30-s GTZAN excerpts in level, bandwidth, codec,
noise, EQ and speed. This scores an exported model on one split under each of a
fixed set of such changes (:data:`CONDITIONS`, built from :mod:`train.audio_augment`,
seeded per clip) through the package's own API, exactly as ``train evaluate``
scores the clean split, and reports track accuracy, macro-F1, seconds on the right
genre and how many verdicts stay what they were on the clean clip. Use the
validation model (``transfer --export-valid``) on ``valid``: the shipped model has
been trained on the validation clips.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from . import audio_augment as aug
from . import metrics
from .constants import REPO_ROOT, SEED
from .evaluate import _onnx_predictions

__all__ = ["CONDITIONS", "robustness", "main"]

Transform = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]

#: The changes, each applied to every clip of the split (mono, at the model's rate).
CONDITIONS: dict[str, Transform] = {
    "clean": lambda y, sr, rng: y,
    "quieter by 12 dB": lambda y, sr, rng: aug.gain(y, -12.0),
    "quieter by 24 dB": lambda y, sr, rng: aug.gain(y, -24.0),
    "loud, clipped (+12 dB)": lambda y, sr, rng: aug.gain(y, 12.0),
    "low-pass 4 kHz (phone, AM radio)": lambda y, sr, rng: aug.lowpass(y, sr, 4000.0),
    "mp3 round trip, VBR quality 0.9 (of 0 best to 1 worst)": lambda y, sr, rng: aug.mp3_roundtrip(y, sr, 0.9),
    "pink noise at 15 dB SNR": lambda y, sr, rng: aug.add_noise(y, rng, 15.0, pink=True),
    "random EQ (tilt and bumps, up to 6 dB)": lambda y, sr, rng: aug.tilt_eq(y, sr, rng, 6.0),
    "6% slower (tempo and pitch)": lambda y, sr, rng: aug.speed(y, sr, 0.94),
    "6% faster (tempo and pitch)": lambda y, sr, rng: aug.speed(y, sr, 1.06),
}


def robustness(model: Path, root: str, split: str = "valid", seed: int = SEED,
               conditions: dict[str, Transform] | None = None) -> list[dict[str, object]]:
    """One row of figures per condition: scores, seconds right and verdicts kept (vs clean)."""
    rows, clean_verdicts = [], None
    for name, change in (conditions or CONDITIONS).items():
        def transform(y: np.ndarray, sr: int, i: int, change: Transform = change) -> np.ndarray:
            return change(y, sr, np.random.default_rng([seed, i]))

        labels, tracks, preds, info = _onnx_predictions(model, root, split, transform)
        verdicts = [int(p.track_probs.argmax()) for p in preds]
        clean_verdicts = clean_verdicts or verdicts
        row: dict[str, object] = {"condition": name, **metrics.scores(preds, len(labels)),
                                  "second_accuracy": info["second_accuracy"],
                                  "verdicts_kept": float(np.mean([a == b for a, b in zip(verdicts, clean_verdicts)]))}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(rows: list[dict[str, object]]) -> str:
    """The rows as the model card's Markdown table."""
    out = ["| condition | track accuracy | track macro-F1 | seconds right | verdicts as on the clean clip |",
           "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['condition']} | {100 * float(r['track_accuracy']):.1f}% | {float(r['track_macro_f1']):.3f} | "
                   f"{100 * float(r['second_accuracy']):.1f}% | {100 * float(r['verdicts_kept']):.0f}% |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m train robustness MODEL.onnx [--split valid] [--out DIR]``."""
    ap = argparse.ArgumentParser(prog="python -m train robustness", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="an exported model (the validation model for --split valid)")
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gtzan"))
    ap.add_argument("--split", default="valid", choices=["train", "valid", "test", "extra"])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / (time.strftime("%Y%m%d-%H%M%S") + "-robustness"))
    a = ap.parse_args(argv)
    rows = robustness(a.model, a.data, a.split)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "result.json").write_text(json.dumps({"model": str(a.model), "split": a.split, "rows": rows}, indent=2) + "\n")
    (a.out / "table.md").write_text(table(rows))
    print(table(rows))
    return 0
