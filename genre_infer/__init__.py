"""genre-infer: music genre recognition, second by second.

>>> from genre_infer import classify
>>> result = classify("song.mp3")        # doctest: +SKIP
>>> result.genre, result.sections[0]     # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

# Names are imported on first use (PEP 562), so ``genre-infer --help`` and the CLI's
# thread settings run before numpy and onnxruntime are loaded.
_EXPORTS = {
    "classify": "api", "load_model": "api", "Classifier": "api",
    "Result": "result", "Section": "result", "TimelineRow": "result",
    "FeatureSpec": "features", "ModelInfo": "model", "available_models": "model",
    "GenreInferError": "errors", "AudioError": "errors", "DecodeError": "errors",
    "FFmpegMissingError": "errors", "TooShortError": "errors", "SilentError": "errors", "ModelError": "errors",
    "OutputError": "errors",
}

if TYPE_CHECKING:
    from .api import Classifier, classify, load_model
    from .errors import (
        AudioError, DecodeError, FFmpegMissingError, GenreInferError, ModelError, OutputError, SilentError,
        TooShortError,
    )
    from .features import FeatureSpec
    from .model import ModelInfo, available_models
    from .result import Result, Section, TimelineRow


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genre_infer' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = [
    "__version__",
    "classify",
    "load_model",
    "Classifier",
    "Result",
    "Section",
    "TimelineRow",
    "FeatureSpec",
    "ModelInfo",
    "available_models",
    "GenreInferError",
    "AudioError",
    "DecodeError",
    "FFmpegMissingError",
    "TooShortError",
    "SilentError",
    "ModelError",
    "OutputError",
]
