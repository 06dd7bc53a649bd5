"""genre-infer: music genre recognition, second by second.

>>> from genre_infer import classify
>>> result = classify("song.mp3")        # doctest: +SKIP
>>> result.genre, result.sections[0]     # doctest: +SKIP
"""

from ._version import __version__
from .api import Classifier, classify, load_model
from .errors import (
    AudioError,
    DecodeError,
    FFmpegMissingError,
    GenreInferError,
    ModelError,
    SilentError,
    TooShortError,
)
from .features import FeatureSpec
from .model import ModelInfo, available_models
from .result import Result, Section, TimelineRow

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
]
