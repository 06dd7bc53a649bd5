"""Screen the musicnn wheel's other pretrained networks as sources of genre features.

``python -m train backbones --wheel musicnn-0.1.0-py3-none-any.whl [--out DIR]``

The shipped model builds on ``MSD_musicnn``. The same wheel holds ``MTT_musicnn`` (the same
architecture trained on MagnaTagATune's tags) and ``MSD_vgg`` (:mod:`train.experiments.vgg`, a VGG-style
stack trained on the Million Song Dataset's tags). Each is tried here alone and joined to
``MSD_musicnn``, under one protocol cheap enough to compare them fairly: the clean clips
only (no augmentation), every clip scaled to the training clips' median level, one
feature vector per runtime window (musicnn's 200-unit penultimate layer; VGG's 256 pooled
values), a class-balanced logistic regression on standardised features trained on train +
extra and scored on valid (windows' logits averaged per clip). The regularisation is
chosen on valid for each row alike. Test is not read. These figures sit below the
shipped recipe's (which adds augmented copies and trains the pretrained head); only
the differences between rows mean something.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from genre_infer import audio as gi_audio
from genre_infer import features as gi_features
from genre_infer.loudness import to_level

from ..constants import REPO_ROOT, SEED
from ..data import assign_splits, discover
from ..metrics import track_windows

__all__ = ["embed_clean", "probe", "table", "main"]

#: The rows of the screen: one backbone's features, or several joined.
ROWS: tuple[tuple[str, ...], ...] = (("MSD_musicnn",), ("MTT_musicnn",), ("MSD_vgg",),
                                     ("MSD_musicnn", "MTT_musicnn"), ("MSD_musicnn", "MSD_vgg"))
C_GRID = (1e-3, 1e-2, 1e-1)

Extractor = Callable[[torch.Tensor], torch.Tensor]


def _extractors(wheel: Path) -> dict[str, Extractor]:
    """Window batch ``(W, 187, 96)`` → features ``(W, D)`` for each backbone of the wheel."""
    from ..backbones.musicnn import Musicnn
    from ..backbones.tf_checkpoint import _from_wheel, load_musicnn
    from .vgg import load_vgg

    out: dict[str, Extractor] = {}
    for name in ("MSD_musicnn", "MTT_musicnn"):
        net = load_musicnn(_from_wheel(wheel, name))

        def musicnn_features(w: torch.Tensor, net: Musicnn = net) -> torch.Tensor:
            return net.embed(Musicnn.pool(net.frame_features(w)))

        out[name] = musicnn_features
    vgg = load_vgg(_from_wheel(wheel, "MSD_vgg"))
    out["MSD_vgg"] = lambda w: vgg(w)[0]
    return out


@torch.no_grad()
def embed_clean(root: str, wheel: Path, log: Any = print) -> dict[str, dict[str, Any]]:
    """The clips of train, extra and valid (test is not read), each scaled to the training clips'
    median level as the runtime does.

    Returns
    -------
    dict
        Clip name → ``{"split", "label" (genre index), "features" (backbone → (windows, D))}``.
    """
    from ..level import stored_level_db
    from ..backbones.musicnn import MUSICNN_SPEC as spec

    tracks, labels = discover(root)
    assign_splits(tracks, root, SEED)
    level_db = stored_level_db(root, spec.sr)  # the shipped model's level
    extract = _extractors(wheel)
    torch.set_num_threads(os.cpu_count() or 1)
    clips: dict[str, dict[str, Any]] = {}
    t0 = time.time()
    for n, t in enumerate(t for t in tracks if t.split in ("train", "extra", "valid")):
        y = to_level(gi_audio.load(t.path, spec.sr), spec.sr, level_db)
        w, _ = track_windows(gi_features.compute(gi_features.fill_window(y, spec), spec), spec)
        x = torch.from_numpy(w)
        feats = {name: torch.cat([f(x[i : i + 32]) for i in range(0, len(x), 32)]).numpy() for name, f in extract.items()}
        clips[t.path.stem] = {"split": t.split, "label": labels.index(t.genre), "features": feats}
        if (n + 1) % 20 == 0:
            log(f"embedded {n + 1} clips in {time.time() - t0:.0f} s")
    return clips


def _stack(clips: dict[str, dict[str, Any]], splits: tuple[str, ...],
           names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The windows of ``splits``' clips with ``names``' features joined: ``(x, labels, clip names)``."""
    xs, ys, groups = [], [], []
    for clip, c in sorted(clips.items()):
        if c["split"] in splits:
            x = np.concatenate([c["features"][n] for n in names], axis=1)
            xs.append(x)
            ys += [c["label"]] * len(x)
            groups += [clip] * len(x)
    return np.concatenate(xs), np.array(ys), np.array(groups)


def probe(clips: dict[str, dict[str, Any]], names: tuple[str, ...], c: float) -> dict[str, float]:
    """Logistic probe on ``names``' joined features: train + extra → valid figures."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    x_tr, y_tr, _ = _stack(clips, ("train", "extra"), names)
    x_va, y_va, g_va = _stack(clips, ("valid",), names)
    scaler = StandardScaler().fit(x_tr)
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(scaler.transform(x_tr), y_tr)
    logits = model.decision_function(scaler.transform(x_va))
    seg = logits.argmax(1)
    clip_names = sorted(set(g_va))
    pred = np.array([logits[g_va == g].mean(0).argmax() for g in clip_names])
    true = np.array([y_va[g_va == g][0] for g in clip_names])
    return {"segment_accuracy": float((seg == y_va).mean()), "segment_macro_f1": float(f1_score(y_va, seg, average="macro")),
            "track_accuracy": float((pred == true).mean()), "track_macro_f1": float(f1_score(true, pred, average="macro")),
            "dims": int(x_tr.shape[1])}


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The card's Markdown table: each row of :data:`ROWS` at its best regularisation on valid
    (track macro-F1, then segment macro-F1)."""
    lines = ["| features (dims) | C | track accuracy | track macro-F1 | segment accuracy | segment macro-F1 |",
             "|---|---|---|---|---|---|"]
    for names in ROWS:
        tried = [r for r in rows if r["features"] == " + ".join(names)]
        if not tried:
            continue
        r = max(tried, key=lambda r: (r["track_macro_f1"], r["segment_macro_f1"]))
        lines.append(f"| {r['features']} ({r['dims']}) | {r['C']:g} | {100 * r['track_accuracy']:.1f}% | "
                     f"{r['track_macro_f1']:.3f} | {100 * r['segment_accuracy']:.1f}% | {r['segment_macro_f1']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module's docstring)."""
    ap = argparse.ArgumentParser(prog="python -m train backbones", description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, required=True, help="musicnn-0.1.0-py3-none-any.whl")
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gtzan"))
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "backbones")
    a = ap.parse_args(argv)
    clips = embed_clean(a.data, a.wheel, log=lambda m: print(m, flush=True))
    rows = []
    for names in ROWS:
        for c in C_GRID:
            rows.append({"features": " + ".join(names), "C": c, **probe(clips, names, c)})
            print(json.dumps(rows[-1]), flush=True)
    lines = table(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "result.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    (a.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
