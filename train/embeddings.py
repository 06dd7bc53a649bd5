"""Cached musicnn embeddings of every clip version of a data root (the transfer recipe's first stage).

Each clip is decoded once; ``K`` augmented versions of each training clip are made
(:mod:`train.audio_augment`: speed, EQ, low-pass, noise, mp3, gain, each seeded by the
clip, the version and the seed); the runtime's windows are computed
(``genre_infer.features``) and musicnn's pooled features per window are cached
(``.cache/embeddings*/``, keyed by the file, the version, the seed, the level and the
augmentation recipe).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genre_infer import audio as gi_audio
from genre_infer.loudness import LEVEL_METER, to_level

from .audio_augment import Chain, random_chain
from .backbones.musicnn import MUSICNN_SPEC, LiveFrames, load_backbone, pooled_sequence, pooled_windows
from .constants import REPO_ROOT, SEED
from .data import Track, assign_splits, discover

__all__ = ["EMBED_DIR", "EmbeddedTrack", "version_audio", "cache_path", "embed_tracks", "select"]

EMBED_DIR = REPO_ROOT / ".cache" / "embeddings"


@dataclass
class EmbeddedTrack:
    """Pooled musicnn features of every runtime window of one version of a track."""

    track: Track
    label: int
    version: int  # 0 = the clean clip, 1.. = augmented copies
    pooled: np.ndarray  # (windows, 1506) float32
    starts_s: np.ndarray  # (windows,)
    n_samples: int


def version_audio(y: np.ndarray, track: Track, version: int, seed: int = SEED, strength: float = 1.0,
                  chain: Chain = Chain()) -> np.ndarray:
    """Version ``version`` of a clip at 16 kHz: itself for 0, else a seeded random augmentation chain.

    Deterministic in ``(seed, version, track)``, so the student of :mod:`train.experiments.distill`
    sees exactly the audio whose musicnn features the cache holds.
    """
    if version == 0:
        return y
    rng = np.random.default_rng([seed, version, int(hashlib.sha1(track.rel.encode()).hexdigest()[:8], 16)])
    return random_chain(y, MUSICNN_SPEC.sr, rng, strength, chain)


def cache_path(track: Track, version: int, seed: int, layout: str = "windows", level_db: float | None = None,
               chain: Chain = Chain()) -> Path:
    """Where the embeddings of one clip version are cached (the key names everything they depend on)."""
    level = "" if level_db is None else f"|level{level_db:.2f}|{LEVEL_METER}"
    recipe = "" if version == 0 else chain.key()
    key = hashlib.sha1(f"{track.path}|{track.path.stat().st_size}|{version}|{seed}{level}{recipe}".encode()).hexdigest()[:16]
    folder = EMBED_DIR if layout == "windows" else EMBED_DIR.with_name(f"embeddings-{layout}")
    return folder / f"{track.path.stem}-{version}-{key}.npz"


def embed_tracks(
    root: str | os.PathLike[str], n_aug: int = 4, seed: int = SEED, strength: float = 1.0,
    log: Any = print, layout: str = "windows", level_db: float | None = None, chain: Chain = Chain(),
) -> tuple[list[EmbeddedTrack], list[str], str]:
    """Embed every clip of a data root (augmented copies for train/extra), cached.

    ``layout`` ``"windows"`` runs musicnn on each 3-s window alone (as it was
    trained); ``"sequence"`` runs it once over the whole clip and pools each
    window from it, as the sequence network does at run time. With ``level_db``
    every clip version is scaled to that gated level first, as the runtime does
    for a model whose features set it (:mod:`genre_infer.loudness`).

    Every version's features are rounded to float16, as the cache stores them, also when
    they were just computed: a cold cache and a warm one train the same head (1.6.0's head
    was trained on cached values; unrounded ones move its logits by 1.5e-4).

    Returns
    -------
    items : list of EmbeddedTrack
    labels : list of str
    split : str
        How the split was made (``lists`` or a stratified description).
    """
    tracks, labels = discover(root)
    how = assign_splits(tracks, root, seed)
    index = {g: i for i, g in enumerate(labels)}
    net = load_backbone()
    live = LiveFrames(net)  # the same frame features, a tenth of the work
    torch.set_num_threads(os.cpu_count() or 1)
    if layout not in ("windows", "sequence"):
        raise ValueError(f"unknown layout {layout!r}")
    items: list[EmbeddedTrack] = []
    t0 = time.time()
    for n, track in enumerate(t for t in tracks if t.split):
        versions = 1 + (n_aug if track.split in ("train", "extra") else 0)
        y = None
        for v in range(versions):
            path = cache_path(track, v, seed, layout, level_db, chain)
            if path.is_file():
                z = np.load(path)
                pooled, starts_s, n_samples = z["pooled"].astype(np.float32), z["starts_s"], int(z["n_samples"])
            else:
                if y is None:
                    y = gi_audio.load(track.path, MUSICNN_SPEC.sr)
                yv = version_audio(y, track, v, seed, strength, chain)
                yv = to_level(yv, MUSICNN_SPEC.sr, level_db)
                pooled, starts_s = (pooled_sequence(live, yv) if layout == "sequence" else pooled_windows(net, yv))
                # what the cache holds, so a run on a cold cache trains on the numbers a warm one reads
                pooled = pooled.astype(np.float16).astype(np.float32)
                n_samples = len(yv)
                path.parent.mkdir(parents=True, exist_ok=True)
                np.savez(path, pooled=pooled.astype(np.float16), starts_s=starts_s, n_samples=n_samples)
            items.append(EmbeddedTrack(track, index[track.genre], v, pooled, starts_s, n_samples))
        if (n + 1) % 10 == 0:
            log(f"embedded {n + 1} tracks in {time.time() - t0:.0f} s")
    return items, labels, how



def select(items: list[EmbeddedTrack], splits: tuple[str, ...], augmented: bool = True) -> list[EmbeddedTrack]:
    """The items of ``splits``; only the clean clips (version 0) unless ``augmented``."""
    return [it for it in items if it.track.split in splits and (augmented or it.version == 0)]
