"""End to end: synthetic genre tree -> python -m train prepare/fit/export -> genre-infer CLI.

Three "genres" a tiny CNN learns in seconds: chords (sustained tones), noise
bursts, and click patterns. The exported model must classify one held-out
file of each correctly through ``python -m genre_infer --format json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
sf = pytest.importorskip("soundfile")

REPO = Path(__file__).resolve().parents[1]
SR = 16000
SECONDS = 4.0
GENRES = ("chords", "bursts", "clicks")


def synth(genre: str, k: int, sr: int = SR, seconds: float = SECONDS) -> np.ndarray:
    """The ``k``-th example of a synthetic genre (deterministic)."""
    rng = np.random.default_rng(1000 * GENRES.index(genre) + k)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    if genre == "chords":
        root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        y = sum(np.sin(2 * np.pi * root * r * t + rng.uniform(0, 6)) for r in (1.0, 1.26, 1.5, 2.0))
        y = 0.2 * y
    elif genre == "bursts":
        y = np.zeros(n)
        env_len = int(0.2 * sr)
        for start in np.arange(0.0, seconds - 0.2, 0.25) + rng.uniform(0, 0.05):
            i = int(start * sr)
            y[i : i + env_len] += np.diff(rng.standard_normal(env_len + 1)) * np.hanning(env_len)
        y = 0.3 * y / (np.max(np.abs(y)) + 1e-9)
    else:
        y = np.zeros(n)
        period = int(sr * 60.0 / rng.uniform(100, 180))
        click = np.exp(-np.arange(int(0.004 * sr)) / (0.0008 * sr))
        for i in range(int(rng.integers(0, period)), n - len(click), period):
            y[i : i + len(click)] += 0.8 * click
    y = y * rng.uniform(0.5, 1.0)
    return np.clip(y, -1, 1).astype(np.float32)


def make_tree(root: Path, per_genre: int = 8) -> Path:
    """``root/audio/<genre>/<genre>.N.wav`` plus train/valid/test split lists."""
    lists: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    for g in GENRES:
        (root / "audio" / g).mkdir(parents=True, exist_ok=True)
        for k in range(per_genre):
            rel = f"audio/{g}/{g}.{k:02d}.wav"
            sf.write(root / rel, synth(g, k), SR)
            split = "valid" if k in (0, 1) else "test" if k == 2 else "train"
            lists[split].append(rel)
    for s, rels in lists.items():
        (root / f"{s}.txt").write_text("\n".join(rels) + "\n")
    return root


TINY = ["--segment-s", "1", "--channels", "8,16", "--epochs", "10", "--patience", "10", "--crops-per-track", "6",
        "--batch-size", "16", "--lr", "3e-3", "--mixup-alpha", "0", "--scheduler", "none"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "TRAIN_THREADS": "1", "OMP_NUM_THREADS": "1"}  # a tiny net: threads only add overhead
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_train_export_classify(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "data")
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    run_cli("-m", "train", "prepare", "--data", str(data), "--cache", str(cache))
    assert any(cache.rglob("*.npy"))
    run_cli("-m", "train", "fit", "--data", str(data), "--name", "tiny", "--runs", str(runs),
            "--cache", str(cache), *TINY)
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    for f in ("config.json", "epochs.csv", "metrics.json", "model.pt"):
        assert (run / f).is_file(), f
    assert (runs / "results.csv").read_text().count("\n") == 2
    out = tmp_path / "tiny.onnx"
    run_cli("-m", "train", "export", str(run), "--out", str(out), "--model-name", "tiny",
            "--model-version", "0.0.1", "--cache", str(cache))
    run_cli("-m", "train", "evaluate", str(out), "--data", str(data), "--split", "test",
            "--out", str(tmp_path / "eval"))
    ev = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert ev["scores"]["tracks"] == 3 and (tmp_path / "eval" / "confusion.png").is_file()
    assert "Per source" in (tmp_path / "eval" / "report.md").read_text()
    held = tmp_path / "held"
    held.mkdir()
    files = []
    for g in GENRES:
        f = held / f"{g}.wav"
        sf.write(f, synth(g, 99), SR)
        files.append(str(f))
    proc = run_cli("-m", "genre_infer", *files, "--model", str(out), "--format", "json")
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1 and doc["errors"] == []
    assert doc["model"]["name"] == "tiny"
    got = {Path(r["file"]).stem: r["genre"] for r in doc["results"]}
    assert got == {g: g for g in GENRES}, got
    for r in doc["results"]:
        assert {"confidence", "probabilities", "timeline", "sections"} <= set(r)
