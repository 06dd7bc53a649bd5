"""Issue 7: bad input never crashes genre-infer, and nothing is lost.

Every fixture is generated here (tones, noise, bytes); no real music. What
test_cli.py / test_audio.py / test_api.py / test_model.py already cover is not
repeated: this file adds a large mixed batch in every machine-readable format,
unreadable files, sample rates, channel counts, sample formats, an hour-long
file, awkward file names, model refusals at the command line, and odd signals
as files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from conftest import build_toy_model
from genre_infer import AudioError, Classifier, load_model
from genre_infer.cli import main
from genre_infer.constants import METADATA_FORMAT_VERSION
from genre_infer.features import FeatureSpec
from genre_infer.model import ModelInfo
from signals import noise, tone

REPO = Path(__file__).resolve().parents[1]
PREFIX = "genre-infer: error: "


def cli(*args: object) -> "object":
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def sine(sr: int, seconds: float, freq: float, amp: float = 0.5) -> np.ndarray:
    """A pure sine (no harmonics, so nothing aliases at low rates)."""
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def assert_well_formed(r: object) -> None:
    """Probabilities finite and summing to 1, per song and per second; sections cover the song."""
    assert np.all(np.isfinite(r.probabilities)) and abs(float(r.probabilities.sum()) - 1) < 1e-4
    assert np.all(np.isfinite(r.timeline_probabilities))
    np.testing.assert_allclose(r.timeline_probabilities.sum(axis=1), 1, atol=1e-4)
    assert len(r.timeline) == math.ceil(r.duration - 1e-9)
    assert r.sections[0].start == 0 and r.sections[-1].end == pytest.approx(r.duration)


@pytest.fixture(scope="module")
def clf(toy_model: Path) -> Classifier:
    return load_model(toy_model, device="cpu")


# --------------------------------------------------------------------------------------------
# 1. A batch of 1,000 inputs with bad ones mixed in
# --------------------------------------------------------------------------------------------


@dataclass
class Batch:
    args: list[str]  #: the 1,000 command-line arguments, in order (5 good files given twice)
    order: list[str] = field(default_factory=list)  #: distinct inputs in first-seen order
    genre: dict[str, str] = field(default_factory=dict)  #: good file -> expected genre
    error: dict[str, str] = field(default_factory=dict)  #: bad input -> expected start of its message

    @property
    def good(self) -> list[str]:
        return [p for p in self.order if p in self.genre]

    @property
    def bad(self) -> list[str]:
        return [p for p in self.order if p in self.error]

    @property
    def summary(self) -> str:
        n = len(self.order)
        return f"genre-infer: classified {n - len(self.bad)} of {n} files; {len(self.bad)} failed"


N_GOOD, N_DUPLICATES = 944, 5


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Batch:
    d = tmp_path_factory.mktemp("batch")
    sources = []  # (file, expected genre): tiny files, copied many times
    for name, y, sr, genre in [
        ("src_low1.wav", tone(16000, 1.0, 110.0), 16000, "low"),
        ("src_high.wav", noise(22050, 1.5), 22050, "high"),
        ("src_low2.wav", tone(16000, 2.0, 150.0), 16000, "low"),
    ]:
        sf.write(d / name, y, sr, subtype="PCM_16")
        sources.append((d / name, genre))
    good = []
    genre = {}
    for i in range(N_GOOD):
        src, g = sources[i % len(sources)]
        p = d / f"good{i:04d}.wav"
        shutil.copyfile(src, p)
        good.append(str(p))
        genre[str(p)] = g

    rng = np.random.default_rng(7)
    wav = (d / "src_low2.wav").read_bytes()
    error: dict[str, str] = {}
    for i in range(8):
        p = d / f"empty{i}.wav"
        p.write_bytes(b"")
        error[str(p)] = "empty file (0 bytes)"
        p = d / f"random{i}.mp3"
        p.write_bytes(rng.bytes(int(rng.integers(500, 40000))))
        error[str(p)] = "cannot decode audio ("
        p = d / f"cut_header{i}.wav"
        p.write_bytes(wav[: 8 + 4 * i])  # stops inside the RIFF header
        error[str(p)] = "cannot decode audio ("
        p = d / f"cut_data{i}.wav"
        p.write_bytes(wav[: 44 + 2 * (2000 + 1000 * i)])  # header says 2 s, 0.12-0.56 s of samples remain
        error[str(p)] = "too short ("
        p = d / f"broken{i}.wav"
        os.symlink(d / f"gone{i}.wav", p)
        error[str(p)] = "broken symbolic link"
    sf.write(d / "src.mp3", tone(16000, 2.0, 110.0), 16000, format="MP3")
    mp3 = (d / "src.mp3").read_bytes()
    for i in range(3):  # cut MP3s: libmpg123 prints its own warnings for these on fd 2
        p = d / f"cut_mp3_{i}.mp3"
        p.write_bytes(mp3[: 200 + 50 * i])
        error[str(p)] = "cannot decode audio ("
        p = d / f"cut_mp3_long{i}.mp3"
        p.write_bytes(mp3[: len(mp3) // 3 + 10 * i])
        error[str(p)] = "too short ("
    for i in range(5):
        p = d / f"folder{i}.mp3"
        p.mkdir()
        error[str(p)] = "no audio files found in this folder"

    bad = list(error)
    is_bad = np.zeros(N_GOOD + len(bad), dtype=bool)
    is_bad[rng.choice(len(is_bad), size=len(bad), replace=False)] = True
    g_iter, b_iter = iter(good), iter(bad)
    order = [next(b_iter) if x else next(g_iter) for x in is_bad]
    args = list(order)
    # the same file given again, after its first appearance (the first 500 good files come
    # before argument 560; the repeats go among the last 100 arguments)
    for j, k in enumerate(rng.choice(500, size=N_DUPLICATES, replace=False)):
        args.insert(len(args) - 20 * j, good[int(k)])
    assert len(args) == 1000 and len(set(args)) == len(order) == 995 and len(error) == 51
    return Batch(args=args, order=order, genre=genre, error=error)


def check_stderr(stderr: str, b: Batch) -> None:
    lines = stderr.splitlines()
    assert "Traceback" not in stderr
    assert lines[-1] == b.summary, lines[-3:]
    errors = lines[:-1]
    assert len(errors) == len(b.bad), errors[:5]  # one line per bad input, nothing else
    for line, p in zip(errors, b.bad):
        assert line.startswith(f"{PREFIX}{p}: {b.error[p]}"), (line, b.error[p])


def check_jsonl(stdout: str, b: Batch) -> None:
    lines = stdout.splitlines()
    assert len(lines) == len(b.order)
    docs = [json.loads(line) for line in lines]  # each line parses on its own
    assert [x["file"] for x in docs] == b.order  # every input, once, in input order
    for x in docs:
        if x["file"] in b.genre:
            assert x["genre"] == b.genre[x["file"]] and "error" not in x, x["file"]
            assert abs(sum(x["probabilities"].values()) - 1) < 1e-3
        else:
            assert set(x) == {"schema_version", "file", "error"}
            assert x["error"].startswith(b.error[x["file"]]), x


def run_process(*args: object) -> subprocess.CompletedProcess:
    """``python -m genre_infer`` in a real process: what libsndfile/libmpg123 print on file
    descriptor 2 is seen too (CliRunner cannot see it).

    One BLAS thread: on a small machine OpenBLAS's pool fights onnxruntime's over the many tiny
    matrix products of 1,000 short files and the run gets about ten times slower; that is
    speed, not what this batch is about.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "genre_infer", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def test_batch_jsonl(toy_model: Path, batch: Batch) -> None:
    r = run_process(*batch.args, "--model", toy_model, "-f", "jsonl")
    assert r.returncode == 1
    check_jsonl(r.stdout, batch)
    check_stderr(r.stderr, batch)


def test_batch_csv(toy_model: Path, batch: Batch) -> None:
    r = run_process(*batch.args, "--model", toy_model, "-f", "csv")
    assert r.returncode == 1
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["file", "row", "start", "end", "genre", "confidence", "low", "high"]
    assert all(len(row) == 8 for row in rows)
    songs = [row for row in rows[1:] if row[1] == "song"]
    assert [row[0] for row in songs] == batch.good
    assert [row[4] for row in songs] == [batch.genre[p] for p in batch.good]
    seconds = [row for row in rows[1:] if row[1] == "second"]
    expected_seconds = sum(math.ceil(float(row[3]) - 1e-9) for row in songs)
    assert len(seconds) == expected_seconds and len(rows) == 1 + len(songs) + expected_seconds
    assert all(abs(float(row[6]) + float(row[7]) - 1) < 1e-3 for row in rows[1:])
    check_stderr(r.stderr, batch)


def test_batch_json_to_a_file(toy_model: Path, batch: Batch, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "out.json"
    r = run_process(*batch.args, "--model", toy_model, "-f", "json", "-o", out)
    assert r.returncode == 1 and r.stdout == ""
    assert sorted(os.listdir(out_dir)) == ["out.json"]  # no temporary file left behind
    doc = json.loads(out.read_text(encoding="utf-8"))  # complete: the whole document parses
    assert doc["schema_version"] == 1 and doc["model"] == {"name": "toy", "version": "1.0"}
    assert [x["file"] for x in doc["results"]] == batch.good
    assert [x["genre"] for x in doc["results"]] == [batch.genre[p] for p in batch.good]
    assert [x["file"] for x in doc["errors"]] == batch.bad
    assert all(x["error"].startswith(batch.error[x["file"]]) for x in doc["errors"])
    check_stderr(r.stderr, batch)


def test_batch_with_two_worker_processes(toy_model: Path, batch: Batch) -> None:
    r = run_process(*batch.args, "--model", toy_model, "-f", "jsonl", "--jobs", "2")
    assert r.returncode == 1
    check_jsonl(r.stdout, batch)
    check_stderr(r.stderr, batch)


# --------------------------------------------------------------------------------------------
# 2. Files that cannot be read
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: chmod 000 does not stop root from reading the file "
                           "(the monkeypatched tests below cover the same path as root)")
def test_unreadable_file_without_root(toy_model: Path, clf: Classifier, tmp_path: Path) -> None:
    locked = tmp_path / "locked.wav"
    sf.write(locked, tone(16000, 2.0, 110.0), 16000)
    sf.write(tmp_path / "ok.wav", tone(16000, 2.0, 110.0), 16000)
    locked.chmod(0)
    try:
        with pytest.raises(AudioError, match="^permission denied$"):
            clf.classify(locked)
        r = cli(locked, tmp_path / "ok.wav", "--model", toy_model, "-f", "jsonl")
    finally:
        locked.chmod(0o644)
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"{PREFIX}{locked}: permission denied",
                                     "genre-infer: classified 1 of 2 files; 1 failed"]
    assert json.loads(r.stdout.splitlines()[1])["genre"] == "low"


@pytest.fixture
def open_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file that os.open refuses with EACCES even for root (as on NFS with root squash)."""
    locked = tmp_path / "locked.wav"
    sf.write(locked, tone(16000, 2.0, 110.0), 16000)
    real_open = os.open

    def fake_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fspath(path) in (str(locked), os.fsencode(locked)):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    return locked


def test_permission_error_is_our_audio_error(clf: Classifier, open_refused: Path) -> None:
    with pytest.raises(AudioError, match="^permission denied$"):
        clf.classify(open_refused)


def test_permission_error_gives_one_line_and_the_batch_goes_on(
    toy_model: Path, open_refused: Path, tmp_path: Path
) -> None:
    sf.write(tmp_path / "after.wav", noise(16000, 2.0), 16000)
    r = cli(open_refused, tmp_path / "after.wav", "--model", toy_model, "-f", "jsonl")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"{PREFIX}{open_refused}: permission denied",
                                     "genre-infer: classified 1 of 2 files; 1 failed"]
    first, second = (json.loads(line) for line in r.stdout.splitlines())
    assert first == {"schema_version": 1, "file": str(open_refused), "error": "permission denied"}
    assert second["file"] == str(tmp_path / "after.wav") and second["genre"] == "high"


# --------------------------------------------------------------------------------------------
# 3-5. Sample rates, channel counts, sample formats in files
# --------------------------------------------------------------------------------------------

RATES = [8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000]


@pytest.mark.parametrize("fmt,sr", [("wav", sr) for sr in RATES]
                         + [("flac", sr) for sr in (8000, 44100, 96000, 192000)])
def test_sample_rates(clf: Classifier, tmp_path: Path, fmt: str, sr: int) -> None:
    f = tmp_path / f"tone{sr}.{fmt}"
    sf.write(f, tone(sr, 2.5, 110.0), sr)
    r = clf.classify(f)
    assert r.duration == pytest.approx(2.5, abs=1e-3)
    assert r.genre == "low" and len(r.timeline) == 3
    assert_well_formed(r)


@pytest.mark.parametrize("freq,genre", [(110.0, "low"), (2500.0, "high")])
def test_same_genre_at_8k_and_192k(clf: Classifier, tmp_path: Path, freq: float, genre: str) -> None:
    results = []
    for sr in (8000, 192000):
        sf.write(tmp_path / f"{sr}.wav", sine(sr, 3.0, freq), sr, subtype="FLOAT")
        results.append(clf.classify(tmp_path / f"{sr}.wav"))
    slow, fast = results
    assert slow.genre == fast.genre == genre
    np.testing.assert_allclose(slow.probabilities, fast.probabilities, atol=0.05)


@pytest.mark.parametrize("channels", range(1, 9))
def test_channels_identical_equal_mono(clf: Classifier, tmp_path: Path, channels: int) -> None:
    y = tone(16000, 3.0, 110.0) + noise(16000, 3.0, amp=0.2)
    sf.write(tmp_path / "mono.wav", y, 16000, subtype="FLOAT")
    sf.write(tmp_path / "multi.wav", np.tile(y[:, None], (1, channels)), 16000, subtype="FLOAT")
    assert sf.info(tmp_path / "multi.wav").channels == channels
    mono, multi = clf.classify(tmp_path / "mono.wav"), clf.classify(tmp_path / "multi.wav")
    np.testing.assert_allclose(multi.timeline_probabilities, mono.timeline_probabilities, atol=1e-5)
    assert multi.duration == mono.duration == pytest.approx(3.0)


@pytest.mark.parametrize("channels", [2, 5, 8])
def test_different_channels_equal_their_mono_mix(clf: Classifier, tmp_path: Path, channels: int) -> None:
    ys = np.stack([tone(22050, 3.0, 100.0 + 40 * c) if c % 2 else noise(22050, 3.0, seed=c)
                   for c in range(channels)], axis=1)
    sf.write(tmp_path / "multi.wav", ys, 22050, subtype="FLOAT")
    sf.write(tmp_path / "mix.wav", ys.mean(axis=1), 22050, subtype="FLOAT")
    multi, mix = clf.classify(tmp_path / "multi.wav"), clf.classify(tmp_path / "mix.wav")
    np.testing.assert_allclose(multi.timeline_probabilities, mix.timeline_probabilities, atol=1e-4)
    assert_well_formed(multi)


@pytest.mark.parametrize("subtype,atol", [
    ("PCM_U8", 1e-2), ("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-6), ("FLOAT", 0), ("DOUBLE", 0),
])
def test_sample_formats(clf: Classifier, tmp_path: Path, subtype: str, atol: float) -> None:
    y = tone(16000, 3.0, 110.0)
    f = tmp_path / f"{subtype}.wav"
    sf.write(f, y, 16000, subtype=subtype)
    assert sf.info(f).subtype == subtype
    from genre_infer import audio

    np.testing.assert_allclose(audio.load(f, 16000), y, atol=atol + 1e-7)  # scaled to [-1, 1]
    sf.write(tmp_path / "ref.wav", y, 16000, subtype="FLOAT")
    r, ref = clf.classify(f), clf.classify(tmp_path / "ref.wav")
    assert r.genre == "low" and r.duration == pytest.approx(3.0)
    np.testing.assert_allclose(r.timeline_probabilities, ref.timeline_probabilities, atol=max(atol, 1e-5) * 10)


# --------------------------------------------------------------------------------------------
# 6. An hour-long file: right duration and timeline, memory flat
# --------------------------------------------------------------------------------------------

_MEASURE = """
import json, resource, sys
from genre_infer import load_model
r = load_model(sys.argv[2], device="cpu", threads=1).classify(sys.argv[1])
print(json.dumps({"duration": r.duration, "rows": len(r.timeline),
                  "sections": [[s.genre, s.start, s.end] for s in r.sections],
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def _write_long(path: Path, minutes: int) -> None:
    """8 kHz mono PCM_16 written a minute at a time: a low tone, then (second half) a high sine."""
    sr = 8000
    low, high = tone(sr, 60.0, 110.0), sine(sr, 60.0, 2500.0)
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        for m in range(minutes):
            f.write(low if m < minutes // 2 else high)


def _measure(path: Path, model: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(model)], capture_output=True,
                       text=True, cwd=REPO, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.slow  # the project's marker; this one takes about 5 s (57 MB written, two processes)
def test_hour_long_file(toy_model: Path, tmp_path: Path) -> None:
    _write_long(tmp_path / "hour.wav", 60)
    _write_long(tmp_path / "short.wav", 3)
    assert (tmp_path / "hour.wav").stat().st_size == 44 + 3600 * 8000 * 2
    hour, short = _measure(tmp_path / "hour.wav", toy_model), _measure(tmp_path / "short.wav", toy_model)
    assert hour["duration"] == pytest.approx(3600.0, abs=1e-3) and hour["rows"] == 3600
    assert [s[0] for s in hour["sections"]] == ["low", "high"]
    assert hour["sections"][0][1] == 0 and hour["sections"][1][2] == pytest.approx(3600.0)
    assert abs(hour["sections"][0][2] - 1800) <= 2  # the change is found where it is
    assert short["duration"] == pytest.approx(180.0, abs=1e-3) and short["rows"] == 180
    growth_mb = (hour["peak_kb"] - short["peak_kb"]) / 1024
    assert growth_mb < 60, f"peak memory grew by {growth_mb:.0f} MB from 3 minutes to 1 hour"


# --------------------------------------------------------------------------------------------
# 7. File names
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "n" * 236 + ".wav",  # 240 bytes, near the usual 255-byte limit
    "Déjà vu — 日本語の曲 ♫ (live, take 2).flac",
    " leading and trailing spaces .wav",
])
def test_awkward_file_names(toy_model: Path, clf: Classifier, tmp_path: Path, name: str) -> None:
    f = tmp_path / name
    sf.write(f, tone(16000, 2.0, 110.0), 16000)
    assert clf.classify(f).genre == "low"
    r = cli(f, "--model", toy_model, "-f", "jsonl")
    assert r.exit_code == 0 and r.stderr == ""
    doc = json.loads(r.stdout)
    assert doc["file"] == str(f) and doc["genre"] == "low"
    r = cli(f, "--model", toy_model, "-f", "csv")
    assert r.exit_code == 0 and list(csv.reader(io.StringIO(r.stdout)))[1][0] == str(f)


# --------------------------------------------------------------------------------------------
# 8. Bad models: refused at the command line, before any audio is read
# --------------------------------------------------------------------------------------------


def _not_onnx(p: Path) -> Path:
    p.write_bytes(b"\x08\x01this is not a protobuf" * 20)
    return p


def _newer(p: Path) -> Path:
    meta = ModelInfo("toy", "1", ("low", "high"), FeatureSpec(segment_frames=63)).to_metadata()
    meta["format_version"] = METADATA_FORMAT_VERSION + 1
    return build_toy_model(p, metadata=meta)


@pytest.mark.parametrize("make,message", [
    (_not_onnx, "not a loadable ONNX model"),
    (lambda p: build_toy_model(p, metadata=None), "not a genre-infer model (no metadata)"),
    (_newer, "is newer than this genre-infer understands"),
    (lambda p: build_toy_model(p, declared_frames=187), "input shape"),
], ids=["not-onnx", "no-metadata", "newer-format", "input-shape"])
def test_bad_model_refused_before_audio(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: object, message: str
) -> None:
    from genre_infer import audio

    model = make(tmp_path / "model.onnx")  # type: ignore[operator]
    opened: list[object] = []
    monkeypatch.setattr(audio, "stream", lambda *a, **k: opened.append(a) or iter(()))
    missing = tmp_path / "no-such-song.mp3"
    r = cli(missing, "--model", model, "-f", "jsonl")
    assert r.exit_code == 2 and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PREFIX}{model}: ") and message in lines[0], lines
    assert "no-such-song" not in r.stderr and "no such file" not in r.stderr
    assert opened == []


# --------------------------------------------------------------------------------------------
# 9. Odd signals as files, through the command line
# --------------------------------------------------------------------------------------------

SR16 = 16000
_T = np.arange(SR16 * 3) / SR16
SIGNALS = {
    # name: (samples, or (samples, channels); subtype; expected genre, start of the error, or None: either)
    "ten_ms": (tone(SR16, 0.01), "PCM_16", "too short (0.01 s"),
    "silence": (np.zeros(SR16 * 3, np.float32), "PCM_16", "silent"),
    "dc_only": (np.full(SR16 * 3, 0.5, np.float32), "PCM_16", "silent"),  # a DC offset is not signal
    "tone_with_dc_offset": (0.4 + 0.5 * tone(SR16, 3.0, 110.0), "PCM_16", "low"),
    "full_scale_square": (np.where(np.sin(2 * np.pi * 110 * _T + 0.1) >= 0, 1.0, -1.0), "PCM_16", "low"),
    "clipped_sine": (np.clip(4.0 * np.sin(2 * np.pi * 110 * _T), -1, 1), "PCM_16", "low"),
    "opposite_phase_stereo": (np.stack([tone(SR16, 3.0, 110.0), -tone(SR16, 3.0, 110.0)], axis=1), "FLOAT", None),
}


@pytest.mark.parametrize("name", list(SIGNALS))
def test_odd_signals_as_files(toy_model: Path, tmp_path: Path, name: str) -> None:
    y, subtype, expected = SIGNALS[name]
    f = tmp_path / f"{name}.wav"
    sf.write(f, np.asarray(y, dtype=np.float32), SR16, subtype=subtype)
    r = cli(f, "--model", toy_model, "-f", "jsonl")
    assert "Traceback" not in r.stderr and r.exit_code in (0, 1)
    (doc,) = (json.loads(line) for line in r.stdout.splitlines())
    if r.exit_code == 0:
        assert r.stderr == "" and "error" not in doc
        assert expected is None or doc["genre"] == expected, doc["genre"]
        probs = np.array(list(doc["probabilities"].values()))
        assert np.all(np.isfinite(probs)) and abs(probs.sum() - 1) < 1e-3
        assert doc["duration"] == pytest.approx(3.0)
    else:
        (line,) = r.stderr.splitlines()  # exactly one line
        assert line == f"{PREFIX}{f}: {doc['error']}"
        assert expected is None or doc["error"].startswith(expected), doc["error"]
        assert expected not in ("low", "high"), f"expected {expected}, got {doc['error']}"
