"""The schema of a model's metadata: every field's type and range, checked when the model loads.

A model file can come from anyone, so nothing in its metadata is trusted: integers must be
integers (not ``512.0``, ``"512"`` or ``true``), numbers finite (JSON's ``NaN`` and
``Infinity`` are refused), sizes within what a genre model can need (an ``n_fft`` of 10**9
would cost gigabytes per file before failing), labels a list of distinct, non-empty, short
strings, and free-form parts (``training``, ``metrics``) plain JSON of bounded depth. Anything
else raises ``ValueError`` with one line naming the field; :mod:`genre_infer.model` turns it
into a ``ModelError``.
"""

from __future__ import annotations

import math
import numbers
import unicodedata
from typing import Any, Mapping

__all__ = ["check_metadata", "check_features", "check_network", "check_timeline", "check_experts", "json_depth",
           "MAX_METADATA_BYTES", "MAX_DEPTH", "MAX_LABELS", "MAX_LABEL_CHARS"]

#: Largest metadata document read (bytes of JSON).
MAX_METADATA_BYTES = 1_000_000
#: Deepest nesting of lists and objects anywhere in the metadata.
MAX_DEPTH = 32
#: Genres a model may have, and the longest name one may have.
MAX_LABELS = 1000
MAX_LABEL_CHARS = 100
#: Longest model name and version.
MAX_NAME_CHARS = 100

LAYOUTS = ("windows", "sequence", "stream")
#: Experts (networks whose logits are added to a model's) one model may name.
MAX_EXPERTS = 4


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _int(d: Mapping[str, Any], key: str, lo: int, hi: int, where: str) -> int:
    v = d[key]
    if not _is_int(v) or not lo <= v <= hi:
        raise ValueError(f"{where}{key} must be an integer in {lo}..{hi}, not {_show(v)}")
    return int(v)


def _number(d: Mapping[str, Any], key: str, lo: float, hi: float, where: str, *,
            open_lo: bool = False, open_hi: bool = False) -> float:
    v = d[key]
    ok = _is_number(v) and (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
    if not ok:
        span = f"{'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
        raise ValueError(f"{where}{key} must be a finite number in {span}, not {_show(v)}")
    return float(v)


def _choice(d: Mapping[str, Any], key: str, choices: tuple[str, ...], where: str) -> str:
    v = d[key]
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{where}{key} must be one of {', '.join(choices)}, not {_show(v)}")
    return v


def _text(v: Any, what: str, most: int) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{what} must be a string, not {_show(v)}")
    if not v.strip() or len(v) > most:
        raise ValueError(f"{what} must be a non-blank string of at most {most} characters, not {_show(v)}")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in v):
        raise ValueError(f"{what} must not hold control or format characters: {_show(v)}")
    return v


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _only(d: Any, known: set[str], what: str) -> Mapping[str, Any]:
    if not isinstance(d, dict):
        raise ValueError(f"{what} must be a JSON object, not {_show(d)}")
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {what} parameters: {sorted(unknown)}")
    return d


def check_features(d: Mapping[str, Any]) -> None:
    """Check a ``features`` entry (every field of :class:`~genre_infer.features.FeatureSpec` present)."""
    w = "features."
    _choice(d, "kind", ("melgram", "mfcc"), w)
    _choice(d, "compression", ("log10_1p", "db", "ln"), w)
    sr = _int(d, "sr", 1000, 192000, w)
    n_fft = _int(d, "n_fft", 16, 65536, w)
    hop = _int(d, "hop_length", 1, n_fft, w)
    n_mels = _int(d, "n_mels", 1, 1024, w)
    _int(d, "n_mfcc", 1, n_mels if d["kind"] == "mfcc" else 1024, w)
    fmin = _number(d, "fmin", 0.0, sr / 2, w, open_hi=True)
    if d["fmax"] is not None:
        _number(d, "fmax", fmin, sr / 2, w, open_lo=True)
    _number(d, "log_scale", 0.0, 1e12, w, open_lo=True)
    seg = _int(d, "segment_frames", 1, 1_000_000, w)
    if seg * hop / sr > 600.0:
        raise ValueError(f"features: a window of {seg} frames lasts {seg * hop / sr:.0f} s (at most 600)")
    _number(d, "window_hop_s", hop / sr, 600.0, w)  # at least one frame: windows never outnumber frames
    _number(d, "mean", -1e6, 1e6, w)
    _number(d, "std", 1e-6, 1e6, w)
    if d.get("level_db") is not None:
        _number(d, "level_db", -60.0, 0.0, w)
    # EfficientAT's front end (metadata format 6); absent keys take FeatureSpec's defaults
    if "mel_scale" in d:
        _choice(d, "mel_scale", ("slaney", "kaldi"), w)
    if d.get("win_length") is not None:
        _int(d, "win_length", 1, n_fft, w)
    if "symmetric_window" in d and not isinstance(d["symmetric_window"], bool):
        raise ValueError(f"{w}symmetric_window must be true or false, not {_show(d['symmetric_window'])}")
    if "pad_mode" in d:
        _choice(d, "pad_mode", ("constant", "reflect"), w)
        if d["pad_mode"] == "reflect" and not hop < n_fft // 2:
            raise ValueError(f"{w}pad_mode reflect needs hop_length < n_fft // 2")
    if "preemphasis" in d:
        _number(d, "preemphasis", 0.0, 1.0, w, open_hi=True)
    if d.get("cutoff_hz") is not None:
        _number(d, "cutoff_hz", 0.0, sr / 2, w, open_lo=True)


def check_network(d: Any) -> None:
    """Check a ``network`` entry."""
    d = _only(d, {"layout", "context_frames", "chunk_frames"}, "network")
    if "layout" in d:
        _choice(d, "layout", LAYOUTS, "network.")
    if "context_frames" in d:
        _int(d, "context_frames", 0, 100_000, "network.")
    if d.get("chunk_frames") is not None:
        _int(d, "chunk_frames", 1, 1 << 16, "network.")


def check_timeline(d: Any) -> None:
    """Check a ``timeline`` entry."""
    d = _only(d, {"method", "switch_prob", "temperature"}, "timeline")
    if "switch_prob" not in d:
        raise ValueError("timeline needs switch_prob")
    _number(d, "switch_prob", 0.0, 1.0, "timeline.", open_lo=True, open_hi=True)
    if "method" in d:
        _choice(d, "method", ("sticky-hmm",), "timeline.")
    if "temperature" in d:
        _number(d, "temperature", 1e-3, 1e3, "timeline.")


def check_experts(experts: Any, n_labels: int) -> None:
    """Check an ``experts`` entry: at most :data:`MAX_EXPERTS` of ``{model, weights, sha256}``, the
    model a relative ``.onnx`` path inside the model's folder, one finite weight per label."""
    if not isinstance(experts, list) or len(experts) > MAX_EXPERTS:
        raise ValueError(f"experts must be a list of at most {MAX_EXPERTS} entries, not {_show(experts)}")
    for i, e in enumerate(experts):
        e = _only(e, {"model", "weights", "sha256"}, f"experts[{i}]")
        if set(e) != {"model", "weights", "sha256"}:
            raise ValueError(f"experts[{i}] needs model, weights and sha256")
        model = e["model"]
        if not isinstance(model, str) or not model.endswith(".onnx") or model.startswith(("/", "\\")) \
                or ".." in model.replace("\\", "/").split("/") or ":" in model:
            raise ValueError(f"experts[{i}].model must be a relative .onnx path inside the model's folder, "
                             f"not {_show(model)}")
        weights = e["weights"]
        if not isinstance(weights, list) or len(weights) != n_labels or not all(_is_number(w) for w in weights):
            raise ValueError(f"experts[{i}].weights must be {n_labels} finite numbers, not {_show(weights)}")
        digest = e["sha256"]
        if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"experts[{i}].sha256 must be 64 lowercase hex digits, not {_show(digest)}")


def json_depth(value: Any) -> int:
    """Nesting depth of lists and objects (0 for a scalar), without recursion."""
    depth, stack = 0, [(value, 1)]
    while stack:
        v, level = stack.pop()
        if isinstance(v, dict):
            items: Any = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        depth = max(depth, level)
        if depth > MAX_DEPTH:
            return depth
        stack.extend((x, level + 1) for x in items)
    return depth


def check_metadata(meta: Any, newest_format: int) -> None:
    """Check a whole metadata document (parsed JSON) against the schema.

    Raises
    ------
    ValueError
        One line naming the first field that is wrong.
    """
    if not isinstance(meta, dict):
        raise ValueError("metadata is not a JSON object")
    if json_depth(meta) > MAX_DEPTH:
        raise ValueError(f"metadata is nested more than {MAX_DEPTH} levels deep")
    for key in ("format_version", "name", "version", "labels", "features"):
        if key not in meta:
            raise ValueError(f"metadata has no {key}")
    _int(meta, "format_version", 1, newest_format, "")
    _text(meta["name"], "name", MAX_NAME_CHARS)
    _text(meta["version"], "version", MAX_NAME_CHARS)
    labels = meta["labels"]
    if not isinstance(labels, list) or not 2 <= len(labels) <= MAX_LABELS:
        raise ValueError(f"labels must be a list of 2..{MAX_LABELS} genre names, not {_show(labels)}")
    for i, label in enumerate(labels):
        _text(label, f"labels[{i}]", MAX_LABEL_CHARS)
    if len(set(labels)) != len(labels):
        raise ValueError("labels must be distinct")
    if not isinstance(meta["features"], dict):
        raise ValueError(f"features must be a JSON object, not {_show(meta['features'])}")
    if "temperature" in meta:
        _number(meta, "temperature", 1e-3, 1e3, "")
    if "uncertain_below" in meta:
        _number(meta, "uncertain_below", 0.0, 1.0, "")
    if "network" in meta:
        check_network(meta["network"])
    if "timeline" in meta:
        check_timeline(meta["timeline"])
    if "experts" in meta:
        check_experts(meta["experts"], len(labels))
