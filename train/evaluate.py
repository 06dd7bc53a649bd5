"""Score a run folder (torch) or an exported ``.onnx`` (through genre_infer) on one split.

Writes ``metrics.json``, ``confusion.png`` and ``report.md`` (segment and track
accuracy and macro-F1, scikit-learn's classification report at track level,
the track confusion matrix as text, per-source track accuracy).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from . import data, metrics
from .constants import CACHE_DIR

__all__ = ["evaluate", "confusion_text", "confusion_png", "per_source", "head_report"]


def confusion_text(cm: np.ndarray, labels: list[str]) -> str:
    """A fixed-width confusion matrix (rows: truth, columns: prediction)."""
    w = max(6, max(len(x) for x in labels) + 1)
    head = " " * w + "".join(f"{x[:w - 1]:>{w}}" for x in labels)
    rows = [f"{lab:<{w}}" + "".join(f"{v:>{w}d}" for v in row) for lab, row in zip(labels, cm)]
    return "\n".join([head, *rows])


def confusion_png(cm: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    """Save the confusion matrix as a PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.6 * len(labels)))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def per_source(tracks: list[data.Track], correct: list[bool]) -> dict[str, dict[str, float | int]]:
    """Track accuracy per provenance (``sources.tsv``)."""
    out: dict[str, dict[str, float | int]] = {}
    for t, ok in zip(tracks, correct):
        d = out.setdefault(t.source or "unknown", {"tracks": 0, "correct": 0})
        d["tracks"] += 1
        d["correct"] += int(ok)
    for d in out.values():
        d["accuracy"] = d["correct"] / d["tracks"]
    return out


def _torch_predictions(run: Path, root: str, split: str, cache_dir: str | os.PathLike[str]):  # noqa: ANN202
    import torch

    from .fit import evaluate_split, load_run, prepare

    net, cfg, spec, labels, _ = load_run(run)
    prep = prepare(root, cfg, cache_dir, splits=(split,))
    if (prep.spec.mean, prep.spec.std) != (spec.mean, spec.std):
        raise RuntimeError("training statistics differ from the run's (data changed?)")
    clips = prep.clips[split]
    _, preds = evaluate_split(net, clips, spec, len(labels), torch.device("cpu"))
    return labels, [c.track for c in clips], preds, {"kind": "torch run", "run": run.name}


def _onnx_predictions(path: Path, root: str, split: str,  # noqa: ANN202
                      transform: Callable[[np.ndarray, int, int], np.ndarray] | None = None):
    """Predictions of an exported model through genre_infer; ``transform(y, sr, i)`` (optional)
    alters the ``i``-th clip's signal first (:mod:`train.robustness`)."""
    import genre_infer
    from genre_infer import audio as gi_audio

    clf = genre_infer.load_model(path, device="cpu")
    spec, labels = clf.model.features, list(clf.labels)
    tracks, data_labels = data.discover(root)
    data.assign_splits(tracks, root)
    index = {g: i for i, g in enumerate(labels)}
    chosen = [t for t in tracks if t.split == split and t.genre in index]
    preds, second_hits = [], []
    for i, t in enumerate(chosen):
        y = gi_audio.load(t.path, spec.sr)
        if transform is not None:
            y = transform(y, spec.sr, i)
        a = clf.analyse([y])
        steps, track = metrics.track_timeline(a.logits, a.starts_s, spec, len(y), clf.model.info.temperature,
                                              clf.model.info.smoothing_args)
        preds.append(metrics.TrackPrediction(index[t.genre], a.logits, a.probs, track))
        second_hits.append(steps.argmax(1) == index[t.genre])
    info = {"kind": "onnx via genre_infer", "model": f"{clf.name} {clf.version}", "path": str(path)}
    if second_hits:  # the timeline's seconds, as the model card reports them
        hits = np.concatenate(second_hits)
        info["second_accuracy"], info["seconds"] = float(hits.mean()), int(len(hits))
    return labels, chosen, preds, info


def evaluate(
    target: str | os.PathLike[str], root: str, split: str = "valid", out: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] = CACHE_DIR,
) -> Path:
    """Evaluate ``target`` (run folder or ``.onnx``) on ``split`` of ``root``; return the output folder."""
    target = Path(target)
    if target.suffix == ".onnx":
        labels, tracks, preds, info = _onnx_predictions(target, root, split)
        out_dir = Path(out) if out else target.with_name(f"{target.stem}-eval-{split}")
    else:
        labels, tracks, preds, info = _torch_predictions(target, root, split, cache_dir)
        out_dir = Path(out) if out else target / f"eval-{split}"
    if not preds:
        raise ValueError(f"no tracks in split {split!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    sc = metrics.scores(preds, len(labels))
    if "second_accuracy" in info:
        sc = {**sc, "second_accuracy": info.pop("second_accuracy"), "seconds": info.pop("seconds")}
    y_true = [p.label for p in preds]
    y_pred = [int(p.track_probs.argmax()) for p in preds]
    idx = list(range(len(labels)))
    cm = confusion_matrix(y_true, y_pred, labels=idx)
    report = classification_report(y_true, y_pred, labels=idx, target_names=labels, zero_division=0)
    sources = per_source(tracks, [a == b for a, b in zip(y_true, y_pred)])
    doc: dict[str, Any] = {
        "split": split, "target": info, "scores": sc, "per_source": sources,
        "confusion": cm.tolist(), "labels": labels,
        "tracks": [{"path": t.rel, "true": labels[a], "pred": labels[b]} for t, a, b in zip(tracks, y_true, y_pred)],
    }
    (out_dir / "metrics.json").write_text(json.dumps(doc, indent=2))
    confusion_png(cm, labels, out_dir / "confusion.png", f"{split}: track-level confusion")
    lines = [
        f"# Evaluation on `{split}` ({info})", "",
        "| level | accuracy | macro-F1 | n |", "|---|---|---|---|",
        f"| segment | {sc['segment_accuracy']:.3f} | {sc['segment_macro_f1']:.3f} | {sc['segments']} |",
        f"| track | {sc['track_accuracy']:.3f} | {sc['track_macro_f1']:.3f} | {sc['tracks']} |", "",
        "## Per-genre (track level)", "", "```", report, "```", "",
        "## Confusion matrix (rows: true, columns: predicted)", "", "```", confusion_text(cm, labels), "```", "",
        "## Per source (track accuracy)", "", "| source | tracks | correct | accuracy |", "|---|---|---|---|",
        *[f"| {k} | {v['tracks']} | {v['correct']} | {v['accuracy']:.3f} |" for k, v in sorted(sources.items())],
    ]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[2:6]))
    return out_dir


def head_report(head: Any, items: list[Any], labels: list[str], temperature: float) -> dict[str, Any]:
    """A genre head's scores on embedded clips (:mod:`train.embeddings`; clean versions only): track,
    segment and second scores, per-genre report, confusion matrix, per-source track accuracy and
    every track's verdict."""
    from .backbones.musicnn import MUSICNN_SPEC
    from .heads import predict

    clean = [it for it in items if it.version == 0]
    preds = predict(head, clean, temperature)
    truth = [p.label for p in preds]
    guess = [int(p.track_probs.argmax()) for p in preds]
    present = sorted(set(truth) | set(guess))
    by_source: dict[str, list[bool]] = {}
    for it, p in zip(clean, preds):
        src = it.track.source
        src = "16 kHz source" if "16 kHz" in src else "15 s excerpt" if "15 s" in src \
            else "22050 Hz source" if src else "unknown"
        by_source.setdefault(src, []).append(int(p.track_probs.argmax()) == p.label)
    second_hits = []
    for it, p in zip(clean, preds):
        steps, _ = metrics.track_timeline(p.window_logits, it.starts_s, MUSICNN_SPEC, it.n_samples, temperature)
        second_hits.append(steps.argmax(1) == it.label)
    hits = np.concatenate(second_hits)
    return {
        "scores": {**metrics.scores(preds, len(labels)), "second_accuracy": float(hits.mean()),
                   "seconds": int(len(hits))},
        "per_genre": classification_report(truth, guess, labels=present, target_names=[labels[i] for i in present],
                                           output_dict=True, zero_division=0),
        "confusion": {"labels": [labels[i] for i in present],
                      "matrix": confusion_matrix(truth, guess, labels=present).tolist()},
        "by_source": {k: {"tracks": len(v), "track_accuracy": float(np.mean(v))} for k, v in by_source.items()},
        "tracks": {it.track.rel: labels[int(p.track_probs.argmax())] for it, p in zip(clean, preds)},
    }
