"""The Python versions and dependency floors pyproject.toml declares, installed and run.

Each case makes a throwaway virtual environment with one declared Python and installs the
package into it from a copy of the source: the oldest declared Python with every runtime
dependency pinned at its declared floor (``click>=8.1`` → ``click==8.1``), and every other
declared Python (but the one running the suite) with the newest releases. Then it runs what a
user runs: the command on a terminal (the progress bar's code), several files with
``--jobs 2``, the shipped model, the API, and reads the wheel's LICENSE.
The rest of the suite runs on the Python that runs pytest, with today's releases.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from terminal import run_on_pty, screen

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

tomllib = pytest.importorskip("tomllib")


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def declared_pythons() -> list[tuple[int, int]]:
    """The ``Programming Language :: Python :: 3.x`` classifiers, oldest first."""
    found = [re.fullmatch(r"Programming Language :: Python :: (\d+)\.(\d+)", c) for c in _project()["classifiers"]]
    return sorted((int(m.group(1)), int(m.group(2))) for m in found if m)


def floor_pins() -> list[str]:
    """Every runtime dependency at its declared floor: ``name>=X`` → ``name==X``."""
    pins = []
    for req in _project()["dependencies"]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", req.split(";")[0].strip())
        assert m, f"{req!r}: a runtime dependency needs a plain floor (name>=X) that this test can pin"
        pins.append(f"{m.group(1)}=={m.group(2)}")
    return pins


def find_python(version: tuple[int, int]) -> str | None:
    """An interpreter of ``version``: on PATH, or one that pyenv installed."""
    name = f"python{version[0]}.{version[1]}"
    candidates = [shutil.which(name)]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv.is_dir():
        candidates += [str(p / "bin" / name) for p in sorted(pyenv.glob(f"{version[0]}.{version[1]}.*"))]
    if sys.version_info[:2] == version:
        candidates.append(sys.executable)
    for c in candidates:  # a pyenv shim on PATH is there whether or not it can run this version
        if c and os.access(c, os.X_OK):
            r = subprocess.run([c, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.split() == [str(version[0]), str(version[1])]:
                return c
    return None


def _source_copy(dest: Path) -> Path:
    """What a source distribution holds (the package, the build files, the shipped model)."""
    dest.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(REPO / "genre_infer", dest / "genre_infer",
                    ignore=shutil.ignore_patterns("__pycache__", "*.onnx"))
    shutil.copytree(REPO / "exported", dest / "exported", ignore=shutil.ignore_patterns("*.md", "*.json"))
    return dest


def _install(python: str, tmp_path: Path, requirements: list[str]) -> Path:
    env_dir = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(env_dir)], check=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
           "--only-binary", ":all:"]
    r = subprocess.run([*pip, str(_source_copy(tmp_path / "src")), *requirements], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, f"pip install failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return env_dir / "bin"


def _check(bin_dir: Path, tmp_path: Path, toy_model: Path, audio_dir: Path) -> None:
    exe = str(bin_dir / "genre-infer")
    work = tmp_path / "work"
    work.mkdir()
    (work / "broken.mp3").write_bytes(b"\x00\x01garbage" * 100)
    files = [str(audio_dir / n) for n in ("low.wav", "high.flac", "high.mp3", "low.ogg")] + ["broken.mp3"]
    # on a terminal, where the progress bar is drawn (click.progressbar(hidden=...) crashed on click 8.1)
    rc, raw = run_on_pty([exe, *files, "--model", str(toy_model), "-j", "2"], cwd=work)
    shown = [line.rstrip() for line in screen(raw) if line.strip()]
    assert rc == 1 and "Traceback" not in raw, raw
    assert "classifying" in raw and shown[-1] == "genre-infer: classified 4 of 5 files; 1 failed", shown
    assert [line.split("  (")[0] for line in shown if "  (0:0" in line] == files[:4]
    r = subprocess.run([exe, str(audio_dir / "song.wav"), "-o", "out.json"], cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr  # the shipped model on this onnxruntime
    assert len(json.loads((work / "out.json").read_text())["results"][0]["probabilities"]) == 11  # GTZAN's ten genres and electronic
    licence = ("import importlib.metadata as m\n"
               "print(next(f for f in m.files('genre-infer') if f.name == 'LICENSE').read_text())")
    r = subprocess.run([str(bin_dir / "python"), "-c", licence], cwd=work, capture_output=True, text=True)
    assert r.returncode == 0 and "MIT License" in r.stdout and "Jordi Pons" in r.stdout, r.stderr
    r = subprocess.run([exe, "--version"], cwd=work, capture_output=True, text=True)
    assert r.returncode == 0 and "default model: " in r.stdout and "cannot be loaded" not in r.stdout, r.stdout
    api = ("import numpy as np, genre_infer as g\n"
           "clf = g.load_model(MODEL)\n"
           "y = np.sin(2 * np.pi * 110 * np.arange(3 * 16000) / 16000).astype(np.float32)\n"
           "assert clf.classify(y, sr=16000).genre == 'low'\n"
           "assert clf.classify(FILE).genre == 'high'\n"
           "try:\n    g.classify('missing.wav', model=clf)\nexcept FileNotFoundError as e:\n    print(e.filename)\n")
    api = api.replace("MODEL", repr(str(toy_model))).replace("FILE", repr(str(audio_dir / "high.mp3")))
    r = subprocess.run([str(bin_dir / "python"), "-c", api], cwd=work, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "missing.wav", r.stderr


def _cases() -> list:
    """The oldest declared Python with the floors; every other one but this (the suite's) with the newest."""
    pythons = declared_pythons()
    return [pytest.param(v, v == pythons[0], id=f"python{v[0]}.{v[1]}-" + ("floors" if v == pythons[0] else "newest"))
            for v in pythons if v == pythons[0] or v != sys.version_info[:2]]


def test_requires_python_is_the_oldest_classifier() -> None:
    oldest = declared_pythons()[0]
    assert _project()["requires-python"] == f">={oldest[0]}.{oldest[1]}"


@pytest.mark.parametrize(("version", "floors"), _cases())
def test_declared_python_installs_and_runs(version: tuple[int, int], floors: bool, toy_model: Path,
                                           audio_dir: Path, tmp_path: Path) -> None:
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version[0]}.{version[1]} here (PATH or pyenv): a declared version is untested")
    bin_dir = _install(python, tmp_path, floor_pins() if floors else [])
    if floors:
        listing = subprocess.run([str(bin_dir / "python"), "-m", "pip", "list", "--format", "json"],
                                 capture_output=True, text=True, check=True).stdout
        installed = {d["name"].lower(): d["version"] for d in json.loads(listing)}
        for pin in floor_pins():  # "1.17" is installed as "1.17.0"
            name, want = pin.split("==")
            assert installed[name.lower()].startswith(want), (pin, installed[name.lower()])
    _check(bin_dir, tmp_path, toy_model, audio_dir)
