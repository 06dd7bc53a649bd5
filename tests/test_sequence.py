"""Sequence networks: one call over a long stretch of frames pools many windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SR, build_toy_model, build_toy_sequence_model
from signals import noise, tone

from genre_infer import features as feat
from genre_infer.api import Classifier
from genre_infer.audio import from_array
from genre_infer.errors import ModelError
from genre_infer.features import FeatureSpec
from genre_infer.inference import SequenceRunner, WindowRunner
from genre_infer.model import GenreModel, ModelInfo, NetworkSpec


def _signal() -> np.ndarray:
    """70 s that changes every 10 s, so every frame matters."""
    return np.concatenate([tone(SR, 10.0, 110.0) if k % 2 == 0 else noise(SR, 10.0) for k in range(7)])


def _whole(model: GenreModel, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference: one network call over the whole signal's features."""
    x = feat.compute(y, model.features)
    starts = feat.window_starts(len(x), model.features)
    return model.sequence_logits(x, starts), starts


def _chunked(model: GenreModel, y: np.ndarray, chunk_frames: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    stream, runner = feat.FeatureStream(model.features), SequenceRunner(model, chunk_frames)
    calls = []
    real = model.sequence_logits
    model.sequence_logits = lambda x, s: (calls.append(len(x)), real(x, s))[1]  # type: ignore[method-assign]
    for i in range(0, len(y), block):
        runner.push(stream.push(y[i : i + block]))
        assert len(runner.buf) <= chunk_frames + 2 * model.features.segment_frames + block // 256 + 200
    runner.push(stream.finish())
    out = runner.finish()
    assert len(calls) > 1 or chunk_frames >= len(out[1]) * 63
    return out


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


def test_sequence_and_window_layouts_agree(toy_model: Path, toy_sequence_model: Path) -> None:
    """The two toy twins compute the same window scores up to the smoothing: same windows, same winners."""
    y = from_array(_signal(), SR, 16000)
    out = []
    for path, cls in ((toy_model, WindowRunner), (toy_sequence_model, SequenceRunner)):
        runner = cls(GenreModel(path))
        runner.push(feat.compute(y, runner.model.features))
        out.append(runner.finish())
    np.testing.assert_array_equal(out[0][1], out[1][1])
    assert (out[0][0].argmax(1) == out[1][0].argmax(1)).mean() > 0.9


def test_sequence_model_classifies(toy_sequence_model: Path) -> None:
    clf = Classifier(toy_sequence_model)
    assert clf.classify(tone(SR, 6.0, 110.0), SR).genre == "low"
    assert clf.classify(noise(SR, 6.0), SR).genre == "high"
    r = clf.classify(np.concatenate([tone(SR, 10.0, 110.0), noise(SR, 10.0)]), SR)
    assert [s.genre for s in r.sections] == ["low", "high"]
    assert abs(r.sections[0].end - 10.0) <= 1.0
    short = clf.classify(tone(SR, 1.5, 110.0), SR)  # shorter than one window: repeated to fill it
    assert short.genre == "low" and np.isclose(short.probabilities.sum(), 1.0)


def test_sequence_metadata_round_trip_and_refusals(toy_sequence_model: Path) -> None:
    import onnxruntime as ort

    meta = json.loads(ort.InferenceSession(str(toy_sequence_model)).get_modelmeta().custom_metadata_map["genre_infer"])
    assert meta["format_version"] == 2 and meta["network"] == {"layout": "sequence", "context_frames": 2}
    assert ModelInfo.from_metadata(meta).to_metadata() == meta
    for bad, msg in [
        ({**meta, "format_version": 1}, "format 2"),
        ({**meta, "network": {"layout": "spiral"}}, "layout"),
        ({**meta, "network": {"layout": "sequence", "context_frames": -1}}, r"context_frames must be an integer in 0\.\."),
        ({**meta, "network": {"layout": "sequence", "dilation": 2}}, "unknown network"),
    ]:
        with pytest.raises(ModelError, match=msg):
            ModelInfo.from_metadata(bad)


def test_layout_and_graph_must_agree(tmp_path: Path) -> None:
    """A windowed graph under sequence metadata, and the reverse, are refused before any audio is read."""
    info = ModelInfo("x", "1", ("low", "high"), FeatureSpec(segment_frames=63), network=NetworkSpec("sequence", 2))
    with pytest.raises(ModelError, match="window starts"):
        GenreModel(build_toy_model(tmp_path / "liar.onnx", metadata=info.to_metadata()))
    seq = build_toy_sequence_model(tmp_path / "seq.onnx")
    import onnx

    m = onnx.load(str(seq))
    meta = json.loads(m.metadata_props[0].value)
    meta.pop("network")
    meta["format_version"] = 1
    m.metadata_props[0].value = json.dumps(meta)
    onnx.save(m, str(tmp_path / "seq-as-windows.onnx"))
    with pytest.raises(ModelError, match="one input"):
        GenreModel(tmp_path / "seq-as-windows.onnx")
