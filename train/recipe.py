"""One recipe per shipped model: read a recipe file, run its kind's builder, then the shared tail.

``python -m train build train/recipes/default.toml --out model.onnx [--data DIR]`` runs
every stage of a model: the builder of the recipe's ``[model] kind`` makes the network
and its calibration (for ``musicnn-transfer``: embeddings, head, temperature, CV, export;
:mod:`train.transfer`), and the tail that every kind shares gives it the default model's
extras, each fitted on the data and never on the test split:

1. :func:`apply_level`: loudness normalisation to the training clips' median level;
2. :func:`apply_smoothing`: the timeline's smoothing over time, fitted on validation
   timelines read by the validation model (:mod:`train.smoothing`);
3. :func:`apply_metrics`: the validation model's figures on valid and (when the recipe
   reads it) the shipped model's on test, written into the model's metadata.

A recipe is TOML (:mod:`tomllib`). Generic sections (all optional but ``[model]`` and ``[data] root``)::

    [model]        kind = "musicnn-transfer"; name; version
    [data]         root (relative to the repository root); name (words for the metadata);
                   read_test = true|false; min_tracks = 5 (per genre in valid/test, else a warning)
    [calibration]  uncertain_below = 0.35
    [level]        enabled = true
    [smoothing]    enabled = true; grid = [0.3, ...]; max_ece = 0.05
    [metrics]      note = "why these figures" (kept in metrics.history)

and the kind's own sections, which only its builder reads (:func:`section` checks them).
A new kind registers its builder (``register_builder("efficientat-transfer",
"train.efficientat:build")``): a function of a :class:`BuildContext` that writes the
network twice (:class:`Built`: the shipped model and the validation model) and returns.
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .constants import REPO_ROOT, RUNS_DIR

__all__ = ["Recipe", "RecipeError", "BuildContext", "Built", "Builder", "register_builder", "builder",
           "load_recipe", "section", "split_warnings", "apply_level", "apply_smoothing", "apply_metrics", "build",
           "MIN_TRACKS"]

#: Fewer validation (or test) tracks than this of any genre: a warning (too few to calibrate or score).
MIN_TRACKS = 5

#: A key a section must give (a string).
REQUIRED: Any = object()

#: The generic sections and their keys' defaults (``None``: optional, no default).
GENERIC: dict[str, dict[str, Any]] = {
    "model": {"kind": REQUIRED, "name": REQUIRED, "version": "0.1.0"},
    "data": {"root": REQUIRED, "name": "folder-per-genre tree", "read_test": True, "min_tracks": MIN_TRACKS},
    "calibration": {"uncertain_below": 0.35},
    "level": {"enabled": True},
    "smoothing": {"enabled": True, "grid": None, "max_ece": None},
    "metrics": {"note": "measured by python -m train build"},
}


class RecipeError(ValueError):
    """A recipe that cannot be built as written (unknown kind, key or type; missing value)."""


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: the generic sections' values and every section as written."""

    path: Path
    kind: str
    name: str
    version: str
    data: Path
    data_name: str
    read_test: bool
    min_tracks: int
    uncertain_below: float
    level: bool
    smoothing: bool
    smoothing_grid: tuple[float, ...] | None
    max_ece: float | None
    note: str
    sections: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildContext:
    """What a builder is given: the recipe, the data root in effect, a folder of its own, a logger."""

    recipe: Recipe
    data: Path
    work: Path
    log: Callable[[str], None]
    name: str  # the model's name and version (the recipe's unless the command line overrides them)
    version: str
    data_name: str


@dataclass(frozen=True)
class Built:
    """What a builder hands to the tail: two ONNX files with labels, features, temperature and
    ``uncertain_below`` in their metadata, and what to keep in the build report."""

    model: Path        # the network to ship (trained on every split but test)
    valid_model: Path  # the same recipe trained without the validation clips: the tail fits and scores on it
    result: dict[str, Any] = field(default_factory=dict)


Builder = Callable[[BuildContext], Built]

#: Model kind -> builder, or ``"module:function"`` imported when a recipe of that kind is built.
_BUILDERS: dict[str, Builder | str] = {"musicnn-transfer": "train.transfer:build",
                                       "audioset-transfer": "train.audioset_build:build_recipe"}


def register_builder(kind: str, fn: Builder | str) -> None:
    """Make ``kind`` buildable by ``fn`` (a :data:`Builder`, or ``"module:function"`` naming one,
    imported only when needed, so registering costs nothing)."""
    if not kind or not isinstance(kind, str):
        raise ValueError("a model kind is a non-empty string")
    _BUILDERS[kind] = fn


def builder(kind: str) -> Builder:
    """The builder registered for ``kind``."""
    if kind not in _BUILDERS:
        raise RecipeError(f"unknown model kind {kind!r} (known: {', '.join(sorted(_BUILDERS))})")
    fn = _BUILDERS[kind]
    if isinstance(fn, str):
        module, _, name = fn.partition(":")
        fn = getattr(importlib.import_module(module), name)
        _BUILDERS[kind] = fn
    return fn


def section(recipe: Recipe, name: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """A kind's section ``[name]`` with ``defaults`` filled in; a key not in ``defaults``, or a value of
    another type than its default's (ints pass as floats), is a :class:`RecipeError`."""
    given = recipe.sections.get(name, {})
    if not isinstance(given, dict):
        raise RecipeError(f"{recipe.path}: [{name}] must be a table")
    return _checked(recipe.path, name, given, defaults)


def _type_ok(default: Any, value: Any) -> bool:
    if default is None:  # optional, no default: checked where it is used
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _checked(path: Path, name: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise RecipeError(f"{path}: unknown key(s) in [{name}]: {', '.join(unknown)} "
                          f"(known: {', '.join(defaults)})")
    missing = [k for k, d in defaults.items() if d is REQUIRED and k not in given]
    if missing:
        raise RecipeError(f"{path}: [{name}] needs {', '.join(missing)}")
    out = dict(defaults)
    for k, v in given.items():
        d = "" if defaults[k] is REQUIRED else defaults[k]
        if not _type_ok(d, v):
            raise RecipeError(f"{path}: [{name}] {k} = {v!r} should be a {type(d).__name__}")
        out[k] = float(v) if isinstance(d, float) else v
    return out


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe file (see the module docstring for its sections)."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RecipeError(f"{path}: no such recipe file") from None
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML ({e})") from None
    g = {name: _checked(path, name, doc.get(name, {}), keys) for name, keys in GENERIC.items()}
    kind = g["model"]["kind"]
    if kind not in _BUILDERS:
        raise RecipeError(f"{path}: unknown model kind {kind!r} (known: {', '.join(sorted(_BUILDERS))})")
    grid = g["smoothing"]["grid"]
    if grid is not None and (not isinstance(grid, list) or not grid
                             or not all(isinstance(p, (int, float)) and 0 < p < 1 for p in grid)):
        raise RecipeError(f"{path}: [smoothing] grid must be a list of switch probabilities in (0, 1)")
    max_ece = g["smoothing"]["max_ece"]
    if max_ece is not None and (isinstance(max_ece, bool) or not isinstance(max_ece, (int, float)) or max_ece <= 0):
        raise RecipeError(f"{path}: [smoothing] max_ece must be a positive number")
    root = Path(g["data"]["root"])
    return Recipe(
        path=path, kind=kind, name=g["model"]["name"], version=g["model"]["version"],
        data=root if root.is_absolute() else REPO_ROOT / root, data_name=g["data"]["name"],
        read_test=g["data"]["read_test"], min_tracks=int(g["data"]["min_tracks"]),
        uncertain_below=g["calibration"]["uncertain_below"], level=g["level"]["enabled"],
        smoothing=g["smoothing"]["enabled"], smoothing_grid=None if grid is None else tuple(float(p) for p in grid),
        max_ece=None if g["smoothing"]["max_ece"] is None else float(g["smoothing"]["max_ece"]),
        note=g["metrics"]["note"], sections=doc,
    )


def split_warnings(root: Path, read_test: bool, min_tracks: int = MIN_TRACKS) -> list[str]:
    """Lines warning of splits too small to calibrate or score: genres with fewer than ``min_tracks``
    validation (or, when it is read, test) tracks, or with no training track; one line per split."""
    from .data import assign_splits, discover

    tracks, labels = discover(root)
    how = assign_splits(tracks, root)

    def count(g: str, splits: tuple[str, ...]) -> int:
        return sum(t.genre == g and t.split in splits for t in tracks)

    out = []
    untrained = [g for g in labels if count(g, ("train", "extra")) == 0]
    if untrained:
        out.append(f"no training track of {', '.join(untrained)}: the model cannot learn "
                   f"{'it' if len(untrained) == 1 else 'them'} (split: {how})")
    purposes = {"valid": "calibrate the temperature, fit the smoothing and score the validation model on",
                "test": "score the model on"}
    for split in ("valid", "test") if read_test else ("valid",):
        few = {g: count(g, (split,)) for g in labels if count(g, (split,)) < min_tracks}
        if few:
            listed = ", ".join(f"{g} {n}" for g, n in few.items())
            out.append(f"the {split} split has fewer than {min_tracks} tracks of {len(few)} of {len(labels)} genres "
                       f"({listed}): too few to {purposes[split]} reliably (split: {how})")
    return out


def apply_level(data: Path, models: list[Path], log: Callable[[str], None] = print) -> float:
    """Loudness normalisation for ``models`` (in place): the training clips' median gated level."""
    from genre_infer.model import GenreModel

    from .level import training_level_db, with_level

    sr = GenreModel(models[0], device="cpu").features.sr
    level, n = training_level_db(data, sr)
    note = f"median gated level of {n} training clips (train + extra) at {sr} Hz"
    for m in models:
        with_level(m, m, level, None, note)
    log(f"level: {round(level, 2)} dBFS ({note})")
    return round(level, 2)


def apply_smoothing(data: Path, valid_model: Path, models: list[Path], work: Path,
                    grid: tuple[float, ...] | None = None, max_ece: float | None = None,
                    log: Callable[[str], None] = print) -> dict[str, Any] | None:
    """Fit the timeline's smoothing on validation timelines read by ``valid_model`` and write it into
    ``models`` (in place); the table goes to ``work/smoothing.{md,json}``. Returns the chosen row
    and the calibrated, smoothed validation clips' seconds (for :func:`apply_metrics`), or ``None``
    (with a warning) when no switch probability keeps the validation seconds calibrated: the
    models are then left unsmoothed."""
    from genre_infer.model import TimelineSpec

    from . import smoothing as sm

    grid = grid or sm.GRID
    max_ece = sm.MAX_ECE if max_ece is None else max_ece
    cases = sm.timeline_cases(valid_model, data, "valid")
    rows = sm.grid_rows(cases, grid)
    try:
        best = sm.choose(rows, max_ece)
    except RuntimeError as e:
        best = None
        print(f"warning: {e} on these validation clips: the model is left unsmoothed", file=sys.stderr, flush=True)
    work.mkdir(parents=True, exist_ok=True)
    (work / "smoothing.json").write_text(json.dumps({"model": str(valid_model), "rows": rows, "chosen": best,
                                                     "max_ece": max_ece, "cases": len(cases)}, indent=2) + "\n")
    (work / "smoothing.md").write_text(sm.table(rows) + "\n")
    if best is None:
        return None
    rule = str(best.pop("rule", f"highest mean seconds right with per-second ECE <= {max_ece}"))
    spec = TimelineSpec(best["switch_prob"], round(best["temperature"], 3))
    note: dict[str, object] = {
        "fitted_on": f"valid clips, pairs and {sm.INSERT_S:g}-s inserts read by {valid_model.name}",
        "rule": rule,
        "valid": {k: round(v, 4) for k, v in best.items()}}
    for m in models:
        sm.with_timeline(m, m, spec, None, note)
    log(f"smoothing: switch_prob {spec.switch_prob}, temperature {spec.temperature} (table in {work / 'smoothing.md'})")
    probs, truth = sm.smoothed_clips(cases, spec.switch_prob, spec.temperature)
    return {"chosen": best, "spec": spec, "clip_probs": probs, "clip_truth": truth}


def apply_metrics(data: Path, model: Path, valid_model: Path, read_test: bool, note: str, work: Path,
                  uncertain_below: float, smoothing: dict[str, Any] | None = None,
                  log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the validation model on valid and (``read_test``) ``model`` on test, as the runtime reads
    them (level and smoothing included), and store the figures in ``model``'s metadata; with
    smoothing, the calibration figures of the smoothed seconds too (ECE, song ECE, ``uncertain``)."""
    import numpy as np

    from .calibrate import ece, uncertain_figures
    from .evaluate import evaluate
    from .export import update_metrics

    valid_dir = evaluate(valid_model, str(data), "valid", work / "eval-valid")
    test_dir = evaluate(model, str(data), "test", work / "eval-test") if read_test else None
    updates: dict[str, float] = {}
    if smoothing is not None:
        probs, truth = smoothing["clip_probs"], smoothing["clip_truth"]
        seconds, labels = np.concatenate(probs), np.concatenate(truth)
        songs = np.array([p.mean(0) for p in probs])
        u = uncertain_figures(seconds, labels, uncertain_below)
        updates = {"calibration.ece_after_smoothing": ece(seconds, labels),
                   "calibration.track_ece_after": ece(songs, np.array([t[0] for t in truth])),
                   **{f"calibration.{k}": v for k, v in u.items() if k != "uncertain_below"}}
    doc = update_metrics(model, note, valid_dir / "metrics.json", test_dir and test_dir / "metrics.json", updates)
    log(f"metrics: valid {json.dumps(doc['valid'])}" + (f", test {json.dumps(doc['test'])}" if read_test else ""))
    return doc


def _copy_experts(model: Path, out: Path) -> None:
    """The expert files a model names (relative to its folder) beside ``out`` too."""
    from genre_infer.model import GenreModel

    for e in GenreModel(model, device="cpu").info.experts:
        src, dst = model.parent / e.model, out.parent / e.model
        if src.resolve() != dst.resolve():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)


def build(path: str | Path, out: Path, data: Path | None = None, work: Path | None = None,
          name: str | None = None, version: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the model a recipe describes and write it to ``out`` (atomically, once every stage passed).

    ``data`` replaces the recipe's data root (a user's own folder-per-genre tree); the model is
    then named after the folder (version 0.1.0) unless ``name`` (``version``) is given. Intermediate files, tables and
    ``build.json`` go to ``work`` (default ``runs/<time>-build-<name>``). Returns the build report.
    """
    recipe = load_recipe(path)
    root = Path(data) if data is not None else recipe.data
    if not root.is_dir():
        raise RecipeError(f"{root}: no such data folder")
    own = root.resolve() != recipe.data.resolve()  # a user's tree, not the recipe's data
    if name is None:
        name = f"{root.resolve().name}-{recipe.kind}" if own else recipe.name
    version = version or ("0.1.0" if own else recipe.version)
    work = work or RUNS_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-build-{name}"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    warnings = split_warnings(root, recipe.read_test, recipe.min_tracks)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr, flush=True)
    fn = builder(recipe.kind)
    ctx = BuildContext(recipe, root, work, log, name, version,
                       "folder-per-genre tree" if own else recipe.data_name)
    built = fn(ctx)
    models = list(dict.fromkeys([built.model, built.valid_model]))  # a kind may score the shipped model itself
    report: dict[str, Any] = {"recipe": str(recipe.path), "kind": recipe.kind, "name": name, "version": version,
                              "data": str(root), "warnings": warnings, "builder": built.result}
    if recipe.level:
        report["level_db"] = apply_level(root, models, log)
    smoothing = None
    if recipe.smoothing:
        smoothing = apply_smoothing(root, built.valid_model, models, work, recipe.smoothing_grid, recipe.max_ece, log)
        report["smoothing"] = smoothing and smoothing["chosen"]
    report["metrics"] = apply_metrics(root, built.model, built.valid_model, recipe.read_test, recipe.note, work,
                                      recipe.uncertain_below, smoothing, log)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.build")
    shutil.copyfile(built.model, tmp)
    _copy_experts(built.model, out)
    tmp.replace(out)
    report["out"] = str(out)
    report["wall_s"] = round(time.time() - t0, 1)
    (work / "build.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    log(f"built {out} ({name} {version}) in {report['wall_s']:.0f} s; report {work / 'build.json'}")
    return report

