"""Experiment: ensembles of genre heads, scored on validation (``python -m train ensemble``).

The shipped model has one head (a linear probe on musicnn's pretrained 200-d layer).
This trains the search's best configurations (ranked on validation by a transfer run)
with several seeds each, on the same cached embeddings as :mod:`train.embeddings`
(train+extra, augmented copies, early stopping on validation), and scores single heads
and ensembles (mean of their logits) the way the runtime would: per-second logits with
a temperature fitted on validation, track verdicts, segment and second accuracy.
Validation only; test is not read and nothing is exported.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..constants import REPO_ROOT
from ..metrics import softmax
from ..backbones.musicnn import load_backbone
from ..embeddings import EmbeddedTrack, embed_tracks
from ..embeddings import select as _split
from ..evaluate import head_report as _report
from ..heads import SEARCH_SPACE, Head, HeadConfig, fit_head, second_logits

__all__ = ["MeanHeads", "score", "main"]


class MeanHeads(nn.Module):
    """Heads ``(batch, 1506) → logits`` averaged: the mean of their logits."""

    def __init__(self, heads: list[Head]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.stack([h(pooled) for h in self.heads]).mean(0)


def score(head: nn.Module, valid: list[EmbeddedTrack], labels: list[str]) -> dict[str, Any]:
    """Validation figures of ``head`` at its own fitted temperature (per-second ECE included)."""
    from ..calibrate import ece, fit_temperature

    head.eval()
    z, y = second_logits(head, valid)  # type: ignore[arg-type]
    temperature = fit_temperature(z, y)
    scores = _report(head, valid, labels, temperature)["scores"]  # type: ignore[arg-type]
    return {"temperature": temperature, "second_ece": ece(softmax(z, temperature), y), **scores}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m train ensemble [--configs 3] [--seeds 5 3 3]``."""
    ap = argparse.ArgumentParser(prog="python -m train ensemble", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data" / "gtzan"))
    ap.add_argument("--n-aug", type=int, default=2)
    ap.add_argument("--search", type=Path, default=REPO_ROOT / "runs" / "transfer-v1" / "search.json",
                    help="a transfer run's search.json (configurations ranked on validation)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[5, 3, 3],
                    help="seeds per configuration, best configuration first")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / (time.strftime("%Y%m%d-%H%M%S") + "-ensemble"))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)  # heads are tiny
    items, labels, _ = embed_tracks(a.data, a.n_aug, layout="sequence", log=lambda m: print(m, flush=True))
    backbone = load_backbone()
    valid = _split(items, ("valid",), augmented=False)
    rows = json.loads(a.search.read_text())
    heads: dict[tuple[int, int], Head] = {}
    for c, n_seeds in enumerate(a.seeds):
        cfg_row = rows[c]
        for seed in range(n_seeds):
            cfg = HeadConfig(**{k: cfg_row[k] for k in SEARCH_SPACE}, seed=seed)
            heads[c, seed], info = fit_head(backbone, _split(items, ("train", "extra"), bool(cfg_row["augmented"])),
                                            valid, len(labels), cfg)
            print(f"config {c} seed {seed}: best epoch {info['best_epoch']}", flush=True)
    arms: dict[str, list[Head]] = {f"config {c} seed {s}": [h] for (c, s), h in heads.items()}
    arms[f"config 0 x {a.seeds[0]} seeds"] = [heads[0, s] for s in range(a.seeds[0])]
    k = min(a.seeds)
    arms[f"configs 0-{len(a.seeds) - 1} x 1 seed"] = [heads[c, 0] for c in range(len(a.seeds))]
    arms[f"configs 0-{len(a.seeds) - 1} x {k} seeds"] = [heads[c, s] for c in range(len(a.seeds)) for s in range(k)]
    results = []
    for name, hs in arms.items():
        r = {"arm": name, "heads": len(hs), **score(MeanHeads(hs), valid, labels)}
        print(json.dumps(r), flush=True)
        results.append(r)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "result.json").write_text(json.dumps({"search": str(a.search), "n_aug": a.n_aug, "arms": results},
                                                  indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
