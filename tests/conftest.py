"""Shared fixtures: synthetic audio files and small ONNX models built in code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from signals import noise, rhythm, tone  # noqa: E402

from genre_infer.constants import METADATA_FORMAT_VERSION, METADATA_KEY  # noqa: E402
from genre_infer.features import FeatureSpec  # noqa: E402
from genre_infer.model import ModelInfo  # noqa: E402

SR = 22050
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gtzan"


def build_toy_model(
    path: Path,
    *,
    metadata: dict | str | None = "default",
    frames: int = 63,
    bands: int = 96,
    declared_frames: int | None = None,
) -> Path:
    """A two-genre model, "low" and "high", written with onnx.helper (no torch).

    logits = mean over time of the melgram @ W, where W scores the lower half
    of the mel bands for "low" and the upper half for "high": a low tone reads
    as "low", hissy noise as "high". Deterministic, so tests can assert genres.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.zeros((bands, 2), dtype=np.float32)
    w[: bands // 2, 0] = 1.0 / (bands // 2)
    w[bands // 2 :, 1] = 1.0 / (bands - bands // 2)
    w *= 8.0
    shape_frames = frames if declared_frames is None else declared_frames
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["features", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "W"], ["scores"]),
            helper.make_node("Sub", ["scores", "bias"], ["logits"]),
        ],
        "toy",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", shape_frames, bands])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(w, "W"),
            numpy_helper.from_array(np.array([0.0, 1.0], dtype=np.float32), "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    if metadata == "default":
        spec = FeatureSpec(segment_frames=frames, n_mels=bands)
        metadata = ModelInfo("toy", "1.0", ("low", "high"), spec).to_metadata()
    if metadata is not None:
        prop = model.metadata_props.add()
        prop.key = METADATA_KEY
        prop.value = metadata if isinstance(metadata, str) else json.dumps(metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _toy_frame_nodes(helper, out: str) -> list:  # type: ignore[no-untyped-def]
    """features (1, T, bands) → per-frame low/high scores smoothed over 5 frames, ``out`` (2, T)."""
    return [
        helper.make_node("MatMul", ["features", "W"], ["scores"]),          # (1, T, 2)
        helper.make_node("Transpose", ["scores"], ["st"], perm=[0, 2, 1]),  # (1, 2, T)
        helper.make_node("Conv", ["st", "K", "bias"], ["smoothed"], group=2, pads=[2, 2]),
        helper.make_node("Squeeze", ["smoothed", "zero"], [out]),
    ]


def _toy_window_mean_nodes(helper, TensorProto, rows: str) -> list:  # type: ignore[no-untyped-def]
    """Scores ``rows`` (2, R) → the mean over each window at ``starts``, ``logits`` (W, 2), exactly
    (cumulative sums in float64)."""
    return [
        helper.make_node("Cast", [rows], ["r64"], to=TensorProto.DOUBLE),
        helper.make_node("CumSum", ["r64", "one"], ["csum"]),
        helper.make_node("Pad", ["csum", "pads"], ["csum0"]),                # (2, R + 1)
        helper.make_node("Add", ["starts", "seg"], ["ends"]),
        helper.make_node("Gather", ["csum0", "ends"], ["hi"], axis=1),       # (2, W)
        helper.make_node("Gather", ["csum0", "starts"], ["lo"], axis=1),
        helper.make_node("Sub", ["hi", "lo"], ["sums"]),
        helper.make_node("Cast", ["sums"], ["sums32"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["sums32", "segf"], ["means"]),
        helper.make_node("Transpose", ["means"], ["logits"], perm=[1, 0]),  # (W, 2)
    ]


def _toy_initializers(numpy_helper, bands: int, segment_frames: int) -> list:  # type: ignore[no-untyped-def]
    w = np.zeros((bands, 2), dtype=np.float32)
    w[: bands // 2, 0] = 8.0 / (bands // 2)
    w[bands // 2 :, 1] = 8.0 / (bands - bands // 2)
    smooth = np.array([1, 2, 4, 2, 1], dtype=np.float32) / 10.0
    arrays = {
        "W": w, "K": np.stack([smooth, smooth])[:, None, :], "bias": np.array([0.0, -1.0], dtype=np.float32),
        "zero": np.array([0], dtype=np.int64), "one1": np.array([1], dtype=np.int64),
        "two1": np.array([2], dtype=np.int64), "one": np.array(1, dtype=np.int64),
        "pads": np.array([0, 1, 0, 0], dtype=np.int64), "seg": np.array(segment_frames, dtype=np.int64),
        "segf": np.array(segment_frames, dtype=np.float32),
    }
    return [numpy_helper.from_array(v, k) for k, v in arrays.items()]


def _save_toy(onnx, helper, graph, path: Path, info: ModelInfo) -> Path:  # type: ignore[no-untyped-def]
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    prop = model.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, json.dumps(info.to_metadata())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def build_toy_sequence_model(path: Path, *, context_frames: int = 2, bands: int = 96, segment_frames: int = 63) -> Path:
    """The toy model's sequence twin: features ``(1, frames, bands)`` + window starts → ``(windows, 2)``.

    Per-frame scores as :func:`build_toy_model`, smoothed over 5 frames (so the
    true context is 2 frames each side; the metadata may claim otherwise, to
    test the overlap logic), then averaged over each window with a cumulative sum.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from genre_infer.model import NetworkSpec

    graph = helper.make_graph(
        _toy_frame_nodes(helper, "frames2") + _toy_window_mean_nodes(helper, TensorProto, "frames2"),
        "toy_sequence",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, "frames", bands]),
         helper.make_tensor_value_info("starts", TensorProto.INT64, ["windows"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["windows", 2])],
        initializer=_toy_initializers(numpy_helper, bands, segment_frames),
    )
    spec = FeatureSpec(segment_frames=segment_frames, n_mels=bands)
    info = ModelInfo("toy-seq", "1.0", ("low", "high"), spec, network=NetworkSpec("sequence", context_frames))
    return _save_toy(onnx, helper, graph, path, info)


@pytest.fixture(scope="session")
def toy_sequence_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_sequence_model(tmp_path_factory.mktemp("models") / "toy-seq.onnx")


def build_toy_stream_model(path: Path, *, context_frames: int = 2, bands: int = 96, segment_frames: int = 63) -> Path:
    """The toy sequence model split at its frame scores (the ``stream`` layout).

    Per-frame scores smoothed over 5 frames as :func:`build_toy_sequence_model`;
    the rows ``[keep[0], keep[1])`` are returned as ``frames``, appended to ``past``,
    and each window of those rows is averaged with a cumulative sum.
    """
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from genre_infer.model import NetworkSpec

    split = [
        helper.make_node("Transpose", ["s2"], ["all"], perm=[1, 0]),        # (T, 2)
        helper.make_node("Slice", ["keep", "zero", "one1"], ["k0"]),
        helper.make_node("Slice", ["keep", "one1", "two1"], ["k1"]),
        helper.make_node("Slice", ["all", "k0", "k1", "zero"], ["frames"]),  # (K, 2)
        helper.make_node("Concat", ["past", "frames"], ["rows"], axis=0),   # (P + K, 2)
        helper.make_node("Transpose", ["rows"], ["rt"], perm=[1, 0]),       # (2, P + K)
    ]
    graph = helper.make_graph(
        _toy_frame_nodes(helper, "s2") + split + _toy_window_mean_nodes(helper, TensorProto, "rt"),
        "toy_stream",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, "frames", bands]),
         helper.make_tensor_value_info("keep", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("past", TensorProto.FLOAT, ["rows", 2]),
         helper.make_tensor_value_info("starts", TensorProto.INT64, ["windows"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["windows", 2]),
         helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["kept", 2])],
        initializer=_toy_initializers(numpy_helper, bands, segment_frames),
    )
    spec = FeatureSpec(segment_frames=segment_frames, n_mels=bands)
    info = ModelInfo("toy-stream", "1.0", ("low", "high"), spec, network=NetworkSpec("stream", context_frames))
    return _save_toy(onnx, helper, graph, path, info)


@pytest.fixture(scope="session")
def toy_stream_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_stream_model(tmp_path_factory.mktemp("models") / "toy-stream.onnx")


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_model(tmp_path_factory.mktemp("models") / "toy.onnx")


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic songs in every format libsndfile decodes."""
    d = tmp_path_factory.mktemp("audio")
    low = tone(SR, 6.0, 110.0)
    high = noise(SR, 6.0)
    sf.write(d / "low.wav", low, SR)
    sf.write(d / "high.flac", high, SR)
    sf.write(d / "low.ogg", low, SR)
    sf.write(d / "high.mp3", high, SR, format="MP3")
    sf.write(d / "low.opus", tone(48000, 6.0, 110.0), 48000, format="OGG", subtype="OPUS")
    sf.write(d / "stereo44k.wav", np.stack([low[: SR * 5], low[: SR * 5]], axis=1), SR)
    sf.write(d / "change.wav", np.concatenate([tone(SR, 10.0, 110.0), noise(SR, 10.0)]), SR)
    sf.write(d / "song.wav", rhythm(SR, 12.0), SR)
    (d / "notes.txt").write_text("not audio\n")
    return d


__all__ = ["build_toy_model", "build_toy_sequence_model", "SR", "DATA", "METADATA_FORMAT_VERSION"]
