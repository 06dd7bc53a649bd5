"""Hyper-parameter search ranked on the validation split only.

Random (or grid) draws over learning rate, batch size, activation, optimizer,
scheduler and front end; every trial is an ordinary :func:`train.fit.fit`
run (its own run folder), ranked by validation segment macro-F1 (ties: track
macro-F1). The test split is never loaded. Writes ``results.csv`` and
``results.md`` in ``runs/search-<timestamp>/``.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from .constants import CACHE_DIR, RUNS_DIR, SEED
from .fit import FitConfig, Prepared, fit, prepare

__all__ = ["SPACE", "draw_trials", "search"]

#: The searched values (each trial picks one per key).
SPACE: dict[str, list[Any]] = {
    "lr": [3e-4, 1e-3, 3e-3],
    "batch_size": [16, 32, 64],
    "activation": ["relu", "elu", "leaky_relu", "gelu"],
    "optimizer": ["sgd", "adam", "adamw", "adagrad"],
    "scheduler": ["step", "cosine", "onecycle", "plateau"],
    "kind": ["melgram", "mfcc"],
}

_SGD_LR_SCALE = 10.0  # SGD and Adagrad want larger steps than Adam-style optimizers


def draw_trials(n: int, mode: str = "random", seed: int = SEED) -> list[dict[str, Any]]:
    """``n`` distinct parameter dicts from :data:`SPACE` (grid: the first ``n`` of a shuffled grid)."""
    keys = list(SPACE)
    rng = np.random.default_rng(seed)
    if mode == "grid":
        grid = list(itertools.product(*(SPACE[k] for k in keys)))
        order = rng.permutation(len(grid))[:n]
        return [dict(zip(keys, grid[i])) for i in order]
    seen: set[tuple] = set()
    out: list[dict[str, Any]] = []
    while len(out) < n and len(seen) < np.prod([len(v) for v in SPACE.values()]):
        t = {k: SPACE[k][int(rng.integers(len(SPACE[k])))] for k in keys}
        sig = tuple(t.values())
        if sig not in seen:
            seen.add(sig)
            out.append(t)
    return out


def _effective(base: FitConfig, trial: dict[str, Any], i: int) -> FitConfig:
    lr = trial["lr"] * (_SGD_LR_SCALE if trial["optimizer"] in ("sgd", "adagrad") else 1.0)
    return replace(base, **{**trial, "lr": lr}, name=f"{base.name}-t{i:02d}")


def search(
    base: FitConfig, trials: int, mode: str = "random", runs_dir: str | os.PathLike[str] = RUNS_DIR,
    cache_dir: str | os.PathLike[str] = CACHE_DIR, seed: int = SEED,
) -> Path:
    """Run ``trials`` configurations derived from ``base``; return the folder with the tables."""
    runs_dir = Path(runs_dir)
    out = runs_dir / f"search-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{base.name}"
    out.mkdir(parents=True)
    prepared: dict[str, Prepared] = {}
    rows: list[dict[str, Any]] = []
    for i, trial in enumerate(draw_trials(trials, mode, seed)):
        cfg = _effective(base, trial, i)
        if cfg.kind not in prepared:
            prepared[cfg.kind] = prepare(cfg.data, cfg, cache_dir, splits=(*cfg.train_splits, "valid"))
        t0 = time.time()
        run = fit(cfg, runs_dir / "search-runs", cache_dir, prepared=prepared[cfg.kind], verbose=False)
        m = json.loads((run / "metrics.json").read_text())
        v = m["valid"]
        rows.append({
            "trial": i, **{k: cfg.__dict__[k] for k in SPACE}, "valid_segment_macro_f1": round(v["segment_macro_f1"], 4),
            "valid_segment_accuracy": round(v["segment_accuracy"], 4), "valid_track_macro_f1": round(v["track_macro_f1"], 4),
            "valid_track_accuracy": round(v["track_accuracy"], 4), "best_epoch": m["best_epoch"],
            "epochs_run": m["epochs_run"], "wall_s": round(time.time() - t0, 1), "run": run.name,
        })
        print(json.dumps(rows[-1]), flush=True)
        _write(out, rows)
    return out


def _write(out: Path, rows: list[dict[str, Any]]) -> None:
    ranked = sorted(rows, key=lambda r: (-r["valid_segment_macro_f1"], -r["valid_track_macro_f1"]))
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["rank", *ranked[0]])
        w.writeheader()
        for k, r in enumerate(ranked, 1):
            w.writerow({"rank": k, **r})
    cols = ["rank", *ranked[0]]
    lines = ["Ranked on validation segment macro-F1 (test never read).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for k, r in enumerate(ranked, 1):
        lines.append("| " + " | ".join(str(x) for x in [k, *r.values()]) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
