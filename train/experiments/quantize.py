"""8-bit front end for a musicnn model (``python -m train quantize``): the ``fast`` model.

musicnn spends about two thirds of its time in its two *timbral* convolutions
(204 filters of 7 frames x 38 and x 67 mel bands, each followed by a max over
frequency). This command quantizes exactly those two layers with onnxruntime's
static quantization (int8 weights per output channel, uint8 activations
calibrated on the *training* clips' melgrams; no validation or test audio is
seen), leaves everything else in float, and moves each max over frequency in
front of its dequantization (max commutes with a positive scale, so that move
is exact), so the large conv output stays one byte per value. The result runs
through the same runtime as any other model; its metadata is the source's,
with a new name and a ``quantized`` entry saying what was done; the source's held-out figures
move to ``metrics.source_metrics`` until ``python -m train set-metrics`` stores the quantized
model's own.

What it costs in accuracy is measured, not assumed: quantize the validation
model of a transfer run (``python -m train transfer --export-valid``) and
score both with ``python -m train evaluate``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from genre_infer import audio as gi_audio
from genre_infer import features as gi_features
from genre_infer.constants import METADATA_KEY
from genre_infer.loudness import to_level
from genre_infer.model import GenreModel, ModelInfo

from ..data import assign_splits, discover

__all__ = ["timbral_convs", "calibration_feeds", "quantize", "main"]

#: Frames per calibration stretch: one sequence-layout call (512 window starts, a window and the
#: context); a stream call embeds fewer (512 + context), so these cover its activation ranges too.
CALIB_FRAMES = 859
#: Training clips whose melgrams calibrate the activation ranges.
CALIB_CLIPS = 30


def timbral_convs(model: Any) -> list[str]:
    """Names of the Conv nodes that span several mel bands and feed a max over frequency."""
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    names = []
    for n in model.graph.node:
        w = weights.get(n.input[1]) if n.op_type == "Conv" and len(n.input) > 1 else None
        if w is None or w.ndim != 4 or w.shape[1] != 1 or w.shape[3] == 1:
            continue
        if [c.op_type for c in consumers.get(n.output[0], [])] == ["ReduceMax"]:
            names.append(n.name)
    return names


def calibration_feeds(model: GenreModel, data: Path, n_clips: int = CALIB_CLIPS,
                      seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Runtime-sized stretches of training clips' features (one per clip) as onnxruntime feeds."""
    spec = model.features
    rng = np.random.default_rng(seed)
    tracks, _ = discover(data)
    assign_splits(tracks, data)
    train = sorted((t for t in tracks if t.split == "train"), key=lambda t: t.rel)
    if not train:
        raise RuntimeError(f"{data}: no training clips to calibrate on")
    feeds = []
    for i in rng.choice(len(train), min(n_clips, len(train)), replace=False):
        y = to_level(gi_audio.load(train[i].path, spec.sr), spec.sr, spec.level_db)  # as the runtime hears it
        x = gi_features.compute(y, spec).astype(np.float32)
        lo = int(rng.integers(0, max(1, len(x) - CALIB_FRAMES)))
        x = x[lo : lo + CALIB_FRAMES]
        starts = gi_features.window_starts(len(x), spec).astype(np.int64)
        feeds.append(_feed(model, x, starts))
    return feeds


def _feed(model: GenreModel, x: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
    """onnxruntime inputs for one whole stretch ``x (frames, bands)`` in the model's layout."""
    if model.info.network.layout == "stream":  # every frame kept, nothing handed on
        return {"features": x[None], "keep": np.array([0, len(x)], dtype=np.int64),
                "past": np.zeros((0, model.frame_dim), dtype=np.float32), "starts": starts}
    return {"features": x[None], "starts": starts}


def _logits(model: GenreModel, feed: dict[str, np.ndarray]) -> np.ndarray:
    return model.session.run(["logits"], feed)[0]


def _max_before_dequantize(model: Any) -> int:
    """Rewrite ``Q → DQ → ReduceMax`` as ``Q → ReduceMax → DQ`` (exact: the scale is positive)."""
    nodes = list(model.graph.node)  # edited as a list, written back once (protobuf hands out copies)
    producers = {o: n for n in nodes for o in n.output}
    n_uses: dict[str, int] = {}
    for n in nodes:
        for i in n.input:
            n_uses[i] = n_uses.get(i, 0) + 1
    moved = 0
    for red in [n for n in nodes if n.op_type == "ReduceMax"]:
        dq = producers.get(red.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or n_uses[dq.output[0]] != 1:
            continue
        out = red.output[0]
        red.input[0], red.output[0] = dq.input[0], out + "_quantized"  # max over the 8-bit values,
        dq.input[0], dq.output[0] = red.output[0], out                 # then dequantize the small result
        nodes.remove(dq)
        nodes.insert(nodes.index(red) + 1, dq)  # keep the list topologically sorted
        moved += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return moved


def quantize(src: Path, out: Path, feeds: list[dict[str, np.ndarray]], name: str | None = None) -> dict[str, Any]:
    """Quantize ``src``'s timbral convolutions to 8 bits and write ``out`` (atomically).

    ``feeds`` calibrate the activation ranges (:func:`calibration_feeds`: training clips).

    Returns
    -------
    dict
        The ``quantized`` metadata entry plus ``max_abs_logit_diff`` and
        ``argmax_agreement`` against ``src`` on the calibration stretches.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32 = GenreModel(src, device="cpu")
    if fp32.info.network.layout not in ("sequence", "stream"):
        raise RuntimeError(f"{src}: only sequence- and stream-layout models are quantized")
    nodes = timbral_convs(onnx.load(str(src)))
    if not nodes:
        raise RuntimeError(f"{src}: no timbral convolutions found (is it a musicnn model?)")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "q.onnx"
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=False)
        quantize_static(str(pre), str(q), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"],
                        nodes_to_quantize=nodes)
        model = onnx.load(str(q))
    moved = _max_before_dequantize(model)
    entry = {"what": "int8 weights (per channel) and uint8 activations in the timbral convolutions; "
                     "the rest float32", "nodes": nodes, "calibration": f"{len(feeds)} training clips, MinMax",
             "max_before_dequantize": moved, "source": {"name": fp32.info.name, "version": fp32.info.version}}
    meta = fp32.info.to_metadata()
    # the source's held-out figures are not this model's: kept aside until `train set-metrics` stores its own
    old = meta.get("metrics", {})
    metrics_doc = {"source_metrics": {k: old.get(k) for k in ("valid", "test")}, "calibration": old.get("calibration"),
                   "note": "valid: the same quantization of the validation model (trained without valid); "
                           "test: this file; source_metrics: the float model it was quantized from"}
    info = ModelInfo.from_metadata({**meta, "name": name or f"{fp32.info.name}-int8", "quantized": entry,
                                    "metrics": metrics_doc})
    del model.metadata_props[:]
    prop = model.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, json.dumps(info.to_metadata())
    onnx.checker.check_model(model)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=out.parent, prefix=f".{out.stem}-")
    os.close(fd)
    try:
        onnx.save(model, tmp_name)
        q8 = GenreModel(tmp_name, device="cpu")
        diffs, agree = [], []
        for f in feeds:
            a, b = _logits(fp32, f), _logits(q8, f)
            diffs.append(float(np.abs(a - b).max()))
            agree.append(a.argmax(1) == b.argmax(1))
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, out)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return {**entry, "max_abs_logit_diff": max(diffs), "argmax_agreement": float(np.concatenate(agree).mean())}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m train quantize SRC.onnx --out DST.onnx``."""
    from ..constants import REPO_ROOT

    ap = argparse.ArgumentParser(prog="python -m train quantize", description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="an exported musicnn model (sequence or stream layout)")
    ap.add_argument("--out", type=Path, required=True, help="where to write the quantized model")
    ap.add_argument("--name", default=None, help="model name (default: the source's name + '-int8')")
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data" / "gtzan",
                    help="data root: its training clips calibrate the activations")
    a = ap.parse_args(argv)
    res = quantize(a.src, a.out, calibration_feeds(GenreModel(a.src, device="cpu"), a.data), a.name)
    print(f"quantized {a.src} -> {a.out}: " + json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
