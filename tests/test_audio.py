"""Decoding files and arrays into mono float32 at the model's rate."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_infer import audio
from genre_infer.errors import AudioError, DecodeError, FFmpegMissingError
from signals import tone


@pytest.mark.parametrize("name", ["low.wav", "high.flac", "low.ogg", "high.mp3", "low.opus"])
def test_formats_decode_at_target_rate(audio_dir: Path, name: str) -> None:
    y = audio.load(audio_dir / name, 16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) / 16000 - 6.0) < 0.1  # mp3/opus add a few ms of padding
    assert 0.05 < np.abs(y).max() <= 1.01


def test_stereo_file_becomes_mono(audio_dir: Path) -> None:
    y = audio.load(audio_dir / "stereo44k.wav", 16000)
    assert y.ndim == 1 and abs(len(y) - 5 * 16000) <= 1


def test_resampling_keeps_pitch() -> None:
    y = audio.from_array(np.sin(2 * np.pi * 1000 * np.arange(44100) / 44100), 44100, 16000)
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 1000) < 2


@pytest.mark.parametrize("dtype,scale", [(np.int16, 32767), (np.int32, 2**31 - 1), (np.float64, 1.0)])
def test_array_dtypes_are_scaled(dtype: type, scale: float) -> None:
    y = tone(16000, 1.0)
    converted = audio.from_array((y * scale).astype(dtype), 16000, 16000)
    np.testing.assert_allclose(converted, y, atol=1e-4)


def test_array_layouts() -> None:
    y = tone(16000, 1.0)
    stereo_cs = np.stack([y, y])           # (channels, samples), librosa's layout
    stereo_sc = stereo_cs.T                 # (samples, channels), soundfile's layout
    for arr in (stereo_cs, stereo_sc):
        np.testing.assert_allclose(audio.from_array(arr, 16000, 16000), y, atol=1e-6)
    six = np.tile(y, (6, 1))
    assert audio.from_array(six, 16000, 16000).shape == y.shape


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan, 0.1]), np.array([np.inf, 0.0])])
def test_non_finite_arrays_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(AudioError, match="NaN or infinite"):
        audio.from_array(bad, 16000, 16000)


@pytest.mark.parametrize("bad_sr", [0, -8000, 1.5, None])
def test_bad_sample_rates_are_refused(bad_sr: object) -> None:
    with pytest.raises(AudioError, match="sample rate"):
        audio.from_array(np.zeros(100, np.float32), bad_sr, 16000)  # type: ignore[arg-type]


def test_missing_empty_and_garbage_files(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        audio.load(tmp_path / "nope.wav", 16000)
    (tmp_path / "empty.mp3").write_bytes(b"")
    with pytest.raises(DecodeError, match="empty"):
        audio.load(tmp_path / "empty.mp3", 16000)
    (tmp_path / "junk.wav").write_bytes(os.urandom(4096))
    with pytest.raises(DecodeError, match="cannot decode"):
        audio.load(tmp_path / "junk.wav", 16000)
    (tmp_path / "dir.mp3").mkdir()
    with pytest.raises(AudioError, match="directory"):
        audio.load(tmp_path / "dir.mp3", 16000)


def test_m4a_without_ffmpeg_names_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio.shutil, "which", lambda name: None)
    f = tmp_path / "song.m4a"
    sf.write(tmp_path / "x.wav", tone(16000, 1.0), 16000)
    f.write_bytes((tmp_path / "x.wav").read_bytes())
    with pytest.raises(FFmpegMissingError, match="ffmpeg"):
        audio.load(f, 16000)


@pytest.mark.skipif(not audio.ffmpeg_available(), reason="ffmpeg is not installed")
def test_ffmpeg_decodes_what_libsndfile_cannot(tmp_path: Path) -> None:
    import subprocess

    sf.write(tmp_path / "x.wav", tone(22050, 2.0), 22050)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "x.wav"), str(tmp_path / "x.m4a")], check=True)
    y = audio.load(tmp_path / "x.m4a", 16000)
    assert abs(len(y) / 16000 - 2.0) < 0.1
