"""See the song: a timeline plot (matplotlib, optional) and a listen-along HTML report.

Both show the melgram on top and the genre under it, second by second. The
HTML report needs nothing but a browser: the melgram is an embedded PNG, the
timeline an inline SVG, and the data the same JSON the CLI writes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import re
import struct
import urllib.parse
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from . import audio as audio_mod
from .errors import GenreInferError
from .features import FeatureSpec, FeatureStream
from .output import display_path, format_time, printable
from .result import Result

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "display_melgram", "genre_colours", "plot_timeline", "plot_bytes", "save_plot", "html_report", "html_index",
    "audio_for_html", "file_href", "script_json", "PlotUnavailableError",
]

#: Display melgram: 16 kHz, 64 bands, pooled to this many columns per second.
DISPLAY_SPEC = FeatureSpec(sr=16000, n_fft=1024, hop_length=256, n_mels=64, compression="db")
DISPLAY_COLUMNS_PER_S = 10

# Ten distinct colours (Tableau 10), then greys; the same in the plot and the HTML.
_PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
            "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
_MAGMA = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                   [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)


#: Largest audio file embedded in a report (base64 makes it a third larger, and the page
#: is built in memory); larger files are linked instead (``--html-audio link``).
MAX_EMBED_BYTES = 200_000_000


class PlotUnavailableError(ImportError):
    """matplotlib is not installed."""


class ReportError(GenreInferError):
    """A report cannot be made for this input (e.g. its audio is too large to embed)."""


def genre_colours(labels: Iterable[str]) -> dict[str, str]:
    """A stable colour per genre (by position in the model's label list)."""
    return {g: _PALETTE[i % len(_PALETTE)] for i, g in enumerate(labels)}


def display_melgram(
    audio: str | os.PathLike[str] | np.ndarray, sr: int | None = None
) -> np.ndarray:
    """A dB melgram for people to look at: ``(64 bands, 10 columns per second)``.

    Streams files block by block and pools frames as they come, so memory stays
    flat for long recordings.
    """
    spec = DISPLAY_SPEC
    if isinstance(audio, np.ndarray):
        if sr is None:
            raise ValueError("an array needs its sample rate")
        blocks: Iterable[np.ndarray] = [audio_mod.from_array(audio, sr, spec.sr)]
    else:
        blocks = audio_mod.stream(audio, spec.sr)
    pool = max(1, round(spec.sr / spec.hop_length / DISPLAY_COLUMNS_PER_S))
    stream = FeatureStream(spec)
    cols: list[np.ndarray] = []
    rest = np.zeros((0, spec.n_mels), dtype=np.float32)

    def take(frames: np.ndarray, final: bool) -> np.ndarray:
        frames = np.concatenate([rest, frames])
        n = len(frames) // pool * pool
        if n:
            cols.append(frames[:n].reshape(-1, pool, spec.n_mels).mean(axis=1))
        if final and len(frames) > n:
            cols.append(frames[n:].mean(axis=0, keepdims=True))
        return frames[n:]

    for block in blocks:
        rest = take(stream.push(block), final=False)
    take(stream.finish(), final=True)
    mel = np.concatenate(cols) if cols else np.zeros((1, spec.n_mels), np.float32)
    return mel.T


def _scaled(mel: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    peak = float(mel.max())
    return np.clip((mel - (peak - top_db)) / top_db, 0.0, 1.0)


def _png(mel: np.ndarray) -> bytes:
    """Encode a melgram (low bands at the bottom) as a PNG with the magma palette."""
    v = _scaled(mel)[::-1]
    pos = v * (len(_MAGMA) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_MAGMA) - 2)
    frac = (pos - lo)[..., None]
    rgb = (_MAGMA[lo] * (1 - frac) + _MAGMA[lo + 1] * frac).astype(np.uint8)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def _verdict_text(result: Result, k: int = 3) -> str:
    return " · ".join(f"{g} {p:.0%}" for g, p in result.top(k))


def plot_timeline(
    result: Result, audio: str | os.PathLike[str] | np.ndarray | None = None, sr: int | None = None,
    *, melgram: np.ndarray | None = None, width: float = 12.0,
) -> Figure:
    """The melgram with the genre of every second under it, as a matplotlib Figure.

    Parameters
    ----------
    result : Result
        What :func:`genre_infer.classify` returned.
    audio : path or np.ndarray, optional
        The same audio, for the melgram (default: ``result.source``).
    sr : int, optional
        Sample rate of an array ``audio``.
    melgram : np.ndarray, optional
        A precomputed :func:`display_melgram`.
    width : float
        Figure width in inches.

    Raises
    ------
    PlotUnavailableError
        matplotlib is not installed (``pip install 'genre-infer[plot]'``).
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
        from matplotlib.ticker import FuncFormatter
    except ImportError:
        raise PlotUnavailableError(
            "plots need matplotlib: pip install 'genre-infer[plot]'"
        ) from None
    if melgram is None:
        src = audio if audio is not None else result.source
        if src is None:
            raise ValueError("pass the audio (or a melgram) to plot an array's result")
        melgram = display_melgram(src, sr)
    colours = genre_colours(result.labels)
    fig = Figure(figsize=(width, 6.0), layout="constrained")
    ax_mel, ax_strip, ax_prob = fig.subplots(3, 1, sharex=True, height_ratios=[3, 0.35, 2])
    d = result.duration
    ax_mel.imshow(_scaled(melgram), origin="lower", aspect="auto", cmap="magma", extent=(0, d, 0, melgram.shape[0]))
    ax_mel.set_ylabel("mel band")
    name = printable(Path(display_path(result.source)).name) if result.source else "audio"  # no tabs or escapes
    ax_mel.set_title(f"{name} — {_verdict_text(result)}",
                     loc="left", fontsize=11)
    for row in result.timeline:
        ax_strip.axvspan(row.start, row.end, color=colours.get(row.genre, "#dddddd"), lw=0)
    for s in result.sections:
        ax_strip.axvline(s.start, color="white", lw=1.5)
    ax_strip.set_yticks([])
    ax_strip.set_ylabel("genre", rotation=0, ha="right", va="center")
    t = np.array([(r.start + r.end) / 2 for r in result.timeline])
    order = np.argsort(-result.probabilities)
    for i in order:
        g = result.labels[i]
        ax_prob.plot(t, result.timeline_probabilities[:, i], color=colours[g],
                     lw=2.2 if i == order[0] else 1.2, label=g)
    ax_prob.set_ylim(0, 1)
    ax_prob.set_ylabel("probability")
    ax_prob.set_xlim(0, d)
    ax_prob.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: format_time(x)))
    ax_prob.set_xlabel("time (m:ss)")
    handles = [Patch(color=colours[result.labels[i]], label=result.labels[i]) for i in order]
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    from matplotlib.text import Text

    for text in fig.findobj(Text):  # file names and labels are shown as written: no $mathtext$, no TeX
        text.set_parse_math(False)
        text.set_usetex(False)
    return fig


def plot_bytes(result: Result, ext: str = ".png", *, melgram: np.ndarray | None = None,
               audio: Any = None, sr: int | None = None) -> bytes:
    """:func:`plot_timeline` encoded as ``ext`` (``.png``, ``.svg``, ``.pdf``, ...: matplotlib's formats)."""
    import warnings

    fig = plot_timeline(result, audio, sr, melgram=melgram)
    buf = io.BytesIO()
    with warnings.catch_warnings():  # a name in a script the font lacks: boxes, not lines on stderr
        warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
        fig.savefig(buf, format=ext.lstrip(".").lower() or "png", dpi=110)
    return buf.getvalue()


def save_plot(result: Result, path: str | os.PathLike[str], audio: Any = None, sr: int | None = None) -> Path:
    """Write :func:`plot_timeline` to ``path`` (.png, .svg or .pdf, by its suffix), whole or not at all."""
    from .outfile import write_bytes

    path = Path(path)
    write_bytes(path, plot_bytes(result, path.suffix or ".png", audio=audio, sr=sr))
    return path


_MIME = {".mp3": "audio/mpeg", ".wav": "audio/wav", ".wave": "audio/wav", ".flac": "audio/flac",
         ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg", ".m4a": "audio/mp4",
         ".aac": "audio/aac", ".mp4": "audio/mp4", ".webm": "audio/webm"}

#: The report's stylesheet and script: constant, so the page's Content-Security-Policy can
#: allow exactly them (by hash) and nothing else. Every string from a file name or a model
#: reaches the page through ``textContent`` or an attribute set from script, never as markup.
_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; word-break: break-all; }
.verdict { font-size: 17px; margin: 0 0 12px; }
audio { width: 100%; margin: 8px 0; }
#timeline { width: 100%; display: block; cursor: pointer; user-select: none; }
#now { font-size: 16px; margin: 6px 0 10px; min-height: 1.4em; }
#tip { position: fixed; pointer-events: none; background: rgba(255,255,255,.96); border: 1px solid #bbb;
       border-radius: 4px; padding: 6px 8px; font-size: 13px; display: none; box-shadow: 0 2px 6px rgba(0,0,0,.15); }
.sw { display: inline-block; width: 10px; height: 10px; margin-right: 5px; border-radius: 2px; }
.legend span { margin-right: 14px; white-space: nowrap; }
ol.sections li { cursor: pointer; } ol.sections li:hover { text-decoration: underline; }
.meta { color: #777; font-size: 13px; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eee; }
""" + "".join(f".c{i} {{ background: {c}; }}\n" for i, c in enumerate(_PALETTE)) + ".cx { background: #ddd; }\n"

_SCRIPT = """
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("genre-data").textContent);
  const view = JSON.parse(document.getElementById("genre-view").textContent);
  const colours = view.colours, mel = view.melgram;
  const colour = g => Object.prototype.hasOwnProperty.call(colours, g) ? colours[g] : "#ddd";
  const svg = document.getElementById("timeline"), player = document.getElementById("player");
  const NS = "http://www.w3.org/2000/svg", W = 1000, MEL_H = 150, STRIP_Y = 156, STRIP_H = 22, PROB_Y = 184, PROB_H = 110;
  const dur = data.duration, X = t => t / dur * W;
  const el = (name, attrs, parent) => { const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]); (parent || svg).appendChild(e); return e; };
  const node = (tag, text, parent) => { const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text; if (parent) parent.appendChild(e); return e; };
  const swatch = (g, parent) => { const i = node("i", undefined, parent); i.className = "sw";
    i.style.background = colour(g); return i; };
  const fmt = s => { s = Math.round(s); const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), ss = s % 60;
    return (h ? h + ":" + String(m).padStart(2, "0") : m) + ":" + String(ss).padStart(2, "0"); };
  el("image", { href: mel, x: 0, y: 0, width: W, height: MEL_H, preserveAspectRatio: "none" });
  for (const row of data.timeline)
    el("rect", { x: X(row.start), y: STRIP_Y, width: Math.max(X(row.end) - X(row.start), 0.5), height: STRIP_H,
                 fill: colour(row.genre), "data-genre": row.genre });
  const genres = Object.keys(data.probabilities).sort((a, b) => data.probabilities[b] - data.probabilities[a]);
  for (const g of genres.slice().reverse()) {
    const pts = data.timeline.map(r => X((r.start + r.end) / 2).toFixed(2) + "," +
      (PROB_Y + PROB_H * (1 - r.probabilities[g])).toFixed(2)).join(" ");
    el("polyline", { points: pts, fill: "none", stroke: colour(g), "stroke-width": g === genres[0] ? 2.2 : 1.1,
                     "vector-effect": "non-scaling-stroke" });
  }
  const cursor = el("line", { id: "cursor", x1: 0, x2: 0, y1: 0, y2: 300, stroke: "#fff", "stroke-width": 2,
                              "vector-effect": "non-scaling-stroke" });
  el("line", { x1: 0, x2: W, y1: PROB_Y + PROB_H, y2: PROB_Y + PROB_H, stroke: "#ccc", "vector-effect": "non-scaling-stroke" });
  const legend = document.getElementById("legend");
  for (const g of genres) {
    const span = node("span", undefined, legend);
    swatch(g, span);
    span.appendChild(document.createTextNode(g + " " + (100 * data.probabilities[g]).toFixed(0) + "%"));
  }
  const list = document.getElementById("sections");
  for (const s of data.sections) {
    const li = node("li", undefined, list);
    swatch(s.genre, li);
    li.appendChild(document.createTextNode(fmt(s.start) + "\u2013" + fmt(s.end) + " "));
    node("b", s.genre, li);
    li.appendChild(document.createTextNode(" " + s.confidence.toFixed(2)));
    li.addEventListener("click", () => { player.currentTime = s.start; });
  }
  const rowAt = t => data.timeline[Math.min(data.timeline.length - 1, Math.max(0, Math.floor(t / data.timeline[0].end || 0)))];
  const now = document.getElementById("now");
  const nowTime = node("span"), nowGenre = node("b"), nowConf = node("span");
  nowTime.id = "now-time"; nowGenre.id = "now-genre"; nowConf.id = "now-conf";
  now.append(nowTime, " \u2014 ", nowGenre, " ", nowConf);
  function show(t) {
    cursor.setAttribute("x1", X(t)); cursor.setAttribute("x2", X(t));
    const r = rowAt(t);
    nowTime.textContent = fmt(t);
    nowGenre.textContent = r.genre;
    nowGenre.style.color = Object.prototype.hasOwnProperty.call(colours, r.genre) ? colours[r.genre] : "#555";
    nowConf.textContent = r.confidence.toFixed(2);
    svg.dataset.cursorTime = t;
  }
  const timeAt = ev => { const b = svg.getBoundingClientRect(); return Math.min(dur, Math.max(0, (ev.clientX - b.left) / b.width * dur)); };
  svg.addEventListener("click", ev => { const t = timeAt(ev); player.currentTime = t; show(t); });
  const tip = document.getElementById("tip");
  svg.addEventListener("mousemove", ev => {
    const r = rowAt(timeAt(ev));
    tip.replaceChildren();
    node("b", fmt(r.start) + "\u2013" + fmt(r.end), tip);
    for (const [g, p] of Object.entries(r.probabilities).sort((a, b) => b[1] - a[1]).slice(0, 5)) {
      const div = node("div", undefined, tip);
      swatch(g, div);
      div.appendChild(document.createTextNode(g + " " + p.toFixed(2)));
    }
    tip.style.display = "block"; tip.style.left = (ev.clientX + 14) + "px"; tip.style.top = (ev.clientY + 14) + "px";
  });
  svg.addEventListener("mouseleave", () => { tip.style.display = "none"; });
  player.addEventListener("timeupdate", () => show(player.currentTime));
  player.addEventListener("seeked", () => show(player.currentTime));
  (function tick() { if (!player.paused) show(player.currentTime); requestAnimationFrame(tick); })();
  show(0);
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


#: No remote sources, no inline handlers, no other script or style than the page's own:
#: images and audio come from data: URLs or local files beside the page.
_CSP_REPORT = (f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
               "img-src data:; media-src data: 'self' file:; base-uri 'none'; form-action 'none'")
_CSP_INDEX = f"default-src 'none'; style-src {_csp_hash(_STYLE)}; base-uri 'none'; form-action 'none'"

_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style></head><body>
"""

_TEMPLATE = """<h1>{title}</h1>
<p class="verdict">{verdict}</p>
<audio id="player" controls preload="auto" src="{audio_src}"></audio>
<div id="now"></div>
<svg id="timeline" viewBox="0 0 1000 300" preserveAspectRatio="none" role="img" aria-label="genre timeline"></svg>
<p class="legend" id="legend"></p>
<h2>Sections</h2>
<ol class="sections" id="sections"></ol>
<p class="meta">{meta}</p>
<div id="tip"></div>
<script id="genre-data" type="application/json">{data}</script>
<script id="genre-view" type="application/json">{view}</script>
<script>{script}</script></body></html>
"""


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` (and the two JavaScript
    line separators) written as ``\\uXXXX`` escapes, so no ``</script>`` or ``<!--`` can occur."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for ch in ("<", ">", "&", "\u2028", "\u2029"):
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def file_href(target: str | os.PathLike[str], page_folder: str | os.PathLike[str]) -> str:
    """The URL by which a page in ``page_folder`` reaches the file ``target``: relative, and every
    path segment percent-encoded from the name's bytes, so no name can become a scheme
    (``javascript:``), a query, a fragment or markup.

    Only where no relative path exists (another drive on Windows) is it a ``file:`` URL.
    """
    target_abs, folder_abs = Path(target).resolve(), Path(page_folder).resolve()
    try:
        rel = os.path.relpath(target_abs, folder_abs)
    except ValueError:
        return target_abs.as_uri()
    return "/".join(urllib.parse.quote(os.fsencode(part), safe="") for part in Path(rel).parts)


def _checked_src(src: str) -> str:
    """A caller's ``audio_src``: a relative URL or a ``file:`` URL; anything else is refused."""
    parts = urllib.parse.urlsplit(src)
    if parts.scheme not in ("", "file") or (parts.netloc and parts.scheme != "file") or any(
            ord(c) < 0x21 for c in src):
        raise ValueError(f"audio_src must be a relative URL of a file (see report.file_href), not {src!r}")
    return src


def html_report(
    result: Result,
    *,
    audio_src: str | None = None,
    audio_bytes: bytes | None = None,
    audio_mime: str = "audio/mpeg",
    melgram: np.ndarray | None = None,
    audio: Any = None,
    sr: int | None = None,
) -> str:
    """A self-contained HTML page: player, melgram, timeline with cursor, sections.

    Parameters
    ----------
    result : Result
        What :func:`genre_infer.classify` returned.
    audio_src : str, optional
        URL or relative path the player loads (``link`` mode).
    audio_bytes : bytes, optional
        The audio file's bytes, embedded as a data URI (``embed`` mode; wins over ``audio_src``).
    audio_mime : str
        MIME type of ``audio_bytes``.
    melgram : np.ndarray, optional
        A precomputed :func:`display_melgram`; otherwise computed from ``audio`` or ``result.source``.
    audio, sr : optional
        The audio for the melgram when ``result.source`` is not a file.

    Returns
    -------
    str
        The HTML document; its ``genre-data`` script element holds ``result.to_dict()``.
    """
    if melgram is None:
        src = audio if audio is not None else result.source
        melgram = display_melgram(src, sr) if src is not None else np.zeros((64, 1), np.float32)
    if audio_bytes is not None:
        if not re.fullmatch(r"audio/[A-Za-z0-9.+-]+", audio_mime):
            raise ValueError(f"audio_mime must be an audio/... type, not {audio_mime!r}")
        player_src = f"data:{audio_mime};base64,{base64.b64encode(audio_bytes).decode('ascii')}"
    else:
        player_src = _checked_src(audio_src) if audio_src else ""
    d = result.to_dict()
    if result.source is not None:
        d["file"] = display_path(result.source)
    name = Path(d["file"]).name if d["file"] else "audio"
    view = {"colours": genre_colours(result.labels),
            "melgram": "data:image/png;base64," + base64.b64encode(_png(melgram)).decode("ascii")}
    head = _HEAD.format(csp=_CSP_REPORT, title=html.escape(f"{name} — genre-infer"), style=_STYLE)
    return head + _TEMPLATE.format(
        title=html.escape(name),
        verdict=html.escape(_verdict_text(result)),
        audio_src=html.escape(player_src, quote=True),
        meta=html.escape(f"{format_time(result.duration)} · model {result.model_name} {result.model_version} · "
                         "made by genre-infer"),
        data=script_json(d),
        view=script_json(view),
        script=_SCRIPT,
    )


def audio_for_html(path: str | os.PathLike[str], mode: str, report_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Keyword arguments of :func:`html_report` for an audio file: embedded, or linked by a
    relative, percent-encoded URL (:func:`file_href`)."""
    path = Path(path)
    if mode == "embed":
        size = path.stat().st_size
        if size > MAX_EMBED_BYTES:
            raise ReportError(f"too large to embed in the report ({size / 1e6:.0f} MB; at most "
                              f"{MAX_EMBED_BYTES / 1e6:.0f} MB): use --html-audio link")
        return {"audio_bytes": path.read_bytes(), "audio_mime": _MIME.get(path.suffix.lower(), "audio/mpeg")}
    return {"audio_src": file_href(path, Path(report_path).resolve().parent)}


def html_index(entries: list[tuple[str, str, Result]]) -> str:
    """An index page linking several reports: ``(report file name, display name, result)`` per song.

    The report's file name (beside the index) is linked by :func:`file_href`'s encoding; every
    name is text on the page, and the page runs no script.
    """
    slots = {g: i % len(_PALETTE) for i, g in enumerate(entries[0][2].labels)} if entries else {}

    def href(name: str) -> str:
        return "/".join(urllib.parse.quote(os.fsencode(part), safe="") for part in Path(name).parts)

    def swatch(genre: str) -> str:
        return f'<i class="sw c{slots[genre]}"></i>' if genre in slots else '<i class="sw cx"></i>'

    rows = "\n".join(
        f'<tr><td><a href="{html.escape(href(file), quote=True)}">{html.escape(name)}</a></td>'
        f"<td>{format_time(r.duration)}</td><td>{swatch(r.genre)}"
        f"{html.escape(r.genre)} {r.confidence:.0%}</td>"
        f"<td>{html.escape(' · '.join(f'{format_time(s.start)} {s.genre}' for s in r.sections))}</td></tr>"
        for file, name, r in entries
    )
    return _HEAD.format(csp=_CSP_INDEX, title="genre-infer reports", style=_STYLE) + f"""<h1>genre-infer: {len(entries)} songs</h1>
<table><tr><th>song</th><th>length</th><th>genre</th><th>sections</th></tr>
{rows}
</table></body></html>
"""
