"""Stream networks: consecutive stretches hand their frame embeddings on, so no frame is embedded twice.

The models run on the CPU here: these tests compare stretches with the whole to 1e-5, and cuDNN
may pick a different convolution algorithm for every input length (about 1e-4 apart on an H100;
``test_model.test_cuda_gives_the_cpu_timeline`` checks the CUDA path).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SR, build_toy_sequence_model, build_toy_stream_model
from signals import noise, tone

from genre_infer import features as feat
from genre_infer.api import Classifier
from genre_infer.audio import from_array
from genre_infer.errors import ModelError
from genre_infer.inference import SequenceRunner, StreamRunner, make_runner
from genre_infer.model import GenreModel, ModelInfo


def _signal() -> np.ndarray:
    """70 s that changes every 10 s, so every frame matters."""
    return np.concatenate([tone(SR, 10.0, 110.0) if k % 2 == 0 else noise(SR, 10.0) for k in range(7)])


def _whole(model: GenreModel, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference: one call embeds every frame and pools every window."""
    x = feat.compute(y, model.features)
    starts = feat.window_starts(len(x), model.features)
    logits, frames = model.stream_logits(x, (0, len(x)), np.zeros((0, model.frame_dim)), starts)
    assert frames.shape == (len(x), model.frame_dim)
    return logits, starts


def _chunked(model: GenreModel, y: np.ndarray, chunk_frames: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    stream, runner = feat.FeatureStream(model.features), StreamRunner(model, chunk_frames)
    embedded: list[tuple[int, int]] = []
    real = model.stream_logits

    def spy(x, keep, past, starts):  # type: ignore[no-untyped-def]
        embedded.append((runner.embedded, runner.embedded + keep[1] - keep[0]))
        assert len(x) <= keep[1] - keep[0] + 2 * model.info.network.context_frames
        return real(x, keep, past, starts)

    model.stream_logits = spy  # type: ignore[method-assign]
    for i in range(0, len(y), block):
        runner.push(stream.push(y[i : i + block]))
        # memory stays flat: a stretch of features and a window of embeddings, whatever the length
        assert len(runner.buf) <= chunk_frames + 2 * model.info.network.context_frames + block // 256 + 2
        assert len(runner.emb) <= model.features.segment_frames + feat.window_hop_frames(model.features) + 2
    runner.push(stream.finish())
    out = runner.finish()
    # every frame embedded exactly once, in order
    assert embedded[0][0] == 0 and all(a[1] == b[0] for a, b in zip(embedded, embedded[1:]))
    assert embedded[-1][1] == runner.n_frames and len(embedded) >= runner.n_frames // chunk_frames
    return out


@pytest.mark.parametrize("chunk_frames,block", [(16, 1000), (64, 1000), (200, 4321), (2048, 16000)])
def test_stretches_equal_one_call_over_the_whole(toy_stream_model: Path, chunk_frames: int, block: int) -> None:
    model = GenreModel(toy_stream_model, device="cpu")
    y = from_array(_signal(), SR, model.features.sr)
    ref, ref_starts = _whole(model, y)
    got, starts = _chunked(model, y, chunk_frames, block)
    np.testing.assert_array_equal(starts, ref_starts)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_stream_and_sequence_twins_agree(toy_stream_model: Path, toy_sequence_model: Path) -> None:
    y = from_array(_signal(), SR, 16000)
    out = []
    for path, cls in ((toy_sequence_model, SequenceRunner), (toy_stream_model, StreamRunner)):
        model = GenreModel(path, device="cpu")
        runner = make_runner(model)
        assert isinstance(runner, cls)
        runner.push(feat.compute(y, model.features))
        out.append(runner.finish())
    np.testing.assert_array_equal(out[0][1], out[1][1])
    np.testing.assert_allclose(out[0][0], out[1][0], atol=1e-5)


def test_too_little_context_is_detected(tmp_path: Path) -> None:
    model = GenreModel(build_toy_stream_model(tmp_path / "no-context.onnx", context_frames=0), device="cpu")
    y = from_array(_signal(), SR, model.features.sr)
    ref, _ = _whole(model, y)
    got, _ = _chunked(model, y, 64, 5000)
    assert np.abs(got - ref).max() > 1e-3


def test_stream_model_classifies(toy_stream_model: Path) -> None:
    clf = Classifier(toy_stream_model)
    assert clf.classify(tone(SR, 6.0, 110.0), SR).genre == "low"
    assert clf.classify(noise(SR, 6.0), SR).genre == "high"
    r = clf.classify(np.concatenate([tone(SR, 10.0, 110.0), noise(SR, 10.0)]), SR)
    assert [s.genre for s in r.sections] == ["low", "high"]
    short = clf.classify(tone(SR, 1.5, 110.0), SR)  # shorter than one window: repeated to fill it
    assert short.genre == "low" and np.isclose(short.probabilities.sum(), 1.0)


def test_stream_metadata_and_refusals(toy_stream_model: Path, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    meta = json.loads(ort.InferenceSession(str(toy_stream_model)).get_modelmeta().custom_metadata_map["genre_infer"])
    assert meta["format_version"] == 3 and meta["network"] == {"layout": "stream", "context_frames": 2}
    assert ModelInfo.from_metadata(meta).to_metadata() == meta
    with pytest.raises(ModelError, match="format 3"):
        ModelInfo.from_metadata({**meta, "format_version": 2})
    # a sequence graph under stream metadata is refused before any audio is read
    seq = onnx.load(str(build_toy_sequence_model(tmp_path / "seq.onnx")))
    seq.metadata_props[0].value = json.dumps(meta)
    onnx.save(seq, str(tmp_path / "seq-as-stream.onnx"))
    with pytest.raises(ModelError, match="stream network takes inputs"):
        GenreModel(tmp_path / "seq-as-stream.onnx")


@pytest.mark.parametrize("seconds", [2.016, 2.1, 4.0, 9.3])
@pytest.mark.parametrize("chunk_frames", [1, 16, 100, 512])
def test_any_length_and_stretch_equals_one_call(toy_stream_model: Path, seconds: float, chunk_frames: int) -> None:
    """Short signals (one window, or one window and a few frames) and stretches shorter than a
    window hop (calls that complete no window) give the one-call result too."""
    model = GenreModel(toy_stream_model, device="cpu")
    rng = np.random.default_rng(int(seconds * 1000) + chunk_frames)
    y = (0.3 * rng.standard_normal(int(seconds * model.features.sr))).astype(np.float32)
    x = feat.compute(y, model.features)
    assert len(x) >= model.features.segment_frames
    ref, ref_starts = _whole(model, y)
    runner = StreamRunner(model, chunk_frames)
    for i in range(0, len(x), 37):
        runner.push(x[i : i + 37])
    got, starts = runner.finish()
    np.testing.assert_array_equal(starts, ref_starts)
    np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("n_frames,chunk_frames", [(128, 64), (200, 100), (1000, 64)])
def test_no_context_keeps_the_end_aligned_window(tmp_path: Path, n_frames: int, chunk_frames: int) -> None:
    """A stream network may declare no context; the window aligned to the end is still pooled."""
    model = GenreModel(build_toy_stream_model(tmp_path / "ctx0.onnx", context_frames=0), device="cpu")
    x = np.random.default_rng(n_frames).standard_normal((n_frames, model.features.n_bands)).astype(np.float32)
    runner = StreamRunner(model, chunk_frames)
    for i in range(0, n_frames, chunk_frames):
        runner.push(x[i : i + chunk_frames])
    _, starts = runner.finish()
    np.testing.assert_array_equal(starts, feat.window_starts(n_frames, model.features))


def test_one_long_push_keeps_memory_bounded(toy_stream_model: Path) -> None:
    """An array handed over whole (the API's case) is embedded stretch by stretch, and no call
    gets more past rows than one window needs."""
    model = GenreModel(toy_stream_model, device="cpu")
    x = np.random.default_rng(3).standard_normal((20000, model.features.n_bands)).astype(np.float32)
    runner, pasts = StreamRunner(model, 256), []
    real = model.stream_logits

    def spy(x_, keep, past, starts):  # type: ignore[no-untyped-def]
        pasts.append(len(past))
        return real(x_, keep, past, starts)

    model.stream_logits = spy  # type: ignore[method-assign]
    runner.push(x)
    got, starts = runner.finish()
    assert len(pasts) >= 20000 // 256
    assert max(pasts) <= model.features.segment_frames + feat.window_hop_frames(model.features) + 2
    np.testing.assert_array_equal(starts, feat.window_starts(len(x), model.features))
    whole, _ = real(x, (0, len(x)), np.zeros((0, model.frame_dim)), starts)
    np.testing.assert_allclose(got, whole, atol=1e-5)
