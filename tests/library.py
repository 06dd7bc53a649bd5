"""A small music library for the Ray tests: 200 generated files (3 s each), a few of them bad,
the CLI's JSONL for them, and helpers to watch Ray's worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from signals import noise, rhythm, tone

SR = 22050
REPO = Path(__file__).resolve().parents[1]
#: Files that cannot be classified (empty, not audio, too short, silent, cut short).
BAD = ("bad/empty.wav", "bad/not-audio.mp3", "bad/short.wav", "bad/silent.flac", "bad/truncated.flac")
N_FILES = 200


def make_library(root: Path, seconds: float = 3.0) -> list[Path]:
    """Write :data:`N_FILES` audio files under ``root`` (in nested folders, several formats) and
    return them sorted."""
    good = N_FILES - len(BAD)
    for i in range(good):
        kind = i % 3
        y = (tone(SR, seconds, 100.0 + 7 * i) if kind == 0 else noise(SR, seconds, seed=i) if kind == 1
             else rhythm(SR, seconds, bpm=80.0 + i % 60, seed=i))
        ext = ".flac" if i % 10 == 3 else ".ogg" if i % 25 == 7 else ".wav"
        path = root / f"album{i // 50}" / f"track{i:03d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, y, SR)
    bad = root / "bad"
    bad.mkdir(parents=True, exist_ok=True)
    (bad / "empty.wav").write_bytes(b"")
    (bad / "not-audio.mp3").write_text("these are not the bytes of a song\n" * 20)
    sf.write(bad / "short.wav", tone(SR, 0.4), SR)
    sf.write(bad / "silent.flac", np.zeros(int(SR * seconds), np.float32), SR)
    sf.write(bad / "truncated.flac", noise(SR, seconds), SR)
    with open(bad / "truncated.flac", "r+b") as f:
        f.truncate(60)
    (root / "cover.jpg").write_bytes(b"\xff\xd8 not audio, and not picked up")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".jpg")
    assert len(files) == N_FILES
    return files


def cli_records(root: Path, out: Path, expect: int = 1) -> dict[str, dict]:
    """``genre-infer ROOT --format jsonl --jobs 2``: the records by file (``expect``: its exit code)."""
    r = subprocess.run([sys.executable, "-m", "genre_infer", str(root), "-f", "jsonl", "-o", str(out), "-q",
                        "-j", "2"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == expect, r.stderr  # 1: the bad files fail, the others are classified
    return {rec["file"]: rec for rec in map(json.loads, out.read_text().splitlines())}


def ray_processes(title: str) -> dict[int, str]:
    """Processes whose title (``/proc/PID/cmdline``, which Ray sets) starts with ``ray::title``."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if cmd.startswith(f"ray::{title}"):
            found[int(pid)] = cmd
    return found


def wait_for(predicate, timeout: float, what: str, step: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)


def parquet_files(dest: Path) -> list[Path]:
    return sorted(p for p in dest.rglob("*.parquet") if not p.name.startswith((".", "_")))


def read_rows(dest: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(dest).to_pylist()


def check_rows(rows: list[dict], cli: dict[str, dict]) -> None:
    """Every file once, and each row's record equal to the CLI's."""
    from genre_infer.cluster import record

    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)), "duplicated rows"
    assert sorted(paths) == sorted(cli), "missing or unexpected rows"
    for row in rows:
        assert record(row) == cli[row["path"]], row["path"]


# The two fixtures the cluster test modules share (imported there by name; module-scoped, so each
# module makes its own library once).
@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The :func:`make_library` tree."""
    root = tmp_path_factory.mktemp("library")
    make_library(root)
    return root


@pytest.fixture(scope="module")
def cli(library: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The CLI's JSONL records of :func:`library`, by path (:func:`cli_records`)."""
    return cli_records(library, tmp_path_factory.mktemp("cli") / "out.jsonl")
