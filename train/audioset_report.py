"""``python -m train audioset-report BUILD_DIR``: the AudioSet models' figures, measured through genre-infer itself.

For each model ``fast``/``default`` of a build (:mod:`train.audioset_build`):

- GTZAN valid, read by the validation model (fitted on train + extra);
- GTZAN 3-fold artist-grouped cross-validation over train/valid/test (each fold's head fitted
  on the other two and extra, the runtime's aggregation, no smoothing) — it reads the test
  clips, so it is run only with ``--read-test``;
- GTZAN test, read once by the shipped model (``--read-test``);
- emotify-dev (validation only; nothing was fitted on it) per genre, with its confusion matrix;
- per-second calibration error (ECE) on GTZAN valid and on emotify-dev's clips.

Writes ``report.json`` and ``report.md`` in the build folder and, with ``--store``, the
figures into each model's metadata (``metrics``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genre_infer import timeline as tl

from .audioset import audioset_labels, save_json
from .audioset_build import evaluate, fit_heads, step_logits
from .audioset_select import GENRES, GTZAN_GENRES, Item, load_items
from .export import ece, write_metadata

__all__ = ["main", "confusion", "second_ece"]


def confusion(rows: list[dict], truths: list[str], preds: list[str]) -> dict[str, dict[str, int]]:
    """``{truth: {prediction: count}}`` over the given rows' genres."""
    out: dict[str, dict[str, int]] = {}
    for t, p in zip(truths, preds):
        out.setdefault(t, {}).setdefault(p, 0)
        out[t][p] += 1
    return out


def second_ece(rows: list[dict]) -> float:
    """Per-second ECE of rows whose genre is one of the model's labels."""
    probs, labels = [], []
    for r in rows:
        if r["genre"] in GENRES:
            s = np.asarray(r["steps"])
            probs.append(s), labels.append(np.full(len(s), GENRES.index(r["genre"])))
    return ece(np.concatenate(probs), np.concatenate(labels))


def _summary(rows: list[dict]) -> dict:
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["genre"], []).append(r)
    out = {}
    for g, rs in sorted(by.items()):
        secs = [np.asarray(r["steps"]).argmax(1) for r in rs]
        gi = GENRES.index(g) if g in GENRES else -1
        out[g] = {"clips": len(rs), "verdict": float(np.mean([r["verdict"] == g for r in rs])),
                  "seconds": float(np.mean(np.concatenate([s == gi for s in secs]))),
                  "non_gtzan_verdict": float(np.mean([r["verdict"] not in GTZAN_GENRES for r in rs])),
                  "non_gtzan_seconds": float(np.mean(np.concatenate(
                      [[GENRES[i] not in GTZAN_GENRES for i in s] for s in secs])))}
    return out


def cv(items: list[Item], kind: str, classes: list[str], l2: float) -> dict:
    """3-fold artist-grouped CV over the train/valid/test partitions (extra always fits)."""
    folds = {s: [it for it in items if it.split == s] for s in ("train", "valid", "test")}
    extra = [it for it in items if it.split == "extra"]
    acc, rows = [], []
    for held, its in folds.items():
        head = fit_heads([it for k, f in folds.items() if k != held for it in f] + extra, classes, l2)[kind]
        right = []
        for it in its:
            z = step_logits(it, *head)
            v = GENRES[int(tl.verdict(tl.softmax(z, 1.0), 1.0, it.duration).argmax())]
            right.append(v == it.genre)
            rows.append({"rel": it.rel, "fold": held, "genre": it.genre, "verdict": v})
        acc.append(float(np.mean(right)))
    n = [len(f) for f in folds.values()]
    return {"folds": dict(zip(folds, acc)), "mean": float(np.mean(acc)), "std": float(np.std(acc)),
            "weighted": float(np.average(acc, weights=n)), "tracks": int(sum(n)), "rows": rows}


def _md_confusion(c: dict[str, dict[str, int]], cols: list[str]) -> str:
    lines = ["| true \\ predicted | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for t in sorted(c):
        lines.append(f"| {t} | " + " | ".join(str(c[t].get(p, 0) or "") for p in cols) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train audioset-report", description=__doc__.splitlines()[0])
    p.add_argument("build", type=Path, help="an audioset-build output folder")
    p.add_argument("--gtzan", type=Path, default=Path("../shared/data/gtzan"))
    p.add_argument("--emotify", type=Path, default=Path("../shared/data/emotify-dev"))
    p.add_argument("--read-test", action="store_true", help="also score GTZAN test and 3-fold CV (reads test)")
    p.add_argument("--store", action="store_true", help="write the figures into the models' metadata")
    p.add_argument("--kinds", nargs="+", default=["fast", "default"])
    p.add_argument("--store-only", action="store_true", help="store the figures of an existing report.json, measure nothing")
    a = p.parse_args(argv)
    if a.store_only:
        store_metrics(a.build, json.loads((a.build / "report.json").read_text()))
        return 0
    build = json.loads((a.build / "build.json").read_text())
    gtzan, emotify = a.gtzan.resolve(), a.emotify.resolve()
    classes = audioset_labels()
    tagger = {"mn04": a.build / "work" / "tagger.onnx", "msd": a.build / "experts" / "musicnn-msd-genres.onnx"}
    items = load_items(gtzan, emotify, tagger, Path(".cache/window-tags"))
    g = [it for it in items if it.dataset == "gtzan"]
    e = [it for it in items if it.dataset == "emotify"]
    report: dict = {}
    md = []
    for kind in a.kinds:
        r: dict = {}
        valid = evaluate(a.build / f"valid-{kind}.onnx", [it for it in g if it.split == "valid"], gtzan, emotify)
        r["gtzan_valid"] = _summary(valid["rows"])
        r["gtzan_valid_tracks"] = float(np.mean([x["verdict"] == x["genre"] for x in valid["rows"]]))
        r["gtzan_valid_seconds"] = float(np.mean(np.concatenate(
            [np.asarray(x["steps"]).argmax(1) == GENRES.index(x["genre"]) for x in valid["rows"]])))
        r["gtzan_valid_second_ece"] = second_ece(valid["rows"])
        em = evaluate(a.build / f"{kind}.onnx", e, gtzan, emotify)
        r["emotify"] = _summary(em["rows"])
        cr = [x for x in em["rows"] if x["genre"] in ("classical", "rock")]
        el = [x for x in em["rows"] if x["genre"] == "electronic"]
        r["emotify_cr_verdict"] = float(np.mean([x["verdict"] == x["genre"] for x in cr]))
        r["emotify_cr_seconds"] = float(np.mean(np.concatenate(
            [np.asarray(x["steps"]).argmax(1) == GENRES.index(x["genre"]) for x in cr])))
        r["emotify_electronic_non_gtzan"] = float(np.mean([x["verdict"] not in GTZAN_GENRES for x in el]))
        r["emotify_electronic_non_gtzan_seconds"] = r["emotify"]["electronic"]["non_gtzan_seconds"]
        r["emotify_second_ece"] = second_ece(em["rows"])
        r["emotify_confusion"] = confusion(em["rows"], [x["genre"] for x in em["rows"]], [x["verdict"] for x in em["rows"]])
        r["emotify_uncertain_seconds"] = float(np.mean(np.concatenate(
            [np.asarray(x["steps"]).max(1) < 0.35 for x in em["rows"]])))
        if a.read_test:
            r["gtzan_cv"] = cv(g, kind, classes, build["l2"])
            test = evaluate(a.build / f"{kind}.onnx", [it for it in g if it.split == "test"], gtzan, emotify)
            r["gtzan_test"] = _summary(test["rows"])
            r["gtzan_test_tracks"] = float(np.mean([x["verdict"] == x["genre"] for x in test["rows"]]))
            r["gtzan_test_seconds"] = float(np.mean(np.concatenate(
                [np.asarray(x["steps"]).argmax(1) == GENRES.index(x["genre"]) for x in test["rows"]])))
            r["gtzan_test_confusion"] = confusion(test["rows"], [x["genre"] for x in test["rows"]],
                                                  [x["verdict"] for x in test["rows"]])
        report[kind] = r
        md.append(f"## {kind}\n\n```\n{json.dumps({k: v for k, v in r.items() if 'confusion' not in k and k != 'gtzan_cv'}, indent=1)[:6000]}\n```\n")
        md.append("emotify-dev verdicts:\n\n" + _md_confusion(r["emotify_confusion"], GENRES) + "\n")
        if a.read_test:
            md.append(f"GTZAN 3-fold CV: {json.dumps({k: v for k, v in r['gtzan_cv'].items() if k != 'rows'})}\n")
            md.append("GTZAN test verdicts:\n\n" + _md_confusion(r["gtzan_test_confusion"], GENRES) + "\n")
    save_json(a.build / "report.json", report)
    (a.build / "report.md").write_text("\n".join(md))
    print("\n".join(md))
    if a.store:
        store_metrics(a.build, report)
    return 0


def metrics_of(r: dict) -> dict:
    """The metadata ``metrics`` of one model's report: the keys the musicnn models use
    (``valid``, ``test``, ``cv``, ``calibration``) plus ``emotify_dev``."""
    m: dict = {
        "valid": {"tracks": sum(d["clips"] for d in r["gtzan_valid"].values()), "track_accuracy": r["gtzan_valid_tracks"],
                  "second_accuracy": r["gtzan_valid_seconds"], "per_genre": r["gtzan_valid"]},
        "valid_model": "fitted on train+extra (before the refit on train+valid+extra)",
        "emotify_dev": {k: r[k] for k in ("emotify_cr_verdict", "emotify_cr_seconds", "emotify_electronic_non_gtzan",
                                          "emotify_electronic_non_gtzan_seconds", "emotify_uncertain_seconds")}
        | {"per_genre": r["emotify"], "confusion": r["emotify_confusion"]},
        "calibration": {"valid_second_ece": r["gtzan_valid_second_ece"], "emotify_second_ece": r["emotify_second_ece"]},
    }
    if "gtzan_test_tracks" in r:
        m["test"] = {"tracks": sum(d["clips"] for d in r["gtzan_test"].values()), "track_accuracy": r["gtzan_test_tracks"],
                     "second_accuracy": r["gtzan_test_seconds"], "confusion": r["gtzan_test_confusion"]}
        m["cv"] = {k: v for k, v in r["gtzan_cv"].items() if k != "rows"}
    return m


def store_metrics(build: Path, report: dict) -> None:
    """Write each model's figures into its metadata (``metrics``)."""
    from dataclasses import replace

    from genre_infer.model import GenreModel

    for kind, r in report.items():
        f = build / f"{kind}.onnx"
        info = GenreModel(f, device="cpu").info
        write_metadata(f, replace(info, extra={**info.extra, "metrics": metrics_of(r)}))


if __name__ == "__main__":
    raise SystemExit(main())
