"""Render results as text, JSON, JSONL or CSV, and write them safely.

Schemas (``schema_version`` 1; documented in the README):

- ``json``: one document ``{"schema_version", "model", "results": [...], "errors": [...]}``.
- ``jsonl``: one line per input, as each finishes: a result object
  (:meth:`Result.to_dict`) or ``{"schema_version", "file", "error"}``.
- ``csv``: one row per song (``row=song``) then one per second (``row=second``) with
  columns ``file,row,start,end,genre,confidence,<one column per genre>``.
- ``text``: for people; not a stable format.

Files are written by :mod:`genre_infer.outfile` (docs/output.md): JSON, CSV and text
go to a temporary file renamed over the output when the run finishes, so the output
file holds a whole document or stays as it was (after an error or an interruption);
JSONL is appended one whole line per input as each finishes, so an interrupted run
keeps every finished result and never leaves half a line. A JSON document says whether
its run was interrupted (``"interrupted"``; only standard output ever gets one that was).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sys
from typing import IO, Any, Literal

from .constants import OUTPUT_SCHEMA_VERSION
from .errors import OutputError
from .outfile import Sink, open_sink, os_reason
from .result import Result

__all__ = ["Format", "format_time", "render_text", "csv_rows", "csv_header", "Writer", "display_path", "printable"]

Format = Literal["text", "json", "jsonl", "csv"]


def display_path(path: str | os.PathLike[str]) -> str:
    """A printable form of any path (undecodable bytes shown as ``\\xNN``)."""
    raw = os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


#: Characters a terminal acts on instead of showing (line breaks, tabs, escape sequences, C1
#: controls, bidirectional overrides): in a file name they would split or forge a line.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` for a line people read: control characters shown as escapes (``\\n``, ``\\x1b``).

    JSON and CSV keep names exactly (they quote them themselves); text output and error
    lines use this, so one file is always one line and a name cannot drive the terminal.
    """
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


#: Characters JSON leaves raw that ``str.splitlines()`` (and some JSONL readers) take as line
#: breaks: written as escapes, so a name holding one never splits a JSONL record.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def json_line(record: dict[str, Any]) -> str:
    """One JSONL line: UTF-8 JSON with every line-break character escaped, then ``\\n``."""
    return json.dumps(record, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


def format_time(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss`` from one hour), rounded to the nearest second."""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _span(start: float, end: float) -> str:
    return f"{format_time(start)}–{format_time(end)}"


def _pct(p: float) -> str:
    """A confidence as people read it: ``88%`` (the text output's one notation)."""
    return f"{p:.0%}"


def render_text(result: Result, *, top_k: int = 3, timeline: bool = False) -> str:
    """Human-readable summary: verdict, sections, and optionally a row per second.

    Confidences read as percentages throughout. A timeline row too short to show as a span
    of whole seconds (a song's last few milliseconds: ``1:15–1:15``) is left out here; JSON
    and CSV keep every row.
    """
    name = printable(display_path(result.source)) if result.source else "<array>"
    lines = [f"{name}  ({format_time(result.duration)}, {result.duration:.1f} s)"]
    verdict = " · ".join(f"{g} {_pct(p)}" for g, p in result.top(top_k))
    lines.append(f"  genre:    {verdict}")
    sections = [f"{_span(s.start, s.end)} {s.genre} {_pct(s.confidence)}" for s in result.sections]
    if len(sections) <= 4:
        lines.append("  sections: " + " · ".join(sections))
    else:
        lines.append("  sections:")
        lines.extend(f"    {s}" for s in sections)
    if timeline:
        lines.append("  timeline:")
        width = max(len(g) for g in result.labels)
        for row in result.timeline:
            if format_time(row.start) == format_time(row.end):
                continue
            others = sorted(row.probabilities.items(), key=lambda kv: -kv[1])
            rest = ", ".join(f"{g} {_pct(p)}" for g, p in others[:top_k] if g != row.genre)
            lines.append(
                f"    {_span(row.start, row.end):>11}  {row.genre:<{width}}  {_pct(row.confidence):>4}"
                + (f"  ({rest})" if rest else "")
            )
    return "\n".join(lines) + "\n"


def csv_header(labels: tuple[str, ...]) -> list[str]:
    """CSV columns: ``file,row,start,end,genre,confidence`` then one per genre."""
    return ["file", "row", "start", "end", "genre", "confidence", *labels]


def csv_rows(result: Result) -> list[list[Any]]:
    """One ``song`` row with the verdict, then one ``second`` row per timeline step."""
    name = display_path(result.source) if result.source else ""
    rows: list[list[Any]] = [[
        name, "song", 0.0, round(result.duration, 3), result.genre, round(result.confidence, 4),
        *(round(float(p), 4) for p in result.probabilities),
    ]]
    for row in result.timeline:
        rows.append([
            name, "second", round(row.start, 3), round(row.end, 3), row.genre, round(row.confidence, 4),
            *(round(row.probabilities[g], 4) for g in result.labels),
        ])
    return rows


class Writer:
    """Collects results in one format and writes them to stdout or a file.

    Parameters
    ----------
    fmt : {"text", "json", "jsonl", "csv"}
        Output format.
    path : str or None
        Output file; ``None`` writes to standard output.
    model : dict
        ``{"name", "version"}`` of the model, for the JSON document.
    labels : tuple of str
        The model's genres (CSV columns).
    top_k : int
        Genres listed in text output and the ``top`` field.
    timeline : bool
        Text output: add a row per second.
    """

    def __init__(
        self, fmt: Format, path: str | None, *, model: dict[str, str], labels: tuple[str, ...],
        top_k: int = 3, timeline: bool = False,
    ) -> None:
        self.fmt, self.path, self.model, self.labels = fmt, path, model, labels
        self.top_k, self.timeline = top_k, timeline
        self.results: list[dict[str, Any]] = []
        self.errors: list[dict[str, str]] = []
        self.written = 0  # results added so far
        self._closed = False
        self._sink: Sink | None = None
        self._stream: IO[str] | None = None
        if path is None:
            self._stream = sys.stdout
        else:
            self._sink = open_sink(path, append=fmt == "jsonl")
        self._streamed = self._sink is None or self._sink.in_place
        self._header = fmt == "csv"  # written with the first output, so opening never writes

    def _emit(self, text: str) -> None:
        if self._header:
            self._header = False
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerow(csv_header(self.labels))
            self._emit(buf.getvalue())
        if self._sink is not None:
            self._sink.write(text)
            return
        assert self._stream is not None
        try:
            self._stream.write(text)
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write standard output: {os_reason(exc)}") from None

    def add(self, result: Result) -> None:
        """Record one result (written at once for streaming formats)."""
        self.written += 1
        if self.fmt == "text":
            self._emit(render_text(result, top_k=self.top_k, timeline=self.timeline))
        elif self.fmt == "csv":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(csv_rows(result))
            self._emit(buf.getvalue())
        else:
            d = result.to_dict(top_k=self.top_k)
            if result.source is not None:
                d["file"] = display_path(result.source)
            if self.fmt == "jsonl":
                self._emit(json_line(d))
            else:
                self.results.append(d)

    def add_error(self, file: str, message: str) -> None:
        """Record an input that failed (JSON/JSONL carry it; text/CSV leave it to stderr)."""
        entry = {"file": file, "error": message}
        if self.fmt == "jsonl":
            self._emit(json_line({"schema_version": OUTPUT_SCHEMA_VERSION, **entry}))
        self.errors.append(entry)

    def close(self, *, interrupted: bool = False) -> None:
        """Finish the document and move a file output into place.

        ``interrupted``: the run stopped early. A JSON/CSV/text file is then left as it was
        (see :meth:`abort`); JSONL keeps the lines written; standard output gets the JSON
        document of the finished results, marked ``"interrupted": true``.
        """
        if self._closed:
            return
        self._closed = True
        if interrupted and not self.keeps_partial:
            self.abort()
            return
        if self._header:
            self._emit("")
        if self.fmt == "json":
            doc = {"schema_version": OUTPUT_SCHEMA_VERSION, "model": self.model, "interrupted": interrupted,
                   "results": self.results, "errors": self.errors}
            self._emit(json.dumps(doc, ensure_ascii=False, indent=2).translate(_LINE_BREAKS) + "\n")
        if self._sink is not None:
            self._sink.commit()
            self._sink = None

    def abort(self) -> None:
        """Drop an unfinished document: a file output stays as it was (what was streamed stays)."""
        self._closed = True
        if self._sink is not None:
            if self._sink.in_place:
                self._sink.commit()  # appended whole lines: they are kept
            else:
                self._sink.discard()
            self._sink = None

    @property
    def keeps_partial(self) -> bool:
        """Whether an interrupted run still delivers its finished results: what goes out as it
        comes (standard output, JSONL, a device, FIFO or descriptor) does; a file replaced at
        the end does not (it is left as it was)."""
        return self._streamed
