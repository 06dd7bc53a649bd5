"""Decode audio files and arrays into mono float32 at the model's sample rate.

libsndfile (through :mod:`soundfile`, which librosa installs) decodes wav, flac,
ogg/vorbis, opus and mp3. Anything else (m4a, aac, webm, ...) goes through the
``ffmpeg`` program when it is installed. Resampling uses soxr, the same
resampler ``librosa.load`` uses by default, so training and inference agree.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

from .constants import (
    AUDIO_EXTENSIONS, DECODE_BLOCK_S, MAX_DECODE_BLOCK_SAMPLES, MAX_INPUT_SR, MIN_INPUT_SR, SNDFILE_EXTENSIONS,
)
from .errors import AudioError, DecodeError, FFmpegMissingError, MissingFileError

__all__ = ["load", "stream", "to_mono", "resample", "from_array", "ffmpeg_available", "is_regular_file",
           "seekable_copy", "spool", "block_resampler", "os_problem"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
#: What an ffmpeg-less machine is told to install.
FFMPEG_HINT = "install it, e.g. `apt install ffmpeg`, `brew install ffmpeg` or `winget install ffmpeg`"


def ffmpeg_available() -> bool:
    """Return whether an ``ffmpeg`` executable is on ``PATH``."""
    return shutil.which("ffmpeg") is not None


def os_problem(exc: OSError | ValueError) -> str:
    """What a user reads when a path cannot even be looked at."""
    if isinstance(exc, ValueError):
        return f"not a usable file name ({exc})"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long for this system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    return f"cannot open ({exc.strerror or type(exc).__name__})"


def check_sample_rate(sr: Any) -> int:
    """``sr`` as an int when it is a plausible audio sample rate; else :class:`AudioError`."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise AudioError(f"sample rate must be a positive integer, got {sr!r}")
    if not MIN_INPUT_SR <= sr <= MAX_INPUT_SR:
        raise AudioError(f"sample rate {int(sr)} Hz is not audio (accepted: {MIN_INPUT_SR}..{MAX_INPUT_SR} Hz)")
    return int(sr)


def _check_path(path: Path, raw: str) -> None:
    if not raw:  # Path("") is the current folder
        raise MissingFileError(raw, "empty file name")
    try:
        os.stat(path)
    except FileNotFoundError:
        pass  # said below (missing, or a broken symbolic link)
    except NotADirectoryError:
        raise AudioError("no such file (a part of the path is not a folder)") from None
    except (OSError, ValueError) as exc:
        raise AudioError(os_problem(exc)) from None
    if path.is_dir():
        raise AudioError("is a directory, not an audio file")
    if not path.exists():
        if path.is_symlink():
            raise MissingFileError(raw, "broken symbolic link")
        if _URL.match(raw):  # before Path() made "https://" into "https:/"
            raise AudioError("URLs are not supported; download the file first")
        raise MissingFileError(raw)
    if not os.access(path, os.R_OK):
        raise AudioError("permission denied")
    if is_regular_file(path) and path.stat().st_size == 0:  # a pipe's size says nothing
        raise DecodeError("empty file (0 bytes)")


def is_regular_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a regular file (after symbolic links), not a pipe, device or socket."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def spool(source: IO[bytes], folder: str | os.PathLike[str], name: str = "input") -> Path:
    """Copy a stream (standard input, a pipe) into a file in ``folder``, so that it can be read
    more than once and seeked; memory stays flat whatever its length."""
    target = Path(folder) / name
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    return target


@contextlib.contextmanager
def seekable_copy(path: str | os.PathLike[str]) -> Iterator[str | os.PathLike[str]]:
    """``path`` itself when it is a regular file (or missing: the decoder says so); otherwise
    (a pipe, ``/dev/stdin``, process substitution) a temporary copy of what it holds."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except (OSError, ValueError):  # missing, or a name that cannot be looked at: the decoder says which
        mode = None
    if mode is None or stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        yield path
        return
    try:
        f = open(p, "rb")
    except PermissionError:
        raise AudioError("permission denied") from None
    except OSError as exc:
        raise AudioError(f"cannot open ({exc.strerror or type(exc).__name__})") from None
    with f, tempfile.TemporaryDirectory(prefix="genre-infer-") as tmp:
        yield spool(f, tmp)


#: Leading bytes of files people mistake for audio, and what to call them.
_NOT_AUDIO = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"\x7fELF", "a program"),
    (b"\x1f\x8b", "a gzip archive"), (b"BM", "a BMP image"), (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)
#: Leading bytes (at an offset) of containers ffmpeg decodes and libsndfile does not.
_FFMPEG_ONLY = ((4, b"ftyp", "MP4/M4A"), (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
                (0, b"\x30\x26\xb2\x75", "WMA/ASF"), (0, b"\xff\xf1", "AAC"), (0, b"\xff\xf9", "AAC"))


def _head(path: Path, n: int = 512) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(n)
    except OSError:
        return b""


def not_audio(head: bytes) -> str | None:
    """What a file that is certainly not audio holds (``"a PNG image"``, ``"text"``), from its
    first bytes; ``None`` when it may be audio."""
    for magic, what in _NOT_AUDIO:
        if head.startswith(magic):
            if magic == b"BM" and len(head) >= 14 and head[6:10] != b"\x00" * 4:
                continue  # "BM" alone is too common a start; a BMP has four reserved zero bytes
            return what
    if head and b"\x00" not in head:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError as exc:  # text only when the error is a character cut at the end
            text = head[: exc.start].decode("utf-8") if exc.start >= len(head) - 3 else ""
        if text and sum(c.isprintable() or c in "\t\r\n" for c in text) >= 0.95 * len(text):
            return "text"
    return None


def _ffmpeg_container(head: bytes) -> str | None:
    for offset, magic, what in _FFMPEG_ONLY:
        if head[offset : offset + len(magic)] == magic:
            return what
    return None


def _explain(path: Path, exc: DecodeError) -> DecodeError:
    """The error to raise for a file no decoder read: what it is when that is clear, that it
    needs ffmpeg when only ffmpeg could read it, else the decoder's own reason."""
    head = _head(path)
    what = not_audio(head)
    if what is not None:
        return DecodeError(f"not an audio file ({what})")
    if not ffmpeg_available():
        fmt = _ffmpeg_container(head)
        suffix = path.suffix.lower()
        if fmt is not None or (suffix in AUDIO_EXTENSIONS and suffix not in SNDFILE_EXTENSIONS):
            return FFmpegMissingError(
                f"decoding {fmt + ' audio' if fmt else suffix} needs ffmpeg, which is not installed ({FFMPEG_HINT})")
        if suffix not in SNDFILE_EXTENSIONS:
            return FFmpegMissingError(f"{exc}; ffmpeg, which is not installed, may read it ({FFMPEG_HINT})")
    return exc


def _reason(exc: BaseException) -> str:
    reason = str(exc).split(":")[-1].strip().rstrip(".") or type(exc).__name__
    if "does not exist" in reason or "not a regular file" in reason:
        return "unrecognised or corrupt audio data"  # libsndfile's words for undecodable mp3 data
    return reason


def _stream_sndfile(path: Path, sr: int, block_s: float) -> Iterator[np.ndarray]:
    import soundfile as sf

    # A file descriptor: any file name works (not only UTF-8 ones), and libsndfile reads it
    # itself, without calling back into Python (a Ctrl-C inside such a callback is lost).
    try:
        fd = os.open(path, os.O_RDONLY)
    except (OSError, ValueError) as exc:  # os.access() in _check_path can say yes (root, ACLs, NFS) and open still fail
        raise AudioError(os_problem(exc)) from None
    try:
        yield from _read_blocks(sf, fd, sr, block_s)
    finally:
        os.close(fd)  # closefd=False below: the descriptor is ours to close, whatever happened


def _read_blocks(sf: Any, fd: int, sr: int, block_s: float) -> Iterator[np.ndarray]:
    try:
        f = sf.SoundFile(fd, closefd=False)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError, ...
        raise DecodeError(f"cannot decode audio ({_reason(exc)})") from None
    with f:
        if f.samplerate <= 0 or f.channels <= 0:
            raise DecodeError("cannot decode audio (no sample rate or channels)")
        if not MIN_INPUT_SR <= f.samplerate <= MAX_INPUT_SR:
            # an AudioError, not a DecodeError: ffmpeg is not tried on a header that lies
            raise AudioError(f"its header claims a sample rate of {f.samplerate} Hz: not audio "
                             f"(accepted: {MIN_INPUT_SR}..{MAX_INPUT_SR} Hz)")
        resampler = _Resampler(f.samplerate, sr)
        # a block's size is bounded whatever the header claims (rate x channels)
        block = max(1, min(int(block_s * f.samplerate), MAX_DECODE_BLOCK_SAMPLES // f.channels))
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise DecodeError(f"cannot decode audio ({_reason(exc)})") from None
            last = len(data) < block
            out = resampler(to_mono(data.T), last)
            if len(out):
                yield out
            if last:
                return


def _stream_ffmpeg(path: Path, sr: int, block_s: float) -> Iterator[np.ndarray]:
    cmd = [
        "ffmpeg", "-nostdin", "-v", "error", "-i", str(path),
        "-map", "0:a:0", "-f", "f32le", "-ac", "1", "-ar", str(sr), "-",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    total = 0
    try:
        assert proc.stdout is not None
        chunk = 4 * max(1, int(block_s * sr))
        while data := proc.stdout.read(chunk):
            y = np.frombuffer(data[: len(data) // 4 * 4], dtype="<f4").astype(np.float32)
            total += len(y)
            yield y
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    if proc.returncode != 0 and total == 0:
        # ffmpeg names the file at the start of its line: the error line names it already, and
        # a name holding a line break would cut the message
        text = err.decode("utf-8", "replace").replace(f"{path}: ", "")
        if "matches no streams" in text:  # "Stream map '0:a:0' matches no streams. To ignore this, ..."
            raise DecodeError("no audio stream in this file")
        lines = text.strip().splitlines()
        raise DecodeError(f"cannot decode audio (ffmpeg: {lines[-1] if lines else 'no audio stream'})")


class _Resampler:
    """soxr in streaming mode: the output does not depend on how the input is split."""

    def __init__(self, orig_sr: int, target_sr: int) -> None:
        self._stream = None
        if orig_sr != target_sr:
            import soxr

            self._stream = soxr.ResampleStream(orig_sr, target_sr, 1, dtype="float32", quality="HQ")

    def __call__(self, y: np.ndarray, last: bool) -> np.ndarray:
        y = np.ascontiguousarray(y, dtype=np.float32)
        return y if self._stream is None else self._stream.resample_chunk(y, last=last)


def block_resampler(orig_sr: int, target_sr: int) -> _Resampler:
    """A streaming resampler: call it with consecutive blocks (``last=True`` with the final one,
    which may be empty); the output does not depend on how the signal is split."""
    return _Resampler(orig_sr, target_sr)


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average channels: ``(channels, samples)`` or ``(samples,)`` → ``(samples,)``."""
    if y.ndim == 1:
        return y
    if y.shape[0] == 1:
        return y[0]
    # channel by channel: 13x faster than ``y.mean(axis=0)`` on the strided view a decoder's
    # interleaved (samples, channels) block gives (24 -> 2 ms for 30 s of stereo)
    out = y[0].astype(np.float32, copy=True)
    for channel in y[1:]:
        out += channel
    out *= np.float32(1.0 / y.shape[0])
    return out


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a mono signal with soxr (high quality), as ``librosa.load`` does.

    Parameters
    ----------
    y : np.ndarray
        Mono signal, float32.
    orig_sr, target_sr : int
        Sample rates in Hz.

    Returns
    -------
    np.ndarray
        float32 signal at ``target_sr``.
    """
    if orig_sr == target_sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def stream(
    path: str | os.PathLike[str], sr: int, block_s: float = DECODE_BLOCK_S
) -> Iterator[np.ndarray]:
    """Decode an audio file block by block into mono float32 at ``sr`` Hz.

    Memory stays flat whatever the file's length; concatenating the blocks
    gives exactly what :func:`load` returns.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file. wav/flac/ogg/opus/mp3 need nothing else; other formats need ffmpeg.
        A pipe (``/dev/stdin``, ``<(...)``) is copied to a temporary file first.
    sr : int
        Target sample rate (the model's).
    block_s : float
        Seconds of audio decoded per block.

    Yields
    ------
    np.ndarray
        Consecutive mono float32 blocks at ``sr``.

    Raises
    ------
    AudioError
        The file is missing (:class:`~genre_infer.errors.MissingFileError`, also a
        ``FileNotFoundError``), unreadable, a directory, or a URL.
    DecodeError
        The file cannot be decoded (``FFmpegMissingError`` when ffmpeg is needed).
    """
    raw, path = os.fspath(path), Path(path)
    _check_path(path, raw)
    if not is_regular_file(path):  # a pipe: the decoders may read it twice (libsndfile, then ffmpeg)
        with seekable_copy(path) as copy:
            yield from stream(copy, sr, block_s)
        return
    ffmpeg = ffmpeg_available()
    if ffmpeg and path.suffix.lower() not in SNDFILE_EXTENSIONS:
        try:
            yield from _stream_ffmpeg(path, sr, block_s)
        except DecodeError as exc:
            raise _explain(path, exc) from None
        return
    # libsndfile reads the content whatever the name says (a .wav called .bin): tried first
    # for its own formats, and for every file when there is no ffmpeg to try
    blocks = _stream_sndfile(path, sr, block_s)
    try:
        first = next(blocks, None)
    except DecodeError as exc:
        if not ffmpeg:
            raise _explain(path, exc) from None
        try:
            yield from _stream_ffmpeg(path, sr, block_s)
        except DecodeError as exc2:
            raise _explain(path, exc2) from None
        return
    if first is not None:
        yield first
        yield from blocks


def load(path: str | os.PathLike[str], sr: int) -> np.ndarray:
    """Decode a whole audio file into mono float32 at ``sr`` Hz (see :func:`stream`)."""
    blocks = list(stream(path, sr))
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def from_array(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Convert a caller's array into mono float32 at ``target_sr``.

    Parameters
    ----------
    y : np.ndarray
        ``(samples,)``, ``(channels, samples)`` (librosa's layout) or
        ``(samples, channels)``; the shorter axis of a 2-D array is taken as channels.
        Integer arrays are scaled from their full range; floats are taken as [-1, 1].
    orig_sr : int
        Sample rate of ``y`` in Hz.
    target_sr : int
        The model's sample rate.

    Raises
    ------
    AudioError
        Not a 1-D/2-D numeric array, a sample rate outside
        ``MIN_INPUT_SR..MAX_INPUT_SR``, or NaN/inf samples.
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf" or y.ndim not in (1, 2) or y.size == 0:
        raise AudioError(
            f"expected a non-empty 1-D or 2-D numeric array, got shape {y.shape} dtype {y.dtype}"
        )
    orig_sr = check_sample_rate(orig_sr)
    if y.dtype.kind == "b":
        y = y.astype(np.float32)
    elif y.dtype.kind in "iu":
        info = np.iinfo(y.dtype)
        offset = (int(info.max) + int(info.min) + 1) / 2.0  # 0 for signed, midpoint for unsigned
        y = ((y.astype(np.float64) - offset) / (float(info.max) - offset + 1.0)).astype(np.float32)
    if not np.all(np.isfinite(y)):
        raise AudioError("audio contains NaN or infinite samples")
    y = y.astype(np.float32, copy=False)
    if y.ndim == 2 and y.shape[0] > y.shape[1]:
        y = y.T
    return resample(to_mono(y), int(orig_sr), target_sr)
