"""Sequence (fully convolutional) networks: one call over long stretches, windows pooled from frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SR, build_toy_sequence_model
from signals import noise, tone

from genre_infer import features as feat
from genre_infer.api import Classifier
from genre_infer.audio import from_array
from genre_infer.errors import ModelError
from genre_infer.inference import SequenceRunner
from genre_infer.model import GenreModel, ModelInfo, window_frame_ranges


def _signal() -> np.ndarray:
    """70 s that changes every 10 s, so every frame's logits matter."""
    parts = [tone(SR, 10.0, 110.0) if k % 2 == 0 else noise(SR, 10.0) for k in range(7)]
    return np.concatenate(parts)


def _whole(model: GenreModel, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference: one network call over the whole signal's features."""
    spec = model.features
    x = feat.compute(y, spec)
    z = model.frame_logits(x)
    starts = feat.window_starts(len(x), spec)
    lo, hi = window_frame_ranges(starts, spec.segment_frames, model.info.network.stride, len(z))
    return np.stack([z[a:b].mean(0) for a, b in zip(lo, hi)]), starts


def _chunked(model: GenreModel, y: np.ndarray, chunk_frames: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    spec = model.features
    stream, runner = feat.FeatureStream(spec), SequenceRunner(model, chunk_frames)
    for i in range(0, len(y), block):
        runner.push(stream.push(y[i : i + block]))
    runner.push(stream.finish())
    return runner.finish()


@pytest.mark.parametrize("chunk_frames,block", [(64, 1000), (200, 4321), (2048, 16000)])
def test_stretches_equal_one_call_over_the_whole(toy_sequence_model: Path, chunk_frames: int, block: int) -> None:
    model = GenreModel(toy_sequence_model)
    y = from_array(_signal(), SR, model.features.sr)
    ref, ref_starts = _whole(model, y)
    got, starts = _chunked(model, y, chunk_frames, block)
    np.testing.assert_array_equal(starts, ref_starts)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_too_little_context_is_detected(tmp_path: Path) -> None:
    """The overlap matters: a model that under-declares its context gives different stretch edges."""
    model = GenreModel(build_toy_sequence_model(tmp_path / "no-context.onnx", context_frames=0))
    y = from_array(_signal(), SR, model.features.sr)
    ref, _ = _whole(model, y)
    got, _ = _chunked(model, y, 64, 5000)
    assert np.abs(got - ref).max() > 1e-3


def test_sequence_model_classifies(toy_sequence_model: Path) -> None:
    clf = Classifier(toy_sequence_model)
    assert clf.classify(tone(SR, 6.0, 110.0), SR).genre == "low"
    assert clf.classify(noise(SR, 6.0), SR).genre == "high"
    r = clf.classify(np.concatenate([tone(SR, 10.0, 110.0), noise(SR, 10.0)]), SR)
    assert [s.genre for s in r.sections] == ["low", "high"]
    assert abs(r.sections[0].end - 10.0) <= 1.0
    short = clf.classify(tone(SR, 1.5, 110.0), SR)  # shorter than one window: repeated to fill it
    assert short.genre == "low" and np.isclose(short.probabilities.sum(), 1.0)


def test_window_frame_ranges_cover_each_window() -> None:
    lo, hi = window_frame_ranges(np.array([0, 62, 125, 813]), 187, 8, 125)
    assert lo.tolist() == [0, 8, 16, 102] and hi.tolist() == [24, 32, 39, 125]
    lo, hi = window_frame_ranges(np.array([0]), 187, 8, 3)  # fewer outputs than the window spans
    assert (lo.tolist(), hi.tolist()) == ([0], [3])


def test_sequence_metadata_round_trip_and_refusals(toy_sequence_model: Path) -> None:
    import onnxruntime as ort

    meta = json.loads(ort.InferenceSession(str(toy_sequence_model)).get_modelmeta().custom_metadata_map["genre_infer"])
    assert meta["format_version"] == 2 and meta["network"] == {"layout": "sequence", "stride": 8, "context_frames": 16}
    assert ModelInfo.from_metadata(meta).to_metadata() == meta
    for bad, msg in [
        ({**meta, "format_version": 1}, "format 2"),
        ({**meta, "network": {"layout": "spiral"}}, "layout"),
        ({**meta, "network": {"layout": "sequence", "stride": 8, "context_frames": 12}}, "multiple"),
        ({**meta, "network": {"layout": "sequence", "dilation": 2}}, "unknown network"),
    ]:
        with pytest.raises(ModelError, match=msg):
            ModelInfo.from_metadata(bad)


def test_windowed_model_claiming_sequence_is_refused(tmp_path: Path) -> None:
    """A (batch, labels) output under sequence metadata is caught before any audio is read."""
    from conftest import build_toy_model

    from genre_infer.features import FeatureSpec
    from genre_infer.model import NetworkSpec

    info = ModelInfo("x", "1", ("low", "high"), FeatureSpec(segment_frames=63), network=NetworkSpec("sequence", 8, 16))
    path = build_toy_model(tmp_path / "liar.onnx", metadata=info.to_metadata())
    with pytest.raises(ModelError, match="output shape"):
        GenreModel(path)
