"""``python -m train audioset-build``: the AudioSet genre models, from a folder-per-genre tree to ONNX.

Two models come out, both over EfficientAT ``mn04_as`` (:mod:`train.audioset`), with the
labels of the tree's genres plus ``electronic``:

- ``fast.onnx``: each genre reads its AudioSet class (zero-shot), with a scale and a bias per
  genre fitted on the tree's training clips (pulled toward the zero-shot map); ``electronic``,
  which the tree lacks, takes the fitted genres' mean scale and bias;
- ``default.onnx``: the same plus an *expert*, musicnn's MSD tagger read as genres
  (``experts/musicnn-msd-genres.onnx``: each genre the highest of its MSD tags), weighted per
  genre, all three numbers per genre fitted together.

Then, as for the musicnn models: the loudness level of the training clips, a temperature fitted
on the validation clips' seconds (models fitted without them), the timeline's smoothing fitted on
validation (:mod:`train.smoothing`), and the measured figures in each model's metadata. The
selection of this recipe is recorded in ``runs/audioset-select`` (:mod:`train.audioset_select`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from genre_infer.features import FeatureSpec
from genre_infer.model import ExpertSpec, ModelInfo

from .audioset import MN04_FEATURES, WEIGHTS, GenreMn04Stream, audioset_labels, export_stream, save_json, tagger_model
from .audioset_select import (
    GENRES, GTZAN_GENRES, MSD_GENRE_TAGS, Item, fit_two_params, load_items, steps_of, windows,
)
from .export import fit_temperature, write_metadata
from .audioset_heads import fit_scale_bias, zero_shot
from .level import stored_level_db
from .backbones.mn04 import load_mn04
from .backbones.musicnn import MSD_TAGS

__all__ = ["MsdGenres", "export_msd_expert", "fit_heads", "step_logits", "build", "build_recipe", "main"]

EXPERT_FILE = "experts/musicnn-msd-genres.onnx"
UNCERTAIN_BELOW = 0.35


class MsdGenres(nn.Module):
    """musicnn's MSD tag logits read as genres: each genre the highest of its tags
    (:data:`train.audioset_select.MSD_GENRE_TAGS`), genres without tags the mean of the others."""

    def __init__(self, backbone: nn.Module, labels: list[str]) -> None:
        super().__init__()
        self.bb = backbone
        covered = [g for g in labels if g in MSD_GENRE_TAGS]
        self.groups = [[MSD_TAGS.index(t) for t in MSD_GENRE_TAGS[g]] for g in covered]
        self.order = [labels.index(g) for g in covered]
        self.uncovered = [i for i, g in enumerate(labels) if g not in MSD_GENRE_TAGS]
        self.n = len(labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        tags = self.bb.tags(self.bb.embed(pooled))
        got = torch.stack([tags[:, g].amax(dim=1) for g in self.groups], dim=1)
        out = [None] * self.n
        for k, i in enumerate(self.order):
            out[i] = got[:, k]
        mean = got.mean(dim=1)
        for i in self.uncovered:
            out[i] = mean
        return torch.stack(out, dim=1)


def export_msd_expert(path: Path, labels: list[str], level_db: float) -> None:
    """The MSD expert in musicnn's stream layout, with 1.6.0's features at ``level_db``."""
    from genre_infer.model import NetworkSpec

    from .export import onnx_export
    from .backbones.musicnn import CONTEXT_FRAMES, MUSICNN_SPEC, load_backbone
    from .layouts import GenreMusicnnStream

    bb = load_backbone().eval()
    spec = replace(MUSICNN_SPEC, level_db=level_db)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx_export(GenreMusicnnStream(bb, MsdGenres(bb, labels)).eval(), spec, path, layout="stream")
    write_metadata(path, ModelInfo("musicnn-msd-genres", "1.0.0", tuple(labels), spec,
                                   network=NetworkSpec("stream", CONTEXT_FRAMES),
                                   extra={"training": {"pretrained": "musicnn 0.1.0 MSD_musicnn (ISC)",
                                                       "recipe": "no training: MSD tags read as genres"}}))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mn04_genre_net(w: np.ndarray, b: np.ndarray) -> GenreMn04Stream:
    return GenreMn04Stream(load_mn04(WEIGHTS), w, b)


def fit_heads(fit: list[Item], classes: list[str], l2: float,
           kinds: tuple[str, ...] = ("fast", "default")) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``{"fast": (W, b, None), "default": (W, b, expert weights)}`` fitted on ``fit`` (the ``kinds`` asked)."""
    out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
    if "fast" in kinds:
        w, b = fit_scale_bias(*windows(fit, "mn04"), GENRES, classes, l2, GTZAN_GENRES)
        out["fast"] = (w, b, None)
    if "default" in kinds:
        a, cw, b = fit_two_params(fit, "mn04", l2, classes)
        w0, _ = zero_shot(GENRES, classes)
        out["default"] = ((w0 * a[:, None]).astype(np.float32), b.astype(np.float32), cw)
    return out


def step_logits(it: Item, w: np.ndarray, b: np.ndarray, cw: np.ndarray | None) -> np.ndarray:
    """Per-second genre logits of ``it`` under a head of :func:`fit_heads`: ``mn04 @ W.T + b``, plus
    ``cw`` times the MSD expert's genre logits when the head has expert weights."""
    logits, starts, seg = it.tags["mn04"]
    z = steps_of(logits @ w.T + b, starts, seg, it.duration)
    if cw is not None:
        e, es, eseg = it.tags["msd"]
        m = steps_of(e, es, eseg, it.duration)
        n = min(len(z), len(m))
        z = z[:n] + cw * m[:n]
    return z


def _export(kind: str, head: tuple[np.ndarray, np.ndarray, np.ndarray | None], out: Path, spec, labels: list[str],
            temperature: float, version: str, note: dict, expert_path: Path) -> None:
    w, b, cw = head
    name = "audioset-mn04" if kind == "fast" else "audioset-musicnn"
    experts = ()
    if cw is not None:
        experts = (ExpertSpec(EXPERT_FILE, tuple(float(x) for x in cw), _sha(expert_path)),)
    info = export_stream(_mn04_genre_net(w, b), labels, spec, out, name, version, extra={"training": note},
                         temperature=temperature, uncertain_below=UNCERTAIN_BELOW)
    if experts:
        write_metadata(out, replace(info, experts=experts))


def evaluate(model: Path, items: list[Item], gtzan: Path, emotify: Path) -> dict:
    """Figures of a model on ``items`` through :func:`genre_infer.classify` itself (smoothing included)."""
    from genre_infer import load_model

    clf = load_model(model, device="cpu", threads=1)
    per: dict[str, dict[str, list[float]]] = {}
    rows = []
    for it in items:
        root = gtzan if it.dataset == "gtzan" else emotify
        r = clf.classify(root / it.rel)
        secs = [row.genre for row in r.timeline]
        key = f"{it.dataset}:{it.genre}"
        d = per.setdefault(key, {"verdict": [], "seconds": [], "non_gtzan": [], "non_gtzan_seconds": [],
                                 "uncertain_seconds": []})
        d["verdict"].append(r.genre == it.genre)
        d["seconds"].append(float(np.mean([s == it.genre for s in secs])))
        d["non_gtzan"].append(r.genre not in GTZAN_GENRES)
        d["non_gtzan_seconds"].append(float(np.mean([s not in GTZAN_GENRES for s in secs])))
        d["uncertain_seconds"].append(float(np.mean([s == "uncertain" for s in secs])))
        rows.append({"rel": it.rel, "dataset": it.dataset, "genre": it.genre, "verdict": r.genre,
                     "confidence": round(r.confidence, 4), "probs": [round(float(p), 5) for p in r.probabilities],
                     "steps": r.timeline_probabilities.round(5).tolist()})
    summary = {k: {m: float(np.mean(v)) for m, v in d.items()} | {"n": len(d["verdict"])} for k, d in per.items()}
    return {"summary": summary, "rows": rows}


def _inputs(data: Path, work: Path, expert: Path | None, emotify: Path | None = None,
            cache: Path = Path(".cache/window-tags")) -> tuple[FeatureSpec, float, float, list[Item]]:
    """mn04's features at the tree's training level, the tagger (and the MSD expert, when ``expert``
    names its file) exported, and every clip's window logits: ``(spec, level 32 kHz, level 16 kHz, items)``."""
    lvl32, lvl16 = stored_level_db(data, MN04_FEATURES.sr), stored_level_db(data, 16000)
    spec = replace(MN04_FEATURES, level_db=lvl32)
    tagger = work / "tagger.onnx"
    export_stream(tagger_model(WEIGHTS), audioset_labels(), spec, tagger, "mn04-tagger", "1.0.0")
    taggers = {"mn04": tagger}
    if expert is not None:
        export_msd_expert(expert, GENRES, lvl16)
        taggers["msd"] = expert
    return spec, lvl32, lvl16, load_items(data, emotify, taggers, cache)


def _valid_temperature(head: tuple[np.ndarray, np.ndarray, np.ndarray | None], valid: list[Item]) -> float:
    """The temperature that fits the validation clips' seconds read by ``head``."""
    z = [step_logits(it, *head) for it in valid]
    return fit_temperature(np.concatenate(z), np.concatenate(
        [np.full(len(zi), GENRES.index(it.genre)) for zi, it in zip(z, valid)]))


def build(out: Path, gtzan: Path, emotify: Path | None, version: str, l2: float = 0.01,
          cache: Path = Path(".cache/window-tags")) -> dict:
    """Build ``fast.onnx`` and ``default.onnx`` (and their expert) into ``out``; return the report."""
    from . import smoothing

    t0 = time.time()
    gtzan, out = gtzan.resolve(), out.resolve()
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    classes = audioset_labels()
    expert = out / EXPERT_FILE
    spec, lvl32, lvl16, items = _inputs(gtzan, work, expert, emotify.resolve() if emotify else None, cache)
    g = [it for it in items if it.dataset == "gtzan"]
    by = {s: [it for it in g if it.split == s] for s in ("train", "valid", "test", "extra")}
    note = {
        "data": f"GTZAN subset ({gtzan.name}): {sum(len(v) for v in by.values())} clips", "level_db": lvl32,
        "recipe": "EfficientAT mn04_as (AudioSet) zero-shot genre classes, a scale and bias per genre fitted on GTZAN "
                  f"(L2 {l2} toward the zero-shot map){{}}; electronic: the fitted genres' mean scale and bias",
        "pretrained": "EfficientAT mn04_as (MIT; AudioSet labels CC BY 4.0)",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
    }
    report: dict = {"level_db": {"mn04": lvl32, "musicnn": lvl16}, "l2": l2}
    valid_heads = fit_heads(by["train"] + by["extra"], classes, l2)
    ship_heads = fit_heads(by["train"] + by["valid"] + by["extra"], classes, l2)
    for kind in ("fast", "default"):
        temperature = _valid_temperature(valid_heads[kind], by["valid"])
        report[kind] = {"temperature": temperature, "head": {k: np.asarray(v).tolist() for k, v in
                        zip(("W_diag", "b", "expert"), (valid_heads[kind][0].max(1), valid_heads[kind][1],
                                                         valid_heads[kind][2] if valid_heads[kind][2] is not None else []))}}
        kn = dict(note, recipe=note["recipe"].format(" plus musicnn's MSD tags read as genres, weighted per genre"
                                                     if kind == "default" else ""))
        _export(kind, valid_heads[kind], out / f"valid-{kind}.onnx", spec, GENRES, temperature, version,
                dict(kn, fitted_on="train+extra (validation model)"), expert)
        _export(kind, ship_heads[kind], out / f"{kind}.onnx", spec, GENRES, temperature, version,
                dict(kn, fitted_on="train+valid+extra"), expert)
        smoothing.main([str(out / f"valid-{kind}.onnx"), "--out", str(work / f"smoothing-{kind}"), "--data", str(gtzan),
                        "--apply", str(out / f"valid-{kind}.onnx"), str(out / f"valid-{kind}.onnx"),
                        "--apply", str(out / f"{kind}.onnx"), str(out / f"{kind}.onnx")])
    report["wall_s"] = round(time.time() - t0, 1)
    save_json(out / "build.json", report)
    return report


def build_recipe(ctx):  # type: ignore[no-untyped-def]  # train.recipe.BuildContext -> Built (imported lazily)
    """The ``audioset-transfer`` builder of :mod:`train.recipe`: one of this module's two models
    (``[expert] enabled`` says which), its validation twin, and the recipe's shared tail (level,
    smoothing, metrics) after it.

    Recipe sections: ``[head] l2`` (0.01), ``[expert] enabled`` (true: musicnn's MSD tags as an
    expert, the ``default``; false: mn04 alone, ``fast``).
    """
    from genre_infer.model import GenreModel

    from .data import discover
    from .recipe import Built, RecipeError, section

    _, tree_genres = discover(ctx.data)
    if sorted(tree_genres) != sorted(GTZAN_GENRES):
        raise RecipeError(f"{ctx.data}: the audioset-transfer recipe reads GTZAN's ten genres from AudioSet's classes "
                          f"(this tree has {', '.join(sorted(tree_genres))}); for other genres use "
                          "train/recipes/gtzan-musicnn.toml, which trains a head for any genres")
    head_cfg = section(ctx.recipe, "head", {"l2": 0.01})
    expert_cfg = section(ctx.recipe, "expert", {"enabled": True})
    kind = "default" if expert_cfg["enabled"] else "fast"
    data, work = Path(ctx.data).resolve(), Path(ctx.work).resolve()
    classes = audioset_labels()
    expert = work / EXPERT_FILE
    ctx.log("window logits of every clip (cached under .cache/window-tags)")
    spec, lvl32, lvl16, items = _inputs(data, work, expert if kind == "default" else None)
    by = {s: [it for it in items if it.split == s] for s in ("train", "valid", "extra")}
    valid_head = fit_heads(by["train"] + by["extra"], classes, head_cfg["l2"], (kind,))[kind]
    ship_head = fit_heads(by["train"] + by["valid"] + by["extra"], classes, head_cfg["l2"], (kind,))[kind]
    temperature = _valid_temperature(valid_head, by["valid"])
    note = {"data": f"{ctx.data_name} ({data.name})", "pretrained": "EfficientAT mn04_as (MIT; AudioSet labels CC BY 4.0)"
            + ("; musicnn 0.1.0 MSD_musicnn (ISC)" if kind == "default" else ""),
            "recipe": f"AudioSet zero-shot genre classes, a scale and bias per genre fitted (L2 {head_cfg['l2']})"
            + (", plus musicnn's MSD tags read as genres, weighted per genre" if kind == "default" else ""),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__}
    model, valid = work / "model.onnx", work / "valid.onnx"
    for path, head, fitted in ((model, ship_head, "train+valid+extra"), (valid, valid_head, "train+extra")):
        _export(kind, head, path, spec, GENRES, temperature, ctx.version, dict(note, fitted_on=fitted), expert)
        info = GenreModel(path, device="cpu").info
        write_metadata(path, replace(info, name=ctx.name, uncertain_below=ctx.recipe.uncertain_below))
    ctx.log(f"{kind}: temperature {temperature:.3f} (validation seconds)")
    return Built(model, valid, {"kind": kind, "temperature": temperature, "l2": head_cfg["l2"],
                                "level_db": {"mn04": lvl32, "musicnn": lvl16}})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train audioset-build", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/gtzan"), help="folder-per-genre tree with split lists")
    p.add_argument("--emotify", type=Path, default=None, help="emotify-dev folder (scored only, never fitted on)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--version", default="1.0.0")
    p.add_argument("--l2", type=float, default=0.01)
    a = p.parse_args(argv)
    print(json.dumps(build(a.out, a.data, a.emotify, a.version, a.l2), indent=1, default=float)[:2000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
