"""Write the figures of a transfer run as Markdown tables for the model card.

    python -m train.model_card runs/transfer-v1/result.json > exported/figures.md

Every number in the card's tables comes from a run's ``result.json``; the
narrative around them is written by hand in ``exported/MODEL_CARD.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def scores_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    out = ["| split | tracks | track accuracy | track macro-F1 | segment accuracy | segment macro-F1 | seconds right |",
           "|---|---|---|---|---|---|---|"]
    for name, s in rows:
        out.append(f"| {name} | {s['tracks']} | {_pct(s['track_accuracy'])} | {s['track_macro_f1']:.3f} | "
                   f"{_pct(s['segment_accuracy'])} | {s['segment_macro_f1']:.3f} | "
                   f"{_pct(s['second_accuracy']) if 'second_accuracy' in s else '–'} |")
    return "\n".join(out) + "\n"


def confusion_table(conf: dict[str, Any]) -> str:
    labels = conf["labels"]
    out = ["| true \\ predicted | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name, row in zip(labels, conf["matrix"]):
        out.append(f"| **{name}** | " + " | ".join(str(v) if v else "·" for v in row) + " |")
    return "\n".join(out) + "\n"


def per_genre_table(report: dict[str, Any]) -> str:
    out = ["| genre | precision | recall | F1 | tracks |", "|---|---|---|---|---|"]
    for g, v in report.items():
        if isinstance(v, dict) and "support" in v and g not in ("macro avg", "weighted avg", "micro avg"):
            out.append(f"| {g} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1-score']:.2f} | {int(v['support'])} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    r = json.loads(Path(args[0]).read_text())
    print("### Held-out figures\n")
    rows = [("valid (model before the retrain)", r["valid"]["scores"])]
    if r.get("test"):
        rows.append(("test (shipped model, read once)", r["test"]["scores"]))
    print(scores_table(rows))
    cv = r["cv"]
    print("### Cross-validation over the artist-disjoint partitions\n")
    print(scores_table([(f"held out: {k}", v) for k, v in cv["folds"].items()]))
    print(f"Mean track accuracy {_pct(cv['track_accuracy_mean'])} ± {_pct(cv['track_accuracy_std'])} "
          f"(weighted by clips: {_pct(cv['weighted_track_accuracy'])}); mean track macro-F1 "
          f"{cv['track_macro_f1_mean']:.3f} ± {cv['track_macro_f1_std']:.3f}.\n")
    c = r["calibration"]
    unit = "seconds" if "second" in c.get("fitted_on", "") else "windows"
    print(f"### Calibration (validation {unit})\n")
    track = f" Song verdicts: ECE {c['track_ece_after']:.3f}." if "track_ece_after" in c else ""
    print(f"Temperature {c['temperature']:.3f}; expected calibration error {c['ece_before']:.3f} before, "
          f"{c['ece_after']:.3f} after, over the {unit} of the validation clips.{track} Below the `uncertain` "
          f"threshold {c['uncertain_below']}: {_pct(c['valid_windows_below'])} of validation {unit} (accuracy "
          f"{_pct(c['valid_accuracy_below'])} below, {_pct(c['valid_accuracy_above'])} above).\n")
    for name in ("valid", "test"):
        rep = r.get(name)
        if not rep:
            continue
        print(f"### Per genre and confusion ({name}, tracks)\n")
        print(per_genre_table(rep["per_genre"]))
        print(confusion_table(rep["confusion"]))
        print("By source: " + "; ".join(f"{k}: {_pct(v['track_accuracy'])} of {v['tracks']}"
                                        for k, v in rep["by_source"].items()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
