"""The exceptions genre-infer raises for problems a user can cause.

Every error carries a message written for a person; the CLI prints it on one
line, prefixed by the file name, and never shows a traceback.
"""

from __future__ import annotations


class GenreInferError(Exception):
    """Base class of every error genre-infer raises on purpose."""


class AudioError(GenreInferError):
    """The input audio cannot be used (missing, undecodable, too short, silent)."""


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
