"""``python -m train.experiments.fold_experts``: 1.6.0's head as an expert, scored honestly.

``audioset-select`` excluded every candidate that adds 1.6.0's head (``+musicnn``): that head
was trained on the clips its 2-fold CV holds out, so their GTZAN figures were inflated (0.81–0.86
where the shipped default reads 0.73). This experiment trains the head once per fold of that CV,
with 1.6.0's recipe (``train/recipes/gtzan-musicnn.toml``: probe head, 2 augmented copies, half
band-limited) fixed at 1.6.0's 17 epochs, on the other partition plus ``extra``; exports each as
1.6.0 is exported (stream layout, the same metadata: level, temperature); and scores every
candidate again with each held-out GTZAN clip read by the fold head that never saw it. emotify-dev
is read by the shipped 1.6.0 (trained on train+valid+extra), as every candidate's emotify figures
are. Nothing else changes: the candidates, the folds and the rule of ``runs/audioset-select``.

The epoch count was chosen on valid when 1.6.0 was built, a mild leak that 1.6.0's own CV figure
shares. Findings: ``train/EXPERIMENTS.md``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..audioset_select import CV_FOLDS
from ..constants import REPO_ROOT

#: The taggers of ``runs/audioset-select`` (exported by ``python -m train audioset-tagger``).
TAGGERS = {"mn04": "tagger-full.onnx", "mn04-8k": "tagger-8k.onnx", "mn04-5s": "tagger-seg500.onnx",
           "mn04-10s": "tagger-seg1000.onnx", "msd": "msd-tagger.onnx"}


def experiment_parser(prog: str, description: str, out: str) -> argparse.ArgumentParser:
    """The options the AudioSet experiments share: data, ``audioset-select``'s taggers, the window
    cache and the run folder ``runs/<out>``."""
    p = argparse.ArgumentParser(prog=f"python -m train.experiments.{prog}", description=description)
    p.add_argument("--gtzan", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "gtzan")
    p.add_argument("--emotify", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "emotify-dev")
    p.add_argument("--taggers", type=Path, default=REPO_ROOT / "runs" / "audioset",
                   help="folder of audioset-select's tagger files")
    p.add_argument("--cache", type=Path, default=REPO_ROOT / ".cache" / "window-tags")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / out)
    return p


def fold_model(gtzan: Path, held: str, out: Path, shipped: Path) -> Path:
    """1.6.0's head trained without partition ``held`` (and without test), exported as 1.6.0 is."""
    import torch

    from genre_infer import audio as gi_audio
    from genre_infer import features as gi_features
    from genre_infer.model import GenreModel

    from ..audio_augment import Chain
    from ..backbones.musicnn import MUSICNN_SPEC, load_backbone
    from ..embeddings import embed_tracks, select
    from ..export import write_checked
    from ..heads import HeadConfig, evaluate_items, fit_head
    from ..layouts import NETWORKS, export_example
    from ..transfer import EXAMPLE_S

    path = out / f"gtzan-musicnn-without-{held}.onnx"
    if path.is_file():
        return path
    info = GenreModel(shipped, device="cpu").info
    training = info.extra["training"]
    cfg = HeadConfig(**training["config"])
    items, labels, _ = embed_tracks(gtzan, 2, layout="sequence", chain=Chain(lowpass_p=0.5, drive_p=0.0))
    assert tuple(labels) == info.labels, (labels, info.labels)
    backbone = load_backbone()
    torch.set_num_threads(1)
    rest = tuple(s for s in (*CV_FOLDS, "extra") if s != held)
    head, _ = fit_head(backbone, select(items, rest, bool(training["augmented"])), [], len(labels), cfg,
                       epochs=int(training["epochs"]))
    held_items = select(items, (held,), False)
    scores = evaluate_items(head, held_items, len(labels), info.temperature)
    print(json.dumps({"held_out": held, "fit_on": rest, "torch_scores": scores}), flush=True)
    first = held_items[0]
    y0 = gi_audio.load(first.track.path, MUSICNN_SPEC.sr)
    if len(y0) < EXAMPLE_S * MUSICNN_SPEC.sr:
        y0 = np.tile(y0, int(np.ceil(EXAMPLE_S * MUSICNN_SPEC.sr / len(y0))))
    x0 = gi_features.compute(y0, MUSICNN_SPEC)
    example = export_example("stream", x0, gi_features.window_starts(len(x0), MUSICNN_SPEC))
    note = {**training, "recipe": training["recipe"].split("; retrained")[0]
            + f"; fold head of train.experiments.fold_experts: trained on {'+'.join(rest)} for "
              f"{training['epochs']} epochs, partition {held} and test never seen"}
    fold_info = replace(info, name=f"gtzan-musicnn-without-{held}", extra={**info.extra, "training": note})
    net = NETWORKS["stream"](backbone, head).eval()
    write_checked(net, fold_info, example, path)
    return path


def main(argv: list[str] | None = None) -> int:
    from genre_infer.model import GenreModel

    from .. import audioset_select as sel
    from ..audioset import audioset_labels, window_tags

    p = experiment_parser("fold_experts", __doc__.splitlines()[0], "fold-experts")
    p.add_argument("--shipped", type=Path, default=REPO_ROOT / "exported" / "gtzan-musicnn.onnx")
    a = p.parse_args(argv)
    sel.require_rule(p, a.out)
    gtzan, emotify = a.gtzan.resolve(), a.emotify.resolve()
    taggers = {k: a.taggers / v for k, v in TAGGERS.items()} | {"gtzan-musicnn": a.shipped}
    items = sel.load_items(gtzan, emotify, taggers, a.cache)
    for held in CV_FOLDS:  # each held-out clip read by the fold head that never saw it
        model = fold_model(gtzan, held, a.out, a.shipped)
        mine = [it for it in items if it.dataset == "gtzan" and it.split == held]
        seg = GenreModel(model, device="cpu").features.segment_s
        for it, (logits, starts, dur) in zip(mine, window_tags(model, [gtzan / it.rel for it in mine], a.cache, gtzan)):
            assert abs(dur - it.duration) < 1e-6, it.rel
            it.tags["gtzan-musicnn"] = (logits, starts, seg)
    rows = sel.run(a.out, items, audioset_labels(), list(taggers))
    best = max(rows, key=lambda r: r["S"])
    print((a.out / "results.md").read_text())
    print(json.dumps({"best": best["candidate"], "S": best["S"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
