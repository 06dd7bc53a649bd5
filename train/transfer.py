"""The musicnn transfer recipe: cached embeddings, a genre head, calibration, CV, export.

Data this scarce (154 GTZAN clips) cannot teach a network music from scratch;
musicnn, trained on the Million Song Dataset's tags, already knows it. The
pretrained front and mid end turn each 3-s window into 1506 pooled features;
a small head learns genres from them. The stages, each in its own module:

1. :mod:`train.embeddings`: every clip version's pooled musicnn features, cached.
2. :mod:`train.heads`: the head's configuration (searched on validation, or given),
   trained on train+extra with early stopping on validation.
3. :mod:`train.calibrate`: the temperature, fitted on the validation seconds.
4. Cross-validation over the split's partitions; the shipped head retrained on
   train+valid+extra for the selected epochs.
5. :mod:`train.layouts` + :mod:`train.export`: backbone and head as one ONNX graph,
   checked against torch; also the validation model (before the retrain) that the
   tail stages of :mod:`train.recipe` (level, smoothing, metrics) are fitted and scored on.

``python -m train build train/recipes/gtzan-musicnn.toml`` runs this recipe and its tail;
``python -m train transfer`` runs this part alone with every choice on the command line.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from genre_infer import audio as gi_audio
from genre_infer import features as gi_features

from .audio_augment import Chain
from .backbones.musicnn import CONTEXT_FRAMES, MUSICNN_SPEC, Musicnn, load_backbone
from .calibrate import ece, fit_temperature, uncertain_figures
from .constants import REPO_ROOT, SEED
from .embeddings import EmbeddedTrack, embed_tracks, select
from .evaluate import head_report
from .heads import SEARCH_SPACE, Head, HeadConfig, evaluate_items, fit_head, predict, rank_score, search_heads, \
    second_logits
from .layouts import NETWORKS, export_example
from .metrics import softmax

if TYPE_CHECKING:
    from .recipe import BuildContext, Built

__all__ = ["run", "given_head", "calibrate_head", "cross_validate", "save_json", "build", "main"]


#: Shortest parity example for the export, in seconds (two contexts, some handed-on frames and a window).
EXAMPLE_S = 12.0


def save_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (numpy scalars as floats), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")


def _table_md(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def given_head(backbone: Musicnn, items: list[EmbeddedTrack], n_labels: int, choice: dict[str, Any],
               augmented: bool, source: str) -> list[dict[str, Any]]:
    """The search table's one row for a head configuration chosen elsewhere (no new search):
    trained on train+extra, early stopping on validation, as a search trial is."""
    valid = select(items, ("valid",), augmented=False)
    h, info = fit_head(backbone, select(items, ("train", "extra"), augmented), valid, n_labels,
                       HeadConfig(**choice, seed=SEED))
    s = evaluate_items(h, valid, n_labels)
    return [{**choice, "augmented": augmented, "best_epoch": info["best_epoch"],
             **{f"valid_{k}": v for k, v in s.items()}, "rank_score": rank_score(s), "config_from": source}]


def calibrate_head(head: Head, valid: list[EmbeddedTrack], uncertain_below: float) -> dict[str, Any]:
    """Temperature fitted on the validation seconds of ``head`` (trained without them), ECE before and
    after, and the ``uncertain`` threshold's figures on the calibrated seconds."""
    z, y = second_logits(head, valid)
    temperature = fit_temperature(z, y)
    preds_t = predict(head, valid, temperature)
    calib = {"temperature": temperature, "ece_before": ece(softmax(z), y), "ece_after": ece(softmax(z, temperature), y),
             "fitted_on": "per-second logits of the validation clips, model trained on train+extra",
             "track_ece_after": ece(np.stack([p.track_probs for p in preds_t]), np.array([p.label for p in preds_t]))}
    calib.update(uncertain_figures(softmax(z, temperature), y, uncertain_below))
    return calib


def cross_validate(backbone: Musicnn, items: list[EmbeddedTrack], n_labels: int, cfg: HeadConfig, epochs: int,
                   augmented: bool, temperature: float, parts: tuple[str, ...], log: Any = print) -> dict[str, Any]:
    """Hold out each partition of ``parts`` in turn (extra always trains), train for ``epochs``, score it."""
    cv = {}
    for held in parts:
        rest = tuple(s for s in (*parts, "extra") if s != held)
        h, _ = fit_head(backbone, select(items, rest, augmented), [], n_labels, cfg, epochs=epochs)
        cv[held] = evaluate_items(h, select(items, (held,), False), n_labels, temperature)
        log(f"cv held-out {held}: {json.dumps(cv[held])}")
    accs = [v["track_accuracy"] for v in cv.values()]
    f1s = [v["track_macro_f1"] for v in cv.values()]
    return {"folds": cv, "track_accuracy_mean": float(np.mean(accs)), "track_accuracy_std": float(np.std(accs)),
            "track_macro_f1_mean": float(np.mean(f1s)), "track_macro_f1_std": float(np.std(f1s)),
            "weighted_track_accuracy": float(sum(v["track_accuracy"] * v["tracks"] for v in cv.values())
                                             / sum(v["tracks"] for v in cv.values()))}


def run(
    root: str | os.PathLike[str], out_dir: Path, n_aug: int, trials: int, export_to: Path | None,
    name: str, version: str, uncertain_below: float, read_test: bool, log: Any = print,
    layout: str = "stream", head_from: Path | None = None, export_valid_to: Path | None = None,
    level_db: float | None = None, chain: Chain = Chain(), head: dict[str, Any] | None = None,
    data_name: str | None = None,
) -> dict[str, Any]:
    """The whole transfer recipe: embed, search (valid), calibrate (valid), retrain, test once, CV, export.

    The head's configuration is searched (``trials`` configurations, ranked on validation)
    unless ``head`` gives it (the keys of :data:`SEARCH_SPACE` and ``augmented``) or
    ``head_from`` names another run's ``result.json`` whose choice to reuse. Without
    ``read_test`` the test split is read nowhere: no test report, and the
    cross-validation holds out the train and valid partitions only."""
    from datetime import datetime, timezone

    from genre_infer.model import ModelInfo, NetworkSpec

    from .export import write_checked

    t_start = time.time()
    # the stream layout embeds exactly what the sequence layout does: they share its cache
    items, labels, how = embed_tracks(root, n_aug, log=log, layout="windows" if layout == "windows" else "sequence",
                                      level_db=level_db, chain=chain)
    spec = MUSICNN_SPEC if level_db is None else replace(MUSICNN_SPEC, level_db=round(level_db, 2))
    n_labels = len(labels)
    backbone = load_backbone()
    # heads are tiny: one thread avoids the thread pool's waits when another process holds a core
    torch.set_num_threads(1)
    valid = select(items, ("valid",), augmented=False)
    test = select(items, ("test",), augmented=False)

    if head is not None:  # the configuration a recipe gives; no new search
        rows = given_head(backbone, items, n_labels, {k: head[k] for k in SEARCH_SPACE}, bool(head["augmented"]),
                          "recipe")
    elif head_from is not None:  # the head configuration another run selected on validation; no new search
        prev = json.loads(Path(head_from).read_text())["search_best"]
        rows = given_head(backbone, items, n_labels, {k: prev[k] for k in SEARCH_SPACE}, bool(prev["augmented"]),
                          str(head_from))
    else:
        rows = search_heads(backbone, items, n_labels, trials, log=log)
    cols = ["kind", "lr", "dropout", "mixup", "weight_decay", "augmented", "best_epoch", "valid_track_accuracy",
            "valid_track_macro_f1", "valid_segment_accuracy", "valid_segment_macro_f1", "wall_s"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "search.md").write_text(_table_md(rows, cols))
    save_json(out_dir / "search.json", rows)
    best = rows[0]
    cfg = HeadConfig(**{k: best[k] for k in SEARCH_SPACE}, seed=SEED)
    use_aug = bool(best["augmented"])

    # the selected model (trained without valid) gives the validation figures and the temperature
    head_sel, _ = fit_head(backbone, select(items, ("train", "extra"), use_aug), valid, n_labels, cfg)
    calib = calibrate_head(head_sel, valid, uncertain_below)
    temperature = calib["temperature"]
    valid_report = head_report(head_sel, valid, labels, temperature)
    log(f"valid {json.dumps(valid_report['scores'])} calibration {json.dumps(calib)}")

    # cross-validation over the artist-disjoint partitions of the filtered split (extra always trains)
    parts = ("train", "valid", "test") if read_test else ("train", "valid")
    cv_summary = cross_validate(backbone, items, n_labels, cfg, best["best_epoch"], use_aug, temperature, parts, log)

    # the shipped head: the same recipe on train+valid+extra for the selected number of epochs
    head_all, _ = fit_head(backbone, select(items, ("train", "valid", "extra"), use_aug), [], n_labels, cfg,
                           epochs=best["best_epoch"])
    test_report = head_report(head_all, test, labels, temperature) if read_test else None
    if test_report:
        log(f"TEST (read once): {json.dumps(test_report['scores'])}")

    net_cls = NETWORKS[layout]
    net = net_cls(backbone, head_all).eval()
    result = {
        "labels": labels, "split": how, "search_best": best, "config": asdict(cfg), "augmented": use_aug,
        "n_aug": n_aug, "lowpass_p": chain.lowpass_p, "drive_p": chain.drive_p, "layout": layout,
        "valid": valid_report, "calibration": calib, "cv": cv_summary, "test": test_report,
        "parameters": int(sum(p.numel() for p in net.parameters())), "wall_s": round(time.time() - t_start, 1),
    }
    save_json(out_dir / "result.json", result)
    if export_to is not None or export_valid_to is not None:
        extra = {
            "training": {
                "data": f"{data_name or 'GTZAN subset'} ({Path(root).name}): {len(items)} clip versions", "split": how,
                "recipe": f"musicnn (MSD) front/mid end frozen ({layout} layout); genre head trained on pooled features "
                          f"of {n_aug} augmented copies per training clip"
                          + chain.describe()
                          + (f", every version scaled to {level_db:.2f} dBFS gated level" if level_db is not None else "")
                          + "; selected on valid; retrained on train+valid+extra for the selected epochs",
                "pretrained": "musicnn 0.1.0 MSD_musicnn (PyPI wheel, ISC licence)",
                "config": asdict(cfg), "augmented": use_aug, "epochs": best["best_epoch"], "seed": SEED,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
            },
            "metrics": {
                "valid": valid_report["scores"], "valid_model": "trained on train+extra (before the retrain)",
                "test": test_report["scores"] if test_report else None, "cv": {k: v for k, v in cv_summary.items()},
                "calibration": calib,
            },
            "parameters": result["parameters"],
        }
        network = NetworkSpec() if layout == "windows" else NetworkSpec(layout, CONTEXT_FRAMES)
        first = test[0] if test else valid[0]
        y0 = gi_audio.load(first.track.path, MUSICNN_SPEC.sr)
        if len(y0) < EXAMPLE_S * MUSICNN_SPEC.sr:  # a short clip repeated: the stream layout's parity needs
            y0 = np.tile(y0, int(np.ceil(EXAMPLE_S * MUSICNN_SPEC.sr / len(y0))))  # context and whole windows
        x0 = gi_features.compute(y0, MUSICNN_SPEC)
        starts0 = gi_features.window_starts(len(x0), MUSICNN_SPEC)
        example = export_example(layout, x0, starts0)
        if export_to is not None:
            info = ModelInfo(name, version, tuple(labels), features=spec, temperature=temperature,
                             uncertain_below=uncertain_below, extra=extra, network=network)
            diff = write_checked(net, info, example, export_to)
            log(f"exported {export_to} (parity {diff:.2e})")
            result["parity"] = diff
        if export_valid_to is not None:  # the selected model before the retrain: valid is held out from it
            training = {**extra["training"], "recipe": extra["training"]["recipe"].split("; retrained")[0]
                        + "; NOT retrained: the validation model, for scoring graph approximations on valid"}
            info = ModelInfo(f"{name}-valid", version, tuple(labels), features=spec, temperature=temperature,
                             uncertain_below=uncertain_below, network=network,
                             extra={**extra, "training": training, "metrics": {"valid": valid_report["scores"]}})
            diff = write_checked(net_cls(backbone, head_sel).eval(), info, example, export_valid_to)
            log(f"exported the validation model {export_valid_to} (parity {diff:.2e})")
        save_json(out_dir / "result.json", result)
    return result


#: The ``musicnn-transfer`` recipe's own sections and their defaults (:func:`train.recipe.section`).
BACKBONE = {"name": "MSD_musicnn", "layout": "stream"}
AUGMENT = {"copies": 2, "lowpass_p": Chain().lowpass_p, "drive_p": Chain().drive_p}
HEAD = {"search": 0, "kind": "probe", "lr": 3e-4, "dropout": 0.5, "mixup": 0.2, "weight_decay": 1e-4,
        "balance": True, "augmented": True}


def build(ctx: BuildContext) -> Built:
    """The ``musicnn-transfer`` builder of :mod:`train.recipe`: :func:`run` with the recipe's
    ``[backbone]``, ``[augment]`` and ``[head]`` (``search = N`` > 0: search N configurations on
    validation instead of the one given), writing the shipped and the validation model."""
    from .backbones.tf_checkpoint import ensure_pretrained
    from .recipe import Built, RecipeError, section

    r = ctx.recipe
    bb, aug, head = section(r, "backbone", BACKBONE), section(r, "augment", AUGMENT), section(r, "head", HEAD)
    if bb["name"] != "MSD_musicnn":
        raise RecipeError(f"{r.path}: [backbone] name {bb['name']!r}: only MSD_musicnn is ported")
    if bb["layout"] not in NETWORKS:
        raise RecipeError(f"{r.path}: [backbone] layout {bb['layout']!r} is not one of {', '.join(NETWORKS)}")
    if head["kind"] not in SEARCH_SPACE["kind"]:
        raise RecipeError(f"{r.path}: [head] kind {head['kind']!r} is not one of {', '.join(SEARCH_SPACE['kind'])}")
    ensure_pretrained(log=ctx.log)
    model, valid_model = ctx.work / "model.onnx", ctx.work / "valid.onnx"
    result = run(ctx.data, ctx.work / "transfer", aug["copies"], head["search"], model, ctx.name, ctx.version,
                 r.uncertain_below, r.read_test, log=ctx.log, layout=bb["layout"], export_valid_to=valid_model,
                 chain=Chain(lowpass_p=aug["lowpass_p"], drive_p=aug["drive_p"]),
                 head=None if head["search"] > 0 else head, data_name=ctx.data_name)
    return Built(model, valid_model, {"search_best": result["search_best"], "calibration": result["calibration"],
                                      "cv": result["cv"], "parity": result.get("parity"),
                                      "wall_s": result["wall_s"]})


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m train transfer", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gtzan"))
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/<time>-transfer)")
    ap.add_argument("--n-aug", type=int, default=2, help="augmented copies per training clip")
    ap.add_argument("--trials", type=int, default=12, help="head configurations tried (ranked on valid)")
    ap.add_argument("--export", type=Path, default=None, help="write the ONNX model here")
    ap.add_argument("--export-valid", type=Path, default=None,
                    help="also write the selected model before its retrain on valid (valid stays held out "
                         "from it): to score approximations of the graph, e.g. `python -m train quantize`")
    ap.add_argument("--name", default="gtzan-musicnn")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--uncertain-below", type=float, default=0.35)
    ap.add_argument("--no-test", action="store_true", help="do not read the test split")
    ap.add_argument("--head-from", type=Path, default=None,
                    help="reuse the head configuration selected by another run (its result.json) instead of searching")
    ap.add_argument("--normalise", action="store_true",
                    help="loudness normalisation: every clip version (and, at run time, every song) is scaled "
                         "to the training clips' median gated level before the features")
    ap.add_argument("--lowpass-p", type=float, default=Chain().lowpass_p,
                    help=f"probability that an augmented copy is band-limited (default {Chain().lowpass_p:g})")
    ap.add_argument("--drive-p", type=float, default=Chain().drive_p,
                    help=f"probability that an augmented copy is driven 3-15 dB into clipping (default {Chain().drive_p:g})")
    ap.add_argument("--layout", choices=["stream", "sequence", "windows"], default="stream",
                    help="stream (shipped): musicnn over stretches that hand their frame embeddings on, "
                         "windows pooled from them; sequence: one call over a whole stretch, windows pooled "
                         "from it; windows: musicnn on each 3-s window alone, as it was trained")
    a = ap.parse_args(argv)
    out = a.out or REPO_ROOT / "runs" / (time.strftime("%Y%m%d-%H%M%S") + "-transfer")
    level_db = None
    if a.normalise:
        from .level import stored_level_db

        level_db = stored_level_db(a.data, MUSICNN_SPEC.sr)
    run(a.data, out, a.n_aug, a.trials, a.export, a.name, a.version, a.uncertain_below, not a.no_test,
        log=lambda m: print(m, flush=True), layout=a.layout, head_from=a.head_from,
        export_valid_to=a.export_valid, level_db=level_db,
        chain=Chain(lowpass_p=a.lowpass_p, drive_p=a.drive_p))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
