"""Give an exported model loudness normalisation (``python -m train level``).

Writes a copy of a model whose features set ``level_db``: the runtime then scales
every signal to that gated RMS level (:mod:`genre_infer.loudness`) before the
features. The level is the median over the *training* clips (train and extra
splits), measured at the model's sample rate as the runtime measures it, so a clip
of typical level is barely changed. The network is untouched; what the change costs
or gains is measured, not assumed: apply it to the validation model
(``transfer --export-valid``) and score it with ``train evaluate`` and
``train robustness``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genre_infer import audio as gi_audio
from genre_infer.loudness import gated_level_db
from genre_infer.model import LEVEL_FORMAT, GenreModel, ModelInfo

from .constants import REPO_ROOT
from .data import assign_splits, discover
from .export import amend_metadata

__all__ = ["training_level_db", "stored_level_db", "with_level", "main"]


def training_level_db(root: str | Path, sr: int, splits: tuple[str, ...] = ("train", "extra")) -> tuple[float, int]:
    """Median gated level (dBFS, at ``sr``) of the clips of ``splits``, and how many clips."""
    tracks, _ = discover(root)
    assign_splits(tracks, root)
    levels = [gated_level_db(gi_audio.load(t.path, sr), sr) for t in tracks if t.split in splits]
    levels = [x for x in levels if x is not None]
    if not levels:
        raise RuntimeError(f"{root}: no training clips to measure")
    return float(np.median(levels)), len(levels)


def stored_level_db(root: str | Path, sr: int) -> float:
    """The training clips' median level as a model's metadata stores it (to 0.01 dB): what a model
    trained or normalised on the same clips is scaled to at run time."""
    return round(training_level_db(root, sr)[0], 2)


def with_level(src: Path, out: Path, level_db: float, version: str | None, note: str) -> ModelInfo:
    """Copy ``src`` to ``out`` with ``features.level_db`` set (and ``version``, a note)."""
    features = GenreModel(src, device="cpu").info.features.to_dict()
    level_db = round(level_db, 2)  # as stored_level_db
    return amend_metadata(src, out, {"features": {**features, "level_db": level_db}},
                          ("loudness", {"level_db": level_db, "note": note}), version, LEVEL_FORMAT)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m train level SRC.onnx --out DST.onnx [--version V]``."""
    ap = argparse.ArgumentParser(prog="python -m train level", description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="an exported model")
    ap.add_argument("--out", type=Path, required=True, help="where to write the copy (may be SRC)")
    ap.add_argument("--version", default=None, help="version of the copy (default: SRC's)")
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gtzan"))
    ap.add_argument("--level-db", type=float, default=None, help="use this level instead of measuring the data")
    a = ap.parse_args(argv)
    sr = GenreModel(a.src, device="cpu").features.sr
    if a.level_db is None:
        level, n = training_level_db(a.data, sr)
        note = f"median gated level of {n} training clips (train + extra) at {sr} Hz"
    else:
        level, note = a.level_db, "given on the command line"
    info = with_level(a.src, a.out, level, a.version, note)
    print(f"{a.out}: {info.name} {info.version}, features.level_db = {info.features.level_db} ({note})")
    return 0
