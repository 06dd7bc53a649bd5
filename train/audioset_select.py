"""``python -m train audioset-select``: genre heads over mn04's AudioSet logits, compared by a fixed rule.

Window logits come from the runtime itself (:func:`train.audioset.window_tags`, through a
tagger model exported by ``python -m train audioset-tagger``), so every figure here is what
the shipped model would give. Candidates (:func:`candidates`) are scored on

- GTZAN: 2-fold artist-grouped cross-validation over the train and valid partitions
  (a head is fitted on the other partition plus ``extra``; test is not read);
- emotify-dev (validation only, nothing is fitted on it): song verdicts and seconds of its
  classical and rock clips, and how many electronic clips get no GTZAN genre.

The rule (``rule.md`` in the run folder, written before the first run) picks the winner.
"""

from __future__ import annotations

import argparse
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from genre_infer import timeline as tl

from . import data
from .audioset import audioset_labels, save_json, window_tags
from .audioset_heads import fit_scale_bias, fit_stacked, fit_weighted, window_weights, zero_shot

__all__ = ["Item", "load_items", "score", "score_candidate", "two_features", "partitions", "write_results",
           "require_rule", "run", "main", "CV_FOLDS", "GENRES", "ELECTRONIC"]

GTZAN_GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
ELECTRONIC = "electronic"
GENRES = GTZAN_GENRES + [ELECTRONIC]
#: The 2-fold CV's folds: GTZAN's train and valid partitions (test is never read here).
CV_FOLDS = ("train", "valid")


@dataclass
class Item:
    """One clip's window logits from each expert."""

    rel: str
    dataset: str          # "gtzan" or "emotify"
    genre: str            # GTZAN genre, or "electronic" for emotify's unmapped electronic clips
    split: str            # GTZAN split; "" for emotify
    narrow: bool          # GTZAN clip sourced at 16 kHz (nothing above 8 kHz)
    artist: str
    duration: float
    tags: dict[str, tuple[np.ndarray, np.ndarray, float]]  # expert -> (window logits, starts, window seconds)


def load_items(gtzan: Path, emotify: Path | None, taggers: dict[str, Path], cache: Path) -> list[Item]:
    """Every used GTZAN clip and every emotify-dev clip with each expert's window logits."""
    tracks, _ = data.discover(gtzan)
    data.assign_splits(tracks, gtzan)
    tracks = [t for t in tracks if t.split]
    rows = list(csv.DictReader(open(emotify / "labels.csv", newline=""))) if emotify is not None else []
    items = [Item(t.rel, "gtzan", t.genre, t.split, "16 kHz" in t.source, "", 0.0, {}) for t in tracks]
    items += [Item(r["path"], "emotify", r["genre"] if r["genre"] != "unmapped" else ELECTRONIC, "", False,
                   r["artist"], 0.0, {}) for r in rows]
    from genre_infer.model import GenreModel

    for name, model in taggers.items():
        seg = GenreModel(model, device="cpu").features.segment_s
        g = window_tags(model, [t.path for t in tracks], cache, gtzan)
        e = window_tags(model, [emotify / r["path"] for r in rows], cache, emotify) if emotify is not None else []
        for it, (logits, starts, dur) in zip(items, g + e):
            it.tags[name] = (logits, starts, seg)
            it.duration = dur
    return items


def steps_of(logits: np.ndarray, starts: np.ndarray, seg: float, duration: float) -> np.ndarray:
    """Per-second logits (the runtime's overlap-weighted mean of window logits)."""
    return tl.step_average(logits, starts, seg, duration, 1.0)


def score(items: list[Item], step_logits: list[np.ndarray], labels: list[str],
          temperature: float = 1.0) -> dict[str, float]:
    """The rule's figures for per-second logits of ``items`` (no smoothing)."""
    out: dict[str, list[float]] = {}
    verdicts = []
    for it, z in zip(items, step_logits):
        steps = tl.softmax(z, temperature)
        song = tl.verdict(steps, 1.0, it.duration)
        v = labels[int(np.argmax(song))]
        sec = [labels[i] for i in steps.argmax(1)]
        verdicts.append(v)
        key = f"{it.dataset}:{it.genre}"
        out.setdefault(key + ":verdict", []).append(v == it.genre)
        out.setdefault(key + ":seconds", []).append(float(np.mean([s == it.genre for s in sec])))
        out.setdefault(key + ":non_gtzan", []).append(v not in GTZAN_GENRES)
        out.setdefault(key + ":non_gtzan_seconds", []).append(float(np.mean([s not in GTZAN_GENRES for s in sec])))
    res = {k: float(np.mean(v)) for k, v in out.items()}
    g = [it for it in items if it.dataset == "gtzan"]
    if g:
        y = [it.genre for it in g]
        p = [v for it, v in zip(items, verdicts) if it.dataset == "gtzan"]
        res["gtzan_track_accuracy"] = float(np.mean([a == b for a, b in zip(y, p)]))
        res["gtzan_track_macro_f1"] = _macro_f1(y, p, GTZAN_GENRES)
        res["gtzan_seconds"] = float(np.mean([s for it, s in zip(items, _seconds(items, step_logits)) if it.dataset == "gtzan"]))
    cr = [(it, v, s) for it, v, s in zip(items, verdicts, _seconds(items, step_logits))
          if it.dataset == "emotify" and it.genre in ("classical", "rock")]
    if cr:
        res["emotify_cr_verdict"] = float(np.mean([v == it.genre for it, v, _ in cr]))
        res["emotify_cr_seconds"] = float(np.mean([s for _, _, s in cr]))
    el = [v for it, v in zip(items, verdicts) if it.dataset == "emotify" and it.genre == ELECTRONIC]
    if el:
        res["emotify_electronic_non_gtzan"] = float(np.mean([v not in GTZAN_GENRES for v in el]))
    res["verdicts"] = verdicts  # type: ignore[assignment]
    return res


def _seconds(items: list[Item], step_logits: list[np.ndarray]) -> list[float]:
    return [float(np.mean(z.argmax(1) == (GENRES.index(it.genre) if it.genre in GENRES else -1)))
            for it, z in zip(items, step_logits)]


def _macro_f1(y: list[str], p: list[str], labels: list[str]) -> float:
    f1 = []
    for g in labels:
        tp = sum(a == g and b == g for a, b in zip(y, p))
        fp = sum(a != g and b == g for a, b in zip(y, p))
        fn = sum(a == g and b != g for a, b in zip(y, p))
        f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1))


# --- candidates: each maps (fit items) -> a function item -> per-second logits over GENRES ---------------------

Head = Callable[[Item], np.ndarray]


def _affine(expert: str, w: np.ndarray, b: np.ndarray) -> Head:
    def head(it: Item) -> np.ndarray:
        logits, starts, seg = it.tags[expert]
        return steps_of(logits @ w.T + b, starts, seg, it.duration)
    return head


#: musicnn MSD tags read as genres (the genres MSD has no tag for take the mean of the others).
MSD_GENRE_TAGS = {
    "rock": ["rock", "alternative rock", "indie rock", "classic rock", "hard rock", "Progressive rock", "punk"],
    "pop": ["pop", "indie pop"], "metal": ["metal", "heavy metal"], "jazz": ["jazz"], "blues": ["blues"],
    "country": ["country"], "hiphop": ["Hip-Hop"],
    "electronic": ["electronic", "electronica", "electro", "House", "ambient", "chillout"],
}


def msd_genre_steps(it: Item, expert: str = "msd") -> np.ndarray:
    """Per-second MSD genre logits: the highest of each genre's tags."""
    from .backbones.musicnn import MSD_TAGS

    logits, starts, seg = it.tags[expert]
    if logits.shape[1] == len(GENRES):  # the expert model itself (train.audioset_build.MsdGenres)
        return steps_of(logits, starts, seg, it.duration)
    out = np.zeros((len(logits), len(GENRES)), np.float32)
    covered = np.array([g in MSD_GENRE_TAGS for g in GENRES])
    for k, g in enumerate(GENRES):
        if g in MSD_GENRE_TAGS:
            out[:, k] = logits[:, [MSD_TAGS.index(t) for t in MSD_GENRE_TAGS[g]]].max(1)
    out[:, ~covered] = out[:, covered].mean(1, keepdims=True)
    return steps_of(out, starts, seg, it.duration)


def two_features(it: Item, ex: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-second zero-shot genre logits of tagger ``ex`` and MSD genre logits of ``it``, cut to one length."""
    w0, _ = zero_shot(GENRES, classes)
    logits, starts, seg = it.tags[ex]
    a = steps_of(logits @ w0.T, starts, seg, it.duration)
    m = msd_genre_steps(it)
    n = min(len(a), len(m))
    return a[:n], m[:n]


def fit_two_params(fit: list[Item], ex: str, l2: float, classes: list[str], *, per_genre: bool = True,
                   bias: bool = True, l2_bias: float | None = None,
                   prior_c: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-genre ``(a, c, b)`` of ``a * mn04 + c * msd + b`` on per-second logits, pulled toward
    ``(1, prior_c, 0)`` by ``l2`` (the biases by ``l2_bias`` when given); genres GTZAN lacks take
    the fitted genres' means. ``per_genre`` False fits one ``a`` and one ``c`` for every genre;
    ``bias`` False keeps ``b = 0``."""
    import torch

    xa, xm, ys, clip = [], [], [], []
    for k, it in enumerate(fit):
        a, m = two_features(it, ex, classes)
        xa.append(a), xm.append(m), ys.append(np.full(len(a), GENRES.index(it.genre))), clip.append(np.full(len(a), k))
    y, c = np.concatenate(ys), np.concatenate(clip)
    f64 = torch.float64  # the fit then does not depend on how many threads sum the loss
    A, M = torch.as_tensor(np.concatenate(xa), dtype=f64), torch.as_tensor(np.concatenate(xm), dtype=f64)
    trained = torch.as_tensor([g in GTZAN_GENRES for g in GENRES])
    n = len(GENRES) if per_genre else 1
    pa = torch.ones(n, dtype=f64, requires_grad=True)
    pc = torch.full((n,), prior_c, dtype=f64, requires_grad=True)
    pb = torch.zeros(len(GENRES), dtype=f64, requires_grad=bias)
    lb = l2 if l2_bias is None else l2_bias

    def penalty() -> torch.Tensor:
        scales = (pa - 1) ** 2 + (pc - prior_c) ** 2
        return l2 * (scales[trained] if per_genre else scales).sum() + lb * (pb**2)[trained].sum()

    fit_weighted([pa, pc] + ([pb] if bias else []),
                 lambda: torch.where(trained, A * pa + M * pc + pb, torch.full_like(A, -1e4)),
                 y, window_weights(c, y), penalty)
    a_, c_, b_ = (np.broadcast_to(t.detach().numpy(), (len(GENRES),)).copy() for t in (pa, pc, pb))
    t = trained.numpy()
    for v in (a_, c_, b_):
        v[~t] = v[t].mean()
    return a_, c_, b_


def _fit_two(fit: list[Item], ex: str, l2: float, classes: list[str]) -> Head:
    a_, c_, b_ = fit_two_params(fit, ex, l2, classes)

    def head(it: Item) -> np.ndarray:
        a, m = two_features(it, ex, classes)
        return a * a_ + m * c_ + b_
    return head


def windows(items: list[Item], expert: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window of ``items`` read by ``expert``: ``(logits, genre index, weight)``, each clip
    weighing the same and each genre present the same (:func:`window_weights`)."""
    xs, ys, clip = [], [], []
    for k, it in enumerate(items):
        logits = it.tags[expert][0]
        xs.append(logits)
        ys.append(np.full(len(logits), GENRES.index(it.genre)))
        clip.append(np.full(len(logits), k))
    y, c = np.concatenate(ys), np.concatenate(clip)
    return np.concatenate(xs), y, window_weights(c, y)


def make_candidates(classes: list[str], experts: list[str]) -> dict[str, tuple[int, Callable[[list[Item]], Head]]]:
    """name -> (parameters fitted on GTZAN, fit function)."""
    c: dict[str, tuple[int, Callable[[list[Item]], Head]]] = {}
    for ex in experts:
        if not ex.startswith("mn04"):
            continue
        if "msd" in experts:
            for l2 in (0.01, 0.1):
                c[f"{ex}+msd:scale-bias(l2={l2})"] = (30, lambda fit, ex=ex, l2=l2: _fit_two(fit, ex, l2, classes))
            c[f"{ex}+msd:zero-shot(0.5)"] = (0, lambda fit, ex=ex: (lambda h: (lambda it: _sum_beta(
                h(it), msd_genre_steps(it), 0.5)))(_affine(ex, *zero_shot(GENRES, classes))))
        c[f"{ex}:zero-shot"] = (0, lambda fit, ex=ex: _affine(ex, *zero_shot(GENRES, classes)))
        for l2 in (0.01, 0.1, 1.0):
            c[f"{ex}:scale-bias(l2={l2})"] = (20, lambda fit, ex=ex, l2=l2: _affine(
                ex, *fit_scale_bias(*windows(fit, ex), GENRES, classes, l2, GTZAN_GENRES)))
        for l2 in ((0.1, 1.0) if ex == "mn04" else ()):
            c[f"{ex}:stacked(l2={l2})"] = (500, lambda fit, ex=ex, l2=l2: _affine(
                ex, *fit_stacked(*windows(fit, ex), GENRES, classes, l2, GTZAN_GENRES)))
    return c


def musicnn_steps(it: Item) -> np.ndarray:
    """1.6.0's per-second log-probabilities over GENRES (electronic: the mean of its ten)."""
    logits, starts, seg = it.tags["gtzan-musicnn"]
    z = steps_of(logits, starts, seg, it.duration)
    logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    return np.concatenate([logp, logp.mean(1, keepdims=True)], axis=1)


def partitions(items: list[Item]) -> tuple[list[Item], list[Item], dict[str, list[Item]]]:
    """``(GTZAN items, emotify-dev items, CV folds)``: the folds are GTZAN's train and valid partitions."""
    g = [it for it in items if it.dataset == "gtzan"]
    e = [it for it in items if it.dataset == "emotify"]
    return g, e, {f: [it for it in g if it.split == f] for f in CV_FOLDS}


def write_results(out: Path, rows: list[dict]) -> None:
    """``results.json`` (every row) and ``results.md`` (the table, best S first) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / "results.json", rows)
    cols = ["candidate", "S", "gtzan_cv_track_accuracy", "gtzan_cv_macro_f1", "gtzan_cv_seconds",
            "emotify_cr_verdict", "emotify_cr_seconds", "emotify_electronic_non_gtzan", "emotify_pop_verdict",
            "gtzan_16k_cv_accuracy", "params"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in sorted(rows, key=lambda r: -r["S"]):
        lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")


def require_rule(p: argparse.ArgumentParser, out: Path) -> None:
    """Refuse (a usage error) to score anything before ``out/rule.md`` holds the rule."""
    if not (out / "rule.md").is_file():
        p.error(f"write the selection rule to {out / 'rule.md'} before the first run")


def run(out: Path, items: list[Item], classes: list[str], experts: list[str]) -> list[dict]:
    """Score every candidate by the rule; write ``results.json`` and ``results.md`` to ``out``."""
    g, e, folds = partitions(items)
    rows = []
    cands = make_candidates(classes, experts)
    combos: list[tuple[str, float]] = [("", 0.0)]
    if "gtzan-musicnn" in experts:
        combos += [("+musicnn", 0.5)]
        rows.append(score_candidate("gtzan-musicnn 1.6.0", 0, g, e, folds, lambda fit: musicnn_steps, 0.0))
    for name, (n_params, fit_fn) in cands.items():
        for suffix, beta in combos:
            rows.append(score_candidate(name + (f"{suffix}(beta={beta})" if suffix else ""), n_params, g, e, folds, fit_fn, beta))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "detail"}), flush=True)
    write_results(out, rows)
    return rows


def _sum_beta(a: np.ndarray, m: np.ndarray, beta: float) -> np.ndarray:
    n = min(len(a), len(m))
    return a[:n] + beta * m[:n]


def score_candidate(name: str, n_params: int, g: list[Item], e: list[Item], folds: dict[str, list[Item]],
                    fit_fn: Callable[[list[Item]], Head], beta: float) -> dict:
    """One candidate's row by the rule: GTZAN CV over ``folds`` (each fitted on the other fold +
    extra), emotify-dev ``e`` with the head fitted on all of ``g`` but test, and S. ``beta`` > 0
    adds that much of 1.6.0's log-probabilities (:func:`musicnn_steps`)."""
    extra = [it for it in g if it.split == "extra"]

    def combined(head: Head) -> Head:
        if beta == 0.0:
            return head
        return lambda it: _sum_beta(head(it), musicnn_steps(it), beta)

    cv_items, cv_steps = [], []
    for held, held_items in folds.items():
        fit = [it for k, f in folds.items() if k != held for it in f] + extra
        h = combined(fit_fn(fit))
        cv_items += held_items
        cv_steps += [h(it) for it in held_items]
    cv = score(cv_items, cv_steps, GENRES)
    # emotify: the head fitted on all of GTZAN's train + valid + extra (what would ship, test aside)
    h = combined(fit_fn([it for f in folds.values() for it in f] + extra))
    em = score(e, [h(it) for it in e], GENRES)
    narrow = [i for i, it in enumerate(cv_items) if it.narrow]
    row = {
        "candidate": name, "params": n_params,
        "gtzan_cv_track_accuracy": cv["gtzan_track_accuracy"], "gtzan_cv_macro_f1": cv["gtzan_track_macro_f1"],
        "gtzan_cv_seconds": cv["gtzan_seconds"],
        "gtzan_16k_cv_accuracy": float(np.mean([cv["verdicts"][i] == cv_items[i].genre for i in narrow])),
        "emotify_cr_verdict": em["emotify_cr_verdict"], "emotify_cr_seconds": em["emotify_cr_seconds"],
        "emotify_electronic_non_gtzan": em["emotify_electronic_non_gtzan"],
        "emotify_pop_verdict": em.get("emotify:pop:verdict", float("nan")),
        "detail": {"emotify_verdicts": dict(zip([it.rel for it in e], em["verdicts"])),
                   "cv_verdicts": dict(zip([it.rel for it in cv_items], cv["verdicts"]))},
    }
    row["S"] = float(np.mean([row["gtzan_cv_track_accuracy"], row["emotify_cr_verdict"], row["emotify_cr_seconds"],
                              row["emotify_electronic_non_gtzan"]]))
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train audioset-select", description=__doc__.splitlines()[0])
    p.add_argument("--gtzan", type=Path, default=Path("../shared/data/gtzan"))
    p.add_argument("--emotify", type=Path, default=Path("../shared/data/emotify-dev"))
    p.add_argument("--tagger", action="append", required=True, metavar="NAME=MODEL",
                   help="an expert: a tagger (name starting mn04) or gtzan-musicnn=exported/default.onnx")
    p.add_argument("--cache", type=Path, default=Path(".cache/window-tags"))
    p.add_argument("--out", type=Path, default=Path("runs/audioset-select"))
    a = p.parse_args(argv)
    require_rule(p, a.out)
    taggers = dict(t.split("=", 1) for t in a.tagger)
    items = load_items(a.gtzan.resolve(), a.emotify.resolve(), {k: Path(v) for k, v in taggers.items()}, a.cache)
    run(a.out, items, audioset_labels(), list(taggers))
    print((a.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
