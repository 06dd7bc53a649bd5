"""The typed result of classifying one song."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .constants import OUTPUT_SCHEMA_VERSION

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["Section", "TimelineRow", "Result", "UNCERTAIN"]

#: Genre reported for a timeline row whose confidence is below the model's threshold.
UNCERTAIN = "uncertain"


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


@dataclass(frozen=True)
class Section:
    """A stretch of the song that reads as one genre.

    Attributes
    ----------
    start, end : float
        Seconds from the start of the audio.
    genre : str
        The section's genre (``"uncertain"`` when below the model's threshold).
    confidence : float
        Mean probability of that genre over the section.
    """

    start: float
    end: float
    genre: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"start", "end", "genre", "confidence"}``."""
        return {"start": _r(self.start, 3), "end": _r(self.end, 3), "genre": self.genre,
                "confidence": _r(self.confidence)}


@dataclass(frozen=True)
class TimelineRow:
    """One step (a second) of the timeline with every genre's probability."""

    start: float
    end: float
    genre: str
    confidence: float
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``{"start", "end", "genre", "confidence", "probabilities"}``."""
        return {"start": _r(self.start, 3), "end": _r(self.end, 3), "genre": self.genre,
                "confidence": _r(self.confidence),
                "probabilities": {k: _r(v) for k, v in self.probabilities.items()}}


@dataclass(frozen=True)
class Result:
    """Everything genre-infer says about one song.

    Attributes
    ----------
    source : str or None
        The file path, or ``None`` for an array.
    duration : float
        Length of the audio in seconds.
    labels : tuple of str
        The model's genres, in the model's order.
    probabilities : np.ndarray
        ``(labels,)`` song-level probabilities (the verdict).
    timeline_probabilities : np.ndarray
        ``(steps, labels)`` probabilities per timeline step.
    step : float
        Timeline resolution in seconds.
    sections : tuple of Section
        Contiguous sections covering the song.
    model_name, model_version : str
        The model that produced it.
    uncertain_below : float
        Confidence under which a timeline row reads ``"uncertain"`` (0: never).
    """

    source: str | None
    duration: float
    labels: tuple[str, ...]
    probabilities: np.ndarray
    timeline_probabilities: np.ndarray
    step: float
    sections: tuple[Section, ...]
    model_name: str
    model_version: str
    uncertain_below: float = 0.0

    @property
    def genre(self) -> str:
        """The verdict: the most probable genre of the whole song."""
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        """Probability of :attr:`genre`."""
        return float(np.max(self.probabilities))

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable genres with their probabilities, best first."""
        order = np.argsort(-self.probabilities, kind="stable")[: max(k, 0)]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    def probabilities_dict(self) -> dict[str, float]:
        """Song-level probability of every genre, in the model's label order."""
        return {g: float(p) for g, p in zip(self.labels, self.probabilities)}

    @property
    def timeline(self) -> list[TimelineRow]:
        """One :class:`TimelineRow` per step (second)."""
        rows = []
        for k, p in enumerate(self.timeline_probabilities):
            i = int(np.argmax(p))
            conf = float(p[i])
            genre = UNCERTAIN if conf < self.uncertain_below else self.labels[i]
            rows.append(TimelineRow(
                start=k * self.step, end=min((k + 1) * self.step, self.duration), genre=genre,
                confidence=conf, probabilities={g: float(x) for g, x in zip(self.labels, p)},
            ))
        return rows

    def to_dict(self, *, top_k: int | None = None, timeline: bool = True) -> dict[str, Any]:
        """The documented JSON form (see README, "Output schema").

        Parameters
        ----------
        top_k : int, optional
            How many entries the ``top`` list holds (default: all genres).
        timeline : bool
            Include the per-second ``timeline`` rows.
        """
        k = len(self.labels) if top_k is None else top_k
        d: dict[str, Any] = {
            "schema_version": OUTPUT_SCHEMA_VERSION,
            "file": self.source,
            "duration": _r(self.duration, 3),
            "model": {"name": self.model_name, "version": self.model_version},
            "genre": self.genre,
            "confidence": _r(self.confidence),
            "top": [{"genre": g, "probability": _r(p)} for g, p in self.top(k)],
            "probabilities": {g: _r(p) for g, p in self.probabilities_dict().items()},
            "sections": [s.to_dict() for s in self.sections],
        }
        if timeline:
            d["timeline"] = [row.to_dict() for row in self.timeline]
        return d

    def plot(self, path: str | os.PathLike[str] | None = None, *, audio: Any = None, sr: int | None = None,
             width: float = 12.0) -> Figure:
        """The melgram with the genre of every second under it (needs matplotlib).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Also save the picture there; its suffix picks the format (``.png``, ``.svg``, ``.pdf``).
        audio : path or np.ndarray, optional
            The audio, for the melgram: needed when the result came from an array
            (default: :attr:`source`).
        sr : int, optional
            Sample rate of an array ``audio``.
        width : float
            Figure width in inches.

        Returns
        -------
        matplotlib.figure.Figure
            The figure (``fig.savefig(...)`` saves it elsewhere; no pyplot window is opened).

        Raises
        ------
        genre_infer.report.PlotUnavailableError
            matplotlib is not installed (``pip install 'genre-infer[plot]'``).
        """
        from . import report

        fig = report.plot_timeline(self, audio, sr, width=width)
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig

    def save_html(self, path: str | os.PathLike[str], *, audio: Literal["embed", "link", "none"] = "embed",
                  audio_source: Any = None, sr: int | None = None) -> Path:
        """Write the listen-along HTML report (player, melgram, timeline, sections) to ``path``.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.html`` file to write.
        audio : {"embed", "link", "none"}
            Put the audio file in the page (one file to share), link to it by a relative path,
            or leave the player out. A result from an array has no file: use ``"none"``.
        audio_source : path or np.ndarray, optional
            The audio, for the melgram, when the result came from an array.
        sr : int, optional
            Sample rate of an array ``audio_source``.

        Returns
        -------
        pathlib.Path
            ``path``.
        """
        from . import report

        path = Path(path)
        if audio not in ("embed", "link", "none"):
            raise ValueError(f"audio must be 'embed', 'link' or 'none', not {audio!r}")
        player: dict[str, Any] = {}
        if audio != "none":
            if self.source is None:
                raise ValueError("a result from an array has no audio file to embed or link: use audio='none'")
            player = report.audio_for_html(self.source, audio, path)
        path.write_text(report.html_report(self, audio=audio_source, sr=sr, **player), encoding="utf-8")
        return path
