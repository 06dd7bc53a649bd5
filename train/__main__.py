"""``python -m train build RECIPE --out MODEL.onnx`` builds a model from its recipe; the other
commands run one stage each (``--help`` on each). Experiments that did not ship run from
``train/experiments/`` (findings in ``train/EXPERIMENTS.md``)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Sequence

from .constants import CACHE_DIR, RUNS_DIR, SEED


def _add_recipe(p: argparse.ArgumentParser) -> None:
    from .fit_config import FitConfig

    d = FitConfig()
    p.add_argument("--data", required=True, help="data root: <root>/audio/<genre>/* or <root>/<genre>/*")
    p.add_argument("--name", default=d.name, help="run name (folder runs/<timestamp>-<name>)")
    p.add_argument("--kind", choices=["melgram", "mfcc"], default=d.kind, help="front end")
    p.add_argument("--segment-s", type=float, default=d.segment_s, help="window length in seconds (1 or 3)")
    p.add_argument("--n-mfcc", type=int, default=d.n_mfcc)
    p.add_argument("--net", default=d.net, help="registered architecture")
    p.add_argument("--channels", type=lambda s: tuple(int(c) for c in s.split(",")), default=d.channels,
                   help="conv block channels, comma-separated")
    p.add_argument("--activation", choices=["relu", "elu", "leaky_relu", "gelu"], default=d.activation)
    p.add_argument("--dropout", type=float, default=d.dropout)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "adagrad"], default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--scheduler", choices=["step", "cosine", "onecycle", "plateau", "none"], default=d.scheduler)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience (epochs)")
    p.add_argument("--crops-per-track", type=int, default=d.crops_per_track)
    p.add_argument("--gain-db", type=float, default=d.gain_db, help="random gain range ±dB (0: off)")
    p.add_argument("--freq-mask", type=int, default=d.freq_mask, help="SpecAugment band mask width (0: off)")
    p.add_argument("--time-mask", type=int, default=d.time_mask, help="SpecAugment frame mask width (0: off)")
    p.add_argument("--mixup-alpha", type=float, default=d.mixup_alpha, help="mixup Beta(a, a) (0: off)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--max-minutes", type=float, default=d.max_minutes, help="stop after this long (0: no limit)")


def _config(a: argparse.Namespace):  # noqa: ANN202
    from .fit_config import FitConfig

    names = {f.name for f in fields(FitConfig)}
    return FitConfig(**{k: v for k, v in vars(a).items() if k in names})


def cmd_build(a: argparse.Namespace) -> int:
    from .recipe import RecipeError, build

    try:
        build(a.recipe, a.out, a.data, a.work, a.name, a.version, log=lambda m: print(m, flush=True))
    except RecipeError as e:  # the recipe or the command line
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:  # the data (no genre folders, one genre, ...)
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_prepare(a: argparse.Namespace) -> int:
    from . import data
    from .fit import FitConfig, make_spec

    tracks, labels = data.discover(a.data)
    how = data.assign_splits(tracks, a.data, a.seed)
    desc = data.split_description(tracks, how)
    print(json.dumps({"labels": labels, "split": desc["how"], "tracks": desc["tracks"]}))
    for kind in a.kinds:
        spec = make_spec(FitConfig(kind=kind))
        used = [t for t in tracks if t.split]
        clips = data.load_clips(used, labels, spec, a.cache)
        print(f"{kind}: {len(clips)} tracks cached under {Path(a.cache) / data.feature_key(spec)}")
    return 0


def cmd_fit(a: argparse.Namespace) -> int:
    from .fit import fit

    run = fit(_config(a), a.runs, a.cache)
    print(run)
    return 0


def cmd_search(a: argparse.Namespace) -> int:
    from .search import search

    out = search(_config(a), a.trials, a.mode, a.runs, a.cache, seed=a.search_seed)
    print(out)
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from .evaluate import evaluate

    out = evaluate(a.target, a.data, a.split, a.out, a.cache)
    print(out)
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from .export import export, shipped_model

    shipped = shipped_model(a.out)
    if shipped is not None and not a.force:
        print(f"python -m train export: error: {a.out} is the shipped model {shipped!r}, which the next "
              "`pip install .` would ship as yours; write elsewhere (e.g. --out runs/my-model.onnx), "
              "or pass --force to replace it", file=sys.stderr)
        return 2
    export(a.run, a.out, a.model_name, a.model_version, a.cache, calibrate=not a.no_calibrate,
           test_metrics=a.test_metrics)
    print(a.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m train``."""
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("build", help="build a model from its recipe (every stage, e.g. the shipped default)",
                       description="Run every stage of a recipe file (train/recipes/default.toml is the "
                                   "shipped model): its kind's network, head and calibration, then loudness "
                                   "level, the timeline's smoothing and the measured figures into the metadata.")
    q.add_argument("recipe", help="a recipe file, e.g. train/recipes/default.toml")
    q.add_argument("--out", required=True, type=Path, help="where to write the model (.onnx, atomically)")
    q.add_argument("--data", type=Path, default=None,
                   help="your own folder-per-genre tree instead of the recipe's data (<root>/<genre>/* "
                        "or <root>/audio/<genre>/*, optional train/valid/test.txt lists)")
    q.add_argument("--work", type=Path, default=None,
                   help="folder for intermediate files and tables (default runs/<time>-build-<name>)")
    q.add_argument("--name", default=None, help="model name (default: the recipe's, or with --data <folder>-<kind>)")
    q.add_argument("--version", default=None, help="model version (default: the recipe's, or with --data 0.1.0)")
    q.set_defaults(func=cmd_build)

    q = sub.add_parser("prepare", help="split the data and cache features",
                       description="Assign splits (lists or stratified) and cache whole-track features.")
    q.add_argument("--data", required=True, help="data root")
    q.add_argument("--kinds", nargs="+", default=["melgram"], choices=["melgram", "mfcc"])
    q.add_argument("--seed", type=int, default=SEED)
    q.add_argument("--cache", default=str(CACHE_DIR))
    q.set_defaults(func=cmd_prepare)

    q = sub.add_parser("fit", help="train one configuration",
                       description="Train on train+extra, early-stop on validation macro-F1, write a run folder.")
    _add_recipe(q)
    q.add_argument("--runs", default=str(RUNS_DIR))
    q.add_argument("--cache", default=str(CACHE_DIR))
    q.set_defaults(func=cmd_fit)

    q = sub.add_parser("search", help="hyper-parameter search ranked on validation",
                       description="Random or grid search over lr, batch size, activation, optimizer, "
                                   "scheduler and front end; ranked on validation macro-F1 only.")
    _add_recipe(q)
    q.add_argument("--trials", type=int, default=8)
    q.add_argument("--mode", choices=["random", "grid"], default="random")
    q.add_argument("--search-seed", type=int, default=SEED)
    q.add_argument("--runs", default=str(RUNS_DIR))
    q.add_argument("--cache", default=str(CACHE_DIR))
    q.set_defaults(func=cmd_search)

    q = sub.add_parser("evaluate", help="score a run folder or an exported .onnx on a split",
                       description="Segment/track accuracy and macro-F1, per-genre report, confusion "
                                   "matrix (text + PNG), per-source accuracy.")
    q.add_argument("target", help="run folder (torch) or .onnx file (via genre_infer)")
    q.add_argument("--data", required=True)
    q.add_argument("--split", default="valid", choices=["train", "valid", "test", "extra"])
    q.add_argument("--out", default=None, help="output folder (default: <run>/eval-<split>)")
    q.add_argument("--cache", default=str(CACHE_DIR))
    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("export", help="export a run to ONNX with genre-infer metadata",
                       description="ONNX export (dynamic batch), temperature calibration on validation, "
                                   "metadata, onnxruntime-vs-torch parity check, genre_infer load check.")
    q.add_argument("run", help="run folder")
    q.add_argument("--out", required=True, help="output .onnx path (written atomically)")
    q.add_argument("--model-name", default="genre-cnn")
    q.add_argument("--model-version", default="0.1.0")
    q.add_argument("--no-calibrate", action="store_true", help="keep temperature 1")
    q.add_argument("--test-metrics", default=None, help="metrics.json of a test evaluation to embed")
    q.add_argument("--cache", default=str(CACHE_DIR))
    q.add_argument("--force", action="store_true", help="replace a shipped model (exported/*.onnx)")
    q.set_defaults(func=cmd_export)

    q = sub.add_parser("set-metrics", help="store newly measured figures in an exported model's metadata",
                       description="Replace metrics.valid/test with `train evaluate` outputs (and set other "
                                   "metrics keys); what is replaced stays in metrics.history with the note.")
    q.add_argument("model", help="an exported .onnx (rewritten in place)")
    q.add_argument("--note", required=True, help="why the figures changed")
    q.add_argument("--valid", default=None, help="metrics.json of `train evaluate --split valid`")
    q.add_argument("--test", default=None, help="metrics.json of `train evaluate --split test`")
    q.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="dotted metrics keys to set, e.g. calibration.track_ece_after=0.139")
    q.set_defaults(func=cmd_set_metrics)

    q = sub.add_parser("metrics-file", help="write a model's measured figures (its metadata + a bench run) as JSON",
                       description="exported/metrics.json: the model's metadata figures and, optionally, "
                                   "bench/results.json measured on it.")
    q.add_argument("model", help="an exported .onnx")
    q.add_argument("--bench", default=None, help="a bench/bench.py results file measured on this model")
    q.add_argument("--out", required=True, help="where to write the JSON")
    q.set_defaults(func=cmd_metrics_file)

    for name, (_, help_text) in DELEGATED.items():  # commands with their own argument parsers
        q = sub.add_parser(name, add_help=False, help=f"{help_text} (see `{name} --help`)")
        q.add_argument("args", nargs=argparse.REMAINDER)
        q.set_defaults(func=cmd_delegated, command=name)
    return p


#: Commands whose modules parse their own arguments (``<module>.main(argv)``): module and help.
DELEGATED: dict[str, tuple[str, str]] = {
    "pretrained": ("backbones.tf_checkpoint", "convert the musicnn wheel's checkpoint"),
    "transfer": ("transfer", "the musicnn transfer stages alone (head search, calibration, CV, export), "
                             "every choice on the command line"),
    "level": ("level", "copy a model with loudness normalisation to the training clips' median level"),
    "smoothing": ("smoothing", "fit the timeline's smoothing over time on validation and write it into models"),
    "robustness": ("robustness", "a model's figures on one split under level, bandwidth, codec, noise, EQ and "
                                 "speed changes"),
    "distill": ("experiments.distill", "experiment: a small sequence CNN distilled from the transfer model"),
    "rebuild": ("experiments.rebuild", "re-export a musicnn model's weights with today's (equivalent) graph"),
    "quantize": ("experiments.quantize", "experiment: 8-bit timbral convolutions (the retired fast model)"),
    "finetune": ("experiments.finetune", "experiment: musicnn's mid end fine-tuned with the head"),
    "ensemble": ("experiments.ensemble", "experiment: ensembles of genre heads against one head"),
    "backbones": ("experiments.backbones", "experiment: the musicnn wheel's other networks as genre features"),
    "fold-experts": ("experiments.fold_experts", "experiment: 1.6.0's head as an AudioSet model's expert, "
                                                 "scored with per-fold heads"),
    "audioset-round2": ("experiments.audioset_round2", "experiment: mn04 + MSD combinations that cannot learn "
                                                       "GTZAN's rock bias"),
    "audioset-select": ("audioset_select", "genre heads over EfficientAT mn04's AudioSet logits, compared by a fixed "
                                           "rule (GTZAN CV + emotify-dev)"),
    "audioset-build": ("audioset_build", "the AudioSet genre models (default: mn04 + musicnn MSD expert; fast: mn04)"),
    "audioset-report": ("audioset_report", "the AudioSet models' figures on GTZAN and emotify-dev, through genre-infer"),
}


def cmd_set_metrics(a: argparse.Namespace) -> int:
    from .export import update_metrics

    updates = {k: float(v) for k, v in (item.split("=", 1) for item in a.set)}
    doc = update_metrics(Path(a.model), a.note, a.valid and Path(a.valid), a.test and Path(a.test), updates)
    print(json.dumps({k: doc.get(k) for k in ("valid", "test")}))
    return 0


def cmd_metrics_file(a: argparse.Namespace) -> int:
    from .export import metrics_file

    doc = metrics_file(Path(a.model), a.bench and Path(a.bench))
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {a.out} ({doc['model']['name']} {doc['model']['version']})")
    return 0


def cmd_delegated(a: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f".{DELEGATED[a.command][0]}", __package__)
    return int(module.main(list(a.args)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in DELEGATED:  # their own parsers take every argument
        return cmd_delegated(argparse.Namespace(command=args[0], args=args[1:]))
    a = build_parser().parse_args(args)
    return int(a.func(a))


if __name__ == "__main__":
    sys.exit(main())
