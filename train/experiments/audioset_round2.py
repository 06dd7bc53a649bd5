"""``python -m train.experiments.audioset_round2``: combinations of mn04 and the MSD tags that cannot
learn GTZAN's rock bias, scored as ``audioset-select`` scores its candidates.

The shipped default fits ``a*mn04 + c*msd + b`` per genre on GTZAN; there it learns a rock bias of
-1.22 and a low MSD weight on rock, because both experts call many GTZAN clips of other genres
rock, and on real rock recordings that bias hands clips to country. The candidates here restrict
what the fit can learn (no bias, biases pulled hard, shared scales) or trust the MSD tags more.
The rule is ``runs/audioset-round2/rule.md``; findings in ``train/EXPERIMENTS.md``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np

from ..constants import REPO_ROOT

FOLDS = ("train", "valid")


def fit_combination(fit: list, ex: str, classes: list[str], *, per_genre: bool, bias: bool, l2: float = 0.01,
                    l2_bias: float | None = None, prior_c: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a, c, b)`` per genre of ``a*mn04 + c*msd + b`` fitted on the windows of ``fit``.

    ``per_genre`` False: one ``a`` and one ``c`` for all genres. ``bias`` False: ``b = 0``.
    The pull is ``l2 * ((a-1)^2 + (c-prior_c)^2) + l2_bias * b^2`` (``l2_bias`` defaults to ``l2``).
    Genres GTZAN lacks take the fitted genres' means, as in :func:`train.audioset_select.fit_two_params`.
    """
    import torch

    from .. import audioset_select as sel
    from ..audioset_heads import fit_weighted, window_weights

    genres, gtzan = sel.GENRES, sel.GTZAN_GENRES
    xa, xm, ys, clip = [], [], [], []
    for k, it in enumerate(fit):
        a, m = sel.two_features(it, ex, classes)
        xa.append(a), xm.append(m), ys.append(np.full(len(a), genres.index(it.genre))), clip.append(np.full(len(a), k))
    y, c = np.concatenate(ys), np.concatenate(clip)
    f64 = torch.float64
    A, M = torch.as_tensor(np.concatenate(xa), dtype=f64), torch.as_tensor(np.concatenate(xm), dtype=f64)
    trained = torch.as_tensor([g in gtzan for g in genres])
    n = len(genres) if per_genre else 1
    pa = torch.ones(n, dtype=f64, requires_grad=True)
    pc = torch.full((n,), prior_c, dtype=f64, requires_grad=True)
    pb = torch.zeros(len(genres), dtype=f64, requires_grad=bias)
    lb = l2 if l2_bias is None else l2_bias
    params = [pa, pc] + ([pb] if bias else [])

    def penalty() -> torch.Tensor:
        sa = ((pa - 1) ** 2 + (pc - prior_c) ** 2)
        sa = sa[trained].sum() if per_genre else sa.sum()
        return l2 * sa + (lb * (pb**2)[trained].sum() if bias else 0.0)

    fit_weighted(params, lambda: torch.where(trained, A * pa + M * pc + pb, torch.full_like(A, -1e4)),
                 y, window_weights(c, y), penalty)
    a_, c_, b_ = (np.broadcast_to(t.detach().numpy(), (len(genres),)).copy() for t in (pa, pc, pb))
    t = trained.numpy()
    for v in (a_, c_, b_):
        v[~t] = v[t].mean()
    return a_, c_, b_


def candidates(classes: list[str]) -> dict[str, tuple[int, Callable]]:
    """The rule's ten candidates and the reference (the shipped default's), name -> (parameters, fit)."""
    from .. import audioset_select as sel

    def head_of(ex: str, **kw: object) -> Callable:
        def fit_fn(fit: list) -> Callable:
            a_, c_, b_ = fit_combination(fit, ex, classes, **kw)  # type: ignore[arg-type]

            def head(it: object) -> np.ndarray:
                a, m = sel.two_features(it, ex, classes)  # type: ignore[arg-type]
                return a * a_ + m * c_ + b_
            return head
        return fit_fn

    out: dict[str, tuple[int, Callable]] = {
        "reference: mn04+msd:scale-bias(l2=0.01)": (30, head_of("mn04", per_genre=True, bias=True))}
    for ex in ("mn04", "mn04-8k"):
        out[f"{ex}+msd:scale(l2=0.01)"] = (20, head_of(ex, per_genre=True, bias=False))
        out[f"{ex}+msd:scale-bias(l2=0.01,bias-l2=1)"] = (30, head_of(ex, per_genre=True, bias=True, l2_bias=1.0))
        out[f"{ex}+msd(1.0):scale-bias(l2=0.01)"] = (30, head_of(ex, per_genre=True, bias=True, prior_c=1.0))
        out[f"{ex}+msd:shared-scale+bias(l2=0.01)"] = (12, head_of(ex, per_genre=False, bias=True))
        out[f"{ex}+msd:shared-scale(l2=0.01)"] = (2, head_of(ex, per_genre=False, bias=False))
    return out


def main(argv: list[str] | None = None) -> int:
    from .. import audioset_select as sel
    from ..audioset import audioset_labels, save_json
    from .fold_experts import TAGGERS

    p = argparse.ArgumentParser(prog="python -m train.experiments.audioset_round2", description=__doc__.splitlines()[0])
    p.add_argument("--gtzan", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "gtzan")
    p.add_argument("--emotify", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "emotify-dev")
    p.add_argument("--taggers", type=Path, default=REPO_ROOT / "runs" / "audioset",
                   help="folder of audioset-select's tagger files")
    p.add_argument("--cache", type=Path, default=REPO_ROOT / ".cache" / "window-tags")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "audioset-round2")
    a = p.parse_args(argv)
    if not (a.out / "rule.md").is_file():
        p.error(f"write the rule to {a.out / 'rule.md'} before the first run")
    taggers = {k: a.taggers / TAGGERS[k] for k in ("mn04", "mn04-8k", "msd")}
    items = sel.load_items(a.gtzan.resolve(), a.emotify.resolve(), taggers, a.cache)
    g = [it for it in items if it.dataset == "gtzan"]
    e = [it for it in items if it.dataset == "emotify"]
    folds = {f: [it for it in g if it.split == f] for f in FOLDS}
    rows = []
    for name, (n_params, fit_fn) in candidates(audioset_labels()).items():
        rows.append(sel.score_candidate(name, n_params, g, e, folds, fit_fn, 0.0))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "detail"}), flush=True)
    save_json(a.out / "results.json", rows)
    cols = ["candidate", "S", "gtzan_cv_track_accuracy", "gtzan_cv_macro_f1", "emotify_cr_verdict",
            "emotify_cr_seconds", "emotify_electronic_non_gtzan", "emotify_pop_verdict", "gtzan_16k_cv_accuracy",
            "params"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in sorted(rows, key=lambda r: -r["S"]):
        lines.append("| " + " | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")
    (a.out / "results.md").write_text("\n".join(lines) + "\n")
    print((a.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
