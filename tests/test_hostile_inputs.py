"""Inputs someone else made: one bad file is that file's one error line, never the batch's end.

Headers that lie about their rate, absurd rates from callers, paths longer than the system
allows, long digital silence for a loudness-normalising model, file names matplotlib would
read as mathtext.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import build_toy_model
from genre_infer import AudioError, SilentError, load_model
from genre_infer.features import FeatureSpec
from genre_infer.model import ModelInfo
from signals import tone

REPO = Path(__file__).resolve().parents[1]


def cli(*args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genre_infer", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)


def _wav_header(path: Path, sr: int, n_samples: int) -> None:
    """A 16-bit mono WAV whose header claims ``sr`` Hz, written by hand (libsndfile may refuse)."""
    data = (tone(16000, n_samples / 16000, 110.0) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, sr, sr * 2, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", len(data)) + data)


# --------------------------------------------------------------------------------------------
# Rates
# --------------------------------------------------------------------------------------------

_PEAK = """
import json, sys
from genre_infer import load_model, GenreInferError

def peak_kb():  # this process's own high-water mark (ru_maxrss can carry the parent's over exec)
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except OSError:
        return None

try:
    load_model(sys.argv[2], device="cpu", threads=1).classify(sys.argv[1])
    print(json.dumps({"error": None}))
except GenreInferError as exc:
    print(json.dumps({"error": str(exc), "peak_kb": peak_kb()}))
"""


def test_a_header_claiming_1_hz_is_refused_at_once_with_flat_memory(toy_model: Path, tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.wav"
    _wav_header(bomb, 1, 3000)  # 6 KB that claim 50 minutes
    assert bomb.stat().st_size < 7000
    r = subprocess.run([sys.executable, "-c", _PEAK, str(bomb), str(toy_model)], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    out = json.loads(r.stdout)
    assert out["error"] and "1 Hz" in out["error"], out
    if out["peak_kb"] is not None:  # Linux
        assert out["peak_kb"] < 400 * 1024, f"peak {out['peak_kb'] / 1024:.0f} MB"
    ok = tmp_path / "ok.wav"
    _wav_header(ok, 16000, 3 * 16000)
    r = cli(bomb, ok, "--model", toy_model, "-f", "json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    assert [x["genre"] for x in doc["results"]] == ["low"] and "1 Hz" in doc["errors"][0]["error"]


@pytest.mark.parametrize("sr", [10**18, 1, 999, 768001, 2**63])
def test_absurd_array_rates_are_refused_at_once(toy_model: Path, sr: int) -> None:
    code = ("import numpy as np, sys\nfrom genre_infer import load_model, AudioError\n"
            f"clf = load_model({str(toy_model)!r}, device='cpu')\n"
            f"try:\n    clf.classify(np.zeros(48000, np.float32) + 0.1, sr={sr})\n"
            "except AudioError as e:\n    print('refused:', e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.stdout.startswith("refused:") and "Hz" in r.stdout, r.stdout + r.stderr


def test_rates_at_the_limits_are_accepted(clf_toy) -> None:  # type: ignore[no-untyped-def]
    assert clf_toy.classify(tone(1000, 3.0, 110.0), sr=1000).genre == "low"


@pytest.fixture(scope="module")
def clf_toy(toy_model: Path):  # type: ignore[no-untyped-def]
    return load_model(toy_model, device="cpu")


def test_decode_blocks_are_bounded_by_channels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from genre_infer import audio

    y = np.tile(tone(16000, 2.0, 110.0)[:, None], (1, 8))
    sf.write(tmp_path / "eight.wav", y, 16000, subtype="FLOAT")
    whole = audio.load(tmp_path / "eight.wav", 16000)
    monkeypatch.setattr(audio, "MAX_DECODE_BLOCK_SAMPLES", 8000)
    blocks = list(audio.stream(tmp_path / "eight.wav", 16000))
    assert max(len(b) for b in blocks) <= 1000 and len(blocks) >= 32
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda d: d / ("n" * 300 + ".wav"),                               # one name over NAME_MAX
    lambda d: d / "/".join(["d" * 200] * 25) / "x.wav",               # the whole path over PATH_MAX
], ids=["name", "path"])
def test_overlong_paths_are_audio_errors(clf_toy, tmp_path: Path, make, audio_dir: Path) -> None:  # type: ignore[no-untyped-def]
    path = make(tmp_path)
    with pytest.raises(AudioError, match="too long"):
        clf_toy.classify(path)
    r = cli(path, audio_dir / "low.wav", "--model", clf_toy.model.path, "-f", "jsonl")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert "too long" in lines[0]["error"] and lines[1]["genre"] == "low"


def test_a_nul_in_a_path_is_an_audio_error(clf_toy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AudioError, match="file name"):
        clf_toy.classify("a\0b.wav")


# --------------------------------------------------------------------------------------------
# Digital silence for a model that normalises loudness
# --------------------------------------------------------------------------------------------


def test_long_digital_silence_is_silent_for_a_levelling_model(tmp_path: Path, audio_dir: Path) -> None:
    meta = ModelInfo("toy-level", "1.0", ("low", "high"), FeatureSpec(segment_frames=63, level_db=-20.0)).to_metadata()
    model = build_toy_model(tmp_path / "level.onnx", metadata=meta)
    quiet = tmp_path / "quiet.flac"
    sf.write(quiet, np.zeros(8000 * 660, np.int16), 8000, subtype="PCM_16")  # 11 minutes, a few KB
    assert quiet.stat().st_size < 100_000
    with pytest.raises(SilentError):
        load_model(model, device="cpu").classify(quiet)
    r = cli(quiet, audio_dir / "low.wav", "--model", model, "-f", "json")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    assert [x["genre"] for x in doc["results"]] == ["low"] and "silent" in doc["errors"][0]["error"]


# --------------------------------------------------------------------------------------------
# Names matplotlib reads as mathtext
# --------------------------------------------------------------------------------------------


def test_mathtext_names_with_plot(toy_model: Path, tmp_path: Path, audio_dir: Path) -> None:
    pytest.importorskip("matplotlib")
    src = tmp_path / "src"
    src.mkdir()
    names = [r"$\frac{$.wav", "price $5 and $.wav", r"a_b^c $\undefined$.wav"]
    for n in names:
        sf.write(src / n, tone(16000, 3.0, 110.0), 16000)
    plots = tmp_path / "plots"
    r = cli(src, "--model", toy_model, "--plot", plots, "-f", "json", "-j", "1")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert len(json.loads(r.stdout)["results"]) == 3
    pngs = sorted(p.name for p in plots.iterdir())
    assert len(pngs) == 3 and all(p.endswith(".png") for p in pngs)
    assert all((plots / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    labels = ModelInfo("toy$", "1.0", ("$low", r"hi\gh$"), FeatureSpec(segment_frames=63)).to_metadata()
    model = build_toy_model(tmp_path / "math.onnx", metadata=labels)
    r = cli(src / names[0], "--model", model, "--plot", tmp_path / "one.svg")
    assert r.returncode == 0 and (tmp_path / "one.svg").read_text().count("svg") > 1, r.stderr
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]
