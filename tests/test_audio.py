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
    f.write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(500))
    with pytest.raises(FFmpegMissingError, match="needs ffmpeg, which is not installed"):
        audio.load(f, 16000)
    sf.write(tmp_path / "x.wav", tone(16000, 1.0), 16000)
    f.write_bytes((tmp_path / "x.wav").read_bytes())  # a WAV misnamed: libsndfile reads the content
    assert len(audio.load(f, 16000)) == 16000


def test_a_missing_file_is_a_file_not_found_error_with_its_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError) as info:
        audio.load(missing, 16000)
    assert isinstance(info.value, AudioError) and info.value.filename == str(missing)
    assert str(info.value) == "no such file"  # the reason; the CLI puts the name before it
    os.symlink(tmp_path / "gone.wav", tmp_path / "link.wav")
    with pytest.raises(FileNotFoundError, match="broken symbolic link"):
        audio.load(tmp_path / "link.wav", 16000)
    import pickle

    copy = pickle.loads(pickle.dumps(info.value))  # crosses process boundaries intact
    assert type(copy) is type(info.value) and copy.filename == str(missing) and str(copy) == "no such file"


def test_urls_are_not_paths(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="URLs are not supported; download the file first") as info:
        audio.load("https://example.com/song.mp3", 16000)
    assert not isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(("head", "what"), [
    (b"\x89PNG\r\n\x1a\n" + bytes(50), "a PNG image"), (b"\xff\xd8\xff\xe0" + bytes(50), "a JPEG image"),
    (b"%PDF-1.7\n", "a PDF document"), (b"PK\x03\x04" + bytes(30), "a ZIP archive"),
    ("Verse one, la la l\u00e4".encode()[:-1], "text"),  # a character cut by the read
    (b"RIFF\x24\x08\x00\x00WAVEfmt ", None), (b"ID3\x04\x00\x00\x00\x00\x00\x00", None),
    (b"fLaC\x00\x00\x00\x22", None), (b"OggS\x00\x02", None), (b"\xff\xfb\x90\x64" + bytes(40), None),
    (b"BM" + b"\x12" * 40, None),
])
def test_files_that_are_certainly_not_audio_are_named(head: bytes, what: str | None) -> None:
    assert audio.not_audio(head) == what


def test_pipes_are_copied_to_be_read_again(audio_dir: Path) -> None:
    import threading

    r, w = os.pipe()
    data = (audio_dir / "low.wav").read_bytes()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            f.write(data)

    t = threading.Thread(target=feed)
    t.start()
    try:
        with audio.seekable_copy(f"/dev/fd/{r}") as copy:
            assert audio.is_regular_file(copy) and Path(copy).read_bytes() == data
            y = audio.load(copy, 16000)
        assert not Path(copy).exists()
    finally:
        t.join(10)
        os.close(r)
    assert abs(len(y) / 16000 - 6.0) < 0.01
    with audio.seekable_copy(audio_dir / "low.wav") as same:  # a regular file is read where it is
        assert same == audio_dir / "low.wav"


@pytest.mark.skipif(not audio.ffmpeg_available(), reason="ffmpeg is not installed")
def test_ffmpeg_decodes_what_libsndfile_cannot(tmp_path: Path) -> None:
    import subprocess

    sf.write(tmp_path / "x.wav", tone(22050, 2.0), 22050)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(tmp_path / "x.wav"), str(tmp_path / "x.m4a")], check=True)
    y = audio.load(tmp_path / "x.m4a", 16000)
    assert abs(len(y) / 16000 - 2.0) < 0.1
