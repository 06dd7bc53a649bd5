"""From a folder-per-genre tree and optional split lists to cached whole-track features.

Layout: ``<root>/audio/<genre>/<file>`` or ``<root>/<genre>/<file>``. When
``train.txt``/``valid.txt``/``test.txt`` (and optionally ``extra.txt``, training
only) exist in ``root`` they define the split (paths relative to ``root``);
otherwise every track is assigned to one split, stratified by genre, with a
fixed seed. A track is the unit of splitting, so its windows never sit on two
sides.

Features come from :func:`genre_infer.features.compute` (unstandardised:
``mean=0, std=1``) and are cached per clip as ``.npy`` under ``.cache/features``.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from genre_infer import audio as gi_audio
from genre_infer import features as gi_features
from genre_infer.loudness import LEVEL_METER, to_level
from genre_infer.constants import AUDIO_EXTENSIONS
from genre_infer.features import FeatureSpec

from .constants import CACHE_DIR, SEED, SOURCES_FILE, SPLITS, TEST_FRACTION, VALID_FRACTION

__all__ = [
    "Track", "Clip", "discover", "assign_splits", "feature_key", "load_features", "load_clips",
    "standardisation", "split_description",
]


@dataclass
class Track:
    """One audio file with its genre and split.

    Attributes
    ----------
    path : Path
        Absolute file path.
    rel : str
        Path relative to the data root (as in split lists).
    genre : str
        Folder name.
    split : str
        ``train``, ``valid``, ``test``, ``extra`` or ``""`` (unassigned).
    source : str
        Provenance from ``sources.tsv`` when present, else ``""``.
    """

    path: Path
    rel: str
    genre: str
    split: str = ""
    source: str = ""


@dataclass
class Clip:
    """A track with its raw (unstandardised) feature matrix.

    ``x`` is ``(frames, bands)`` of the whole track; a track shorter than one
    window is tiled first (as the runtime does), so ``len(x) >= segment_frames``.
    ``n_samples`` is the length of the original signal at ``spec.sr``.
    """

    track: Track
    label: int
    x: np.ndarray
    n_samples: int
    meta: dict = field(default_factory=dict)


def _genre_dirs(root: Path) -> list[Path]:
    base = root / "audio" if (root / "audio").is_dir() else root
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def discover(root: str | os.PathLike[str]) -> tuple[list[Track], list[str]]:
    """List audio tracks and genre labels (sorted) of a data root.

    Returns
    -------
    tracks : list of Track
        Unassigned tracks, sorted by path.
    labels : list of str
        Genre names in output order.
    """
    root = Path(root).resolve()
    tracks: list[Track] = []
    for d in _genre_dirs(root):
        for f in sorted(d.iterdir()):
            if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS:
                tracks.append(Track(f, f.relative_to(root).as_posix(), d.name))
    labels = sorted({t.genre for t in tracks})
    if len(labels) < 2:
        raise ValueError(f"{root}: need at least two genre folders with audio")
    sources = root / SOURCES_FILE
    if sources.is_file():
        table = {}
        for line in sources.read_text().splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) >= 3:
                table[parts[0]] = parts[2]
        for t in tracks:
            t.source = table.get(t.rel, "")
    return tracks, labels


def assign_splits(
    tracks: list[Track], root: str | os.PathLike[str], seed: int = SEED,
    valid_fraction: float = VALID_FRACTION, test_fraction: float = TEST_FRACTION,
) -> str:
    """Set ``track.split`` from split lists in ``root``, or stratified at random.

    Tracks named in no list stay unassigned (``""``) and are never used.

    Returns
    -------
    str
        ``"lists"`` or ``"stratified(seed=..., valid=..., test=...)"``: how the split was made.

    Raises
    ------
    ValueError
        A track is listed in two split files, or a listed path does not exist.
    """
    root = Path(root).resolve()
    lists = {s: root / f"{s}.txt" for s in SPLITS}
    by_rel = {t.rel: t for t in tracks}
    if lists["train"].is_file():
        for name, f in lists.items():
            if not f.is_file():
                continue
            for line in f.read_text().splitlines():
                rel = line.strip()
                if not rel or rel.startswith("#"):
                    continue
                if rel not in by_rel:
                    raise ValueError(f"{f.name}: {rel} is not an audio file under {root}")
                t = by_rel[rel]
                if t.split and t.split != name:
                    raise ValueError(f"{rel} is listed in both {t.split}.txt and {name}.txt")
                t.split = name
        return "lists"
    rng = np.random.default_rng(seed)
    for genre in sorted({t.genre for t in tracks}):
        group = [t for t in tracks if t.genre == genre]
        order = rng.permutation(len(group))
        n_valid = max(1, int(round(valid_fraction * len(group))))
        n_test = int(round(test_fraction * len(group)))
        for rank, i in enumerate(order):
            group[i].split = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
    return f"stratified(seed={seed}, valid={valid_fraction}, test={test_fraction})"


def raw_spec(spec: FeatureSpec) -> FeatureSpec:
    """``spec`` without standardisation (the cached form)."""
    return replace(spec, mean=0.0, std=1.0)


def feature_key(spec: FeatureSpec) -> str:
    """Hash of the parameters that change whole-track features (not windows or standardisation)."""
    d = raw_spec(spec).to_dict()
    for k in ("segment_frames", "window_hop_s", "mean", "std"):
        d.pop(k)
    if "level_db" in d:  # normalised features also depend on how the level is measured
        d["level_meter"] = LEVEL_METER
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _cache_file(path: Path, spec: FeatureSpec, cache_dir: Path) -> Path:
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    h = hashlib.sha1(ident.encode()).hexdigest()[:16]
    return cache_dir / feature_key(spec) / f"{path.stem}-{h}.npy"


def load_features(
    path: str | os.PathLike[str], spec: FeatureSpec, cache_dir: str | os.PathLike[str] = CACHE_DIR
) -> tuple[np.ndarray, int]:
    """Raw whole-track features ``(frames, bands)`` and the sample count, from cache when present.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file.
    spec : FeatureSpec
        Feature parameters (windowing and standardisation are ignored).
    cache_dir : str or os.PathLike
        Cache root.
    """
    path = Path(path)
    f = _cache_file(path, spec, Path(cache_dir))
    side = f.with_suffix(".json")
    if f.is_file() and side.is_file():
        return np.load(f), int(json.loads(side.read_text())["n_samples"])
    y = gi_audio.load(path, spec.sr)
    x = gi_features.compute(to_level(y, spec.sr, spec.level_db), raw_spec(spec))
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, x)
    os.replace(tmp, f)
    side.write_text(json.dumps({"n_samples": int(len(y)), "path": str(path)}))
    return x, len(y)


def _tiled(path: Path, spec: FeatureSpec) -> np.ndarray:
    """Features of a track shorter than one window, repeated as the runtime does."""
    y = to_level(gi_audio.load(path, spec.sr), spec.sr, spec.level_db)
    return gi_features.compute(gi_features.fill_window(y, spec), raw_spec(spec))


def _load_one(args: tuple[Path, FeatureSpec, Path]) -> tuple[np.ndarray, int]:
    path, spec, cache_dir = args
    x, n = load_features(path, spec, cache_dir)
    if len(x) < spec.segment_frames:
        x = _tiled(path, spec)
    return x, n


def load_clips(
    tracks: list[Track], labels: list[str], spec: FeatureSpec,
    cache_dir: str | os.PathLike[str] = CACHE_DIR, workers: int | None = None,
) -> list[Clip]:
    """Features of every track (decoded in ``workers`` processes when not cached)."""
    cache_dir = Path(cache_dir)
    jobs = [(t.path, spec, cache_dir) for t in tracks]
    workers = workers or os.cpu_count() or 1
    missing = sum(not _cache_file(t.path, spec, cache_dir).is_file() for t in tracks)
    if workers > 1 and missing > 2:
        with ProcessPoolExecutor(workers) as pool:
            out = list(pool.map(_load_one, jobs, chunksize=2))
    else:
        out = [_load_one(j) for j in jobs]
    index = {g: i for i, g in enumerate(labels)}
    return [Clip(t, index[t.genre], x, n) for t, (x, n) in zip(tracks, out)]


def standardisation(clips: list[Clip]) -> tuple[float, float]:
    """Global mean and standard deviation over every frame of ``clips`` (the training set)."""
    total = sum(c.x.size for c in clips)
    mean = sum(float(c.x.sum(dtype=np.float64)) for c in clips) / total
    var = sum(float(((c.x.astype(np.float64) - mean) ** 2).sum()) for c in clips) / total
    return float(mean), float(max(np.sqrt(var), 1e-6))


def split_description(tracks: list[Track], how: str) -> dict:
    """Counts per split (and per genre) for run configs and model metadata."""
    counts: dict[str, dict[str, int]] = {}
    for t in tracks:
        if t.split:
            counts.setdefault(t.split, {}).setdefault(t.genre, 0)
            counts[t.split][t.genre] += 1
    return {"how": how, "tracks": {s: sum(v.values()) for s, v in counts.items()}, "per_genre": counts}
