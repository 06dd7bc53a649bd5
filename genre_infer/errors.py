"""The exceptions genre-infer raises for problems a user can cause.

Every error carries a message written for a person; the CLI prints it on one
line, prefixed by the file name, and never shows a traceback.
"""

from __future__ import annotations

import errno
import os
from typing import Any


class GenreInferError(Exception):
    """Base class of every error genre-infer raises on purpose."""


class AudioError(GenreInferError):
    """The input audio cannot be used (missing, undecodable, too short, silent)."""


class MissingFileError(AudioError, FileNotFoundError):
    """The input file does not exist: also a :class:`FileNotFoundError`, whose ``filename``
    is the path (``except FileNotFoundError`` catches it); ``str()`` is the reason alone."""

    def __init__(self, path: str | os.PathLike[str], reason: str = "no such file") -> None:
        FileNotFoundError.__init__(self, errno.ENOENT, reason, os.fspath(path))

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (worker processes) with its own arguments
        return type(self), (self.filename, self.strerror)


class DecodeError(AudioError):
    """The file exists but cannot be decoded as audio."""


class FFmpegMissingError(DecodeError):
    """The file needs ffmpeg to decode and ffmpeg is not installed."""


class TooShortError(AudioError):
    """The audio is shorter than the model can classify."""


class SilentError(AudioError):
    """The audio holds no signal."""


class ModelError(GenreInferError):
    """The model file is missing, not ONNX, or not a genre-infer model."""


class OutputError(GenreInferError):
    """An output file or stream cannot be written (no such folder, permission denied, disk full)."""
