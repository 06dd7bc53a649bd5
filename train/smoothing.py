"""Fit the smoothing of the timeline on validation (``python -m train smoothing``).

The runtime can smooth each song's per-second probabilities with a sticky hidden Markov
model (:func:`genre_infer.timeline.sticky_smooth`): two numbers, the probability per second
that the genre changes and a temperature that calibrates the smoothed probabilities again.
They are chosen here, on the validation clips only, and written into a model's metadata.

GTZAN's clips hold one genre each, and smoothing that only had to be right on them would
blur every real change of genre. So the validation timelines are of three kinds, each made
from every validation clip: the clip alone; the clip followed by another clip of another
genre (a change half-way); and the clip with the first 10 s of such a clip inserted in its
middle (a short section, like an intro). For each switch probability of a small grid the
temperature is fitted (negative log-likelihood of the clips' seconds) and the figures are
measured; the choice is the highest mean of the three kinds' seconds right among those whose
per-second calibration error on the clips stays within :data:`MAX_ECE`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from genre_infer import audio as gi_audio
from genre_infer import load_model
from genre_infer import timeline as tl
from genre_infer.model import TIMELINE_FORMAT, ModelInfo, TimelineSpec

from .constants import REPO_ROOT, SEED
from .data import assign_splits, discover
from .calibrate import ece
from .export import amend_metadata

__all__ = ["Case", "timeline_cases", "fit_temperature", "grid_rows", "choose", "smoothed_clips", "with_timeline", "table",
           "main"]

#: Switch probabilities tried (per second).
GRID = (0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01)
#: Largest per-second expected calibration error (validation clips) a choice may have.
MAX_ECE = 0.05
#: Length of the inserted section, in seconds.
INSERT_S = 10.0


@dataclass
class Case:
    """One validation timeline: its kind, its unsmoothed per-second probabilities and the truth."""

    kind: str  # "clip", "pair" or "insert"
    probs: np.ndarray  # (seconds, labels), calibrated but not smoothed
    truth: np.ndarray  # (seconds,) label index of every second


def _seconds_truth(n: int, spans: list[tuple[float, float, int]]) -> np.ndarray:
    """Label of each second (by its centre) from ``(start_s, end_s, label)`` spans."""
    centre = np.arange(n) + 0.5
    truth = np.full(n, spans[0][2])
    for a, b, label in spans:
        truth[(centre >= a) & (centre < b)] = label
    return truth


def timeline_cases(model: str | Path, root: str | Path, split: str = "valid", seed: int = SEED) -> list[Case]:
    """Clips, pairs and inserts of ``split`` (see the module docstring), read by ``model`` unsmoothed."""
    clf = load_model(model, device="cpu")
    spec, info = clf.model.features, clf.model.info
    labels = list(clf.labels)
    tracks, _ = discover(root)
    assign_splits(tracks, root)
    chosen = [t for t in tracks if t.split == split and t.genre in labels]
    if len({t.genre for t in chosen}) < 2:
        raise ValueError(f"{root}: the {split} split needs clips of at least two of the model's genres "
                         f"(found {len(chosen)} clips)")
    audio = {t.rel: gi_audio.load(t.path, spec.sr) for t in chosen}
    rng = np.random.default_rng(seed)

    def read(y: np.ndarray) -> np.ndarray:
        a = clf.analyse([y])
        steps, _ = tl.timeline_from_logits(a.logits, a.starts_s, spec.segment_s, len(y) / spec.sr, 1.0,
                                           info.temperature)
        return steps

    cases = []
    for t in chosen:
        y, g = audio[t.rel], labels.index(t.genre)
        others = [u for u in chosen if u.genre != t.genre]
        u = others[rng.integers(len(others))]
        z, h = audio[u.rel], labels.index(u.genre)
        la = len(y) / spec.sr
        p = read(y)
        cases.append(Case("clip", p, _seconds_truth(len(p), [(0.0, la, g)])))
        p = read(np.concatenate([y, z]))
        cases.append(Case("pair", p, _seconds_truth(len(p), [(0.0, la, g), (la, np.inf, h)])))
        half = len(y) // 2
        cut = z[: int(INSERT_S * spec.sr)]
        p = read(np.concatenate([y[:half], cut, y[half:]]))
        a0 = half / spec.sr
        cases.append(Case("insert", p, _seconds_truth(len(p), [(0.0, np.inf, g), (a0, a0 + len(cut) / spec.sr, h)])))
    return cases


def fit_temperature(smoothed: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """Temperature (on a log grid, 0.5 to 8) that minimises the seconds' negative log-likelihood."""
    def nll(temperature: float) -> float:
        return -float(np.mean(np.concatenate(
            [np.log(np.clip(tl.softmax(np.log(np.clip(q, 1e-12, None)), temperature)[np.arange(len(t)), t], 1e-12, None))
             for q, t in zip(smoothed, truths)])))

    return float(min(np.geomspace(0.5, 8.0, 81), key=nll))


def _row(cases: list[Case], switch_prob: float | None) -> dict[str, float]:
    """Figures of one setting: the temperature is fitted on the clips when smoothing."""
    raw = [c.probs.astype(np.float64) for c in cases]
    if switch_prob is None:
        temperature, smoothed = 1.0, raw
    else:
        post = [tl.sticky_smooth(p, switch_prob, 1.0).astype(np.float64) for p in raw]
        clips = [(q, c.truth) for q, c in zip(post, cases) if c.kind == "clip"]
        temperature = fit_temperature([q for q, _ in clips], [t for _, t in clips])
        # the figures of exactly what the runtime computes with that temperature
        smoothed = [tl.sticky_smooth(p, switch_prob, temperature).astype(np.float64) for p in raw]
    row: dict[str, float] = {"switch_prob": switch_prob or 0.0, "temperature": temperature}
    for kind in ("clip", "pair", "insert"):
        hits = [q.argmax(1) == c.truth for q, c in zip(smoothed, cases) if c.kind == kind]
        row[f"seconds_{kind}"] = float(np.mean(np.concatenate(hits)))
        if kind == "insert":  # the inserted section's own seconds
            row["seconds_inside_insert"] = float(np.mean(np.concatenate(
                [(q.argmax(1) == c.truth)[c.truth != c.truth[0]] for q, c in zip(smoothed, cases) if c.kind == kind])))
    row["seconds_mean"] = (row["seconds_clip"] + row["seconds_pair"] + row["seconds_insert"]) / 3
    clip = [(q, c.truth) for q, c in zip(smoothed, cases) if c.kind == "clip"]
    row["ece_seconds_clip"] = ece(np.concatenate([q for q, _ in clip]), np.concatenate([t for _, t in clip]))
    songs, song_labels = np.array([q.mean(0) for q, _ in clip]), np.array([t[0] for _, t in clip])
    row["track_accuracy"] = float((songs.argmax(1) == song_labels).mean())
    row["ece_songs"] = ece(songs, song_labels)
    return row


def grid_rows(cases: list[Case], grid: tuple[float, ...] = GRID) -> list[dict[str, float]]:
    """One row per setting: no smoothing first, then every switch probability of ``grid``."""
    return [_row(cases, None)] + [_row(cases, p) for p in grid]


def choose(rows: list[dict[str, float]], max_ece: float = MAX_ECE) -> dict[str, float]:
    """The smoothing row with the highest mean seconds right among those calibrated within ``max_ece``.

    When none is, the best-calibrated smoothing row, provided it gets more seconds right than no
    smoothing (its ``"rule"`` says so); else no row qualifies (``RuntimeError``)."""
    smoothed = [r for r in rows if r["switch_prob"] > 0]
    ok = [r for r in smoothed if r["ece_seconds_clip"] <= max_ece]
    if ok:
        return max(ok, key=lambda r: r["seconds_mean"])
    none = next((r for r in rows if r["switch_prob"] == 0), None)
    best = min(smoothed, key=lambda r: (r["ece_seconds_clip"], -r["seconds_mean"]))
    if none is not None and best["seconds_mean"] > none["seconds_mean"]:
        return {**best, "rule": f"no setting within ECE {max_ece}: the best-calibrated one"}
    raise RuntimeError(f"no switch probability keeps the per-second ECE within {max_ece}")


def smoothed_clips(cases: list[Case], switch_prob: float, temperature: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The clip timelines' seconds as the runtime gives them with this smoothing, and their truth."""
    clips = [c for c in cases if c.kind == "clip"]
    return ([tl.sticky_smooth(c.probs.astype(np.float64), switch_prob, temperature).astype(np.float64) for c in clips],
            [c.truth for c in clips])


def with_timeline(src: Path, out: Path, spec: TimelineSpec, version: str | None, note: dict[str, object]) -> ModelInfo:
    """Copy ``src`` to ``out`` with ``timeline`` smoothing set (and ``version``, a note)."""
    return amend_metadata(src, out, {"timeline": asdict(spec)}, ("timeline", dict(note)), version, TIMELINE_FORMAT)


def table(rows: list[dict[str, float]]) -> str:
    """The grid's rows as a Markdown table (the model card's form)."""
    out = ["| switch per second | temperature | seconds: clips | pairs | 10-s inserts | inside the insert | mean "
           "| per-second ECE (clips) | track accuracy | song ECE |", "|" + "---|" * 10]
    for r in rows:
        out.append(f"| {r['switch_prob'] or 'none'} | {r['temperature']:.2f} | {r['seconds_clip']:.1%} | "
                   f"{r['seconds_pair']:.1%} | {r['seconds_insert']:.1%} | {r['seconds_inside_insert']:.1%} | "
                   f"{r['seconds_mean']:.1%} | {r['ece_seconds_clip']:.3f} | {r['track_accuracy']:.1%} | "
                   f"{r['ece_songs']:.3f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m train smoothing VALID.onnx --out DIR [--apply SRC DST --version V]``."""
    ap = argparse.ArgumentParser(prog="python -m train smoothing", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="the validation model (trained without the validation clips)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the table (smoothing.md, smoothing.json)")
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gtzan"))
    ap.add_argument("--apply", nargs=2, action="append", default=[], metavar=("SRC", "DST"),
                    help="write a copy of model SRC with the chosen smoothing to DST (repeatable; DST may be SRC)")
    ap.add_argument("--version", default=None, help="version of the copies (default: each SRC's)")
    a = ap.parse_args(argv)
    for _, dst in a.apply:
        if not Path(dst).parent.is_dir():
            ap.error(f"--apply: no folder {Path(dst).parent} for {dst}")
    cases = timeline_cases(a.model, a.data, "valid")
    rows = grid_rows(cases)
    best = choose(rows)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "smoothing.json").write_text(json.dumps({"model": str(a.model), "rows": rows, "chosen": best,
                                                       "max_ece": MAX_ECE, "cases": len(cases)}, indent=2) + "\n")
    (a.out / "smoothing.md").write_text(table(rows) + "\n")
    print(table(rows))
    rule = str(best.pop("rule", f"highest mean seconds right with per-second ECE <= {MAX_ECE}"))
    spec = TimelineSpec(best["switch_prob"], round(best["temperature"], 3))
    print(f"chosen: switch_prob {spec.switch_prob}, temperature {spec.temperature}")
    note: dict[str, object] = {
        "fitted_on": f"valid clips, pairs and {INSERT_S:g}-s inserts read by {a.model.name}",
        "rule": rule,
        "valid": {k: round(v, 4) for k, v in best.items()}}
    for src, dst in a.apply:
        info = with_timeline(Path(src), Path(dst), spec, a.version, note)
        print(f"{dst}: {info.name} {info.version}, timeline {info.timeline}")
    return 0
