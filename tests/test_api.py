"""classify() and load_model(): results, timelines, sections, errors."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from conftest import SR, build_toy_model
from genre_infer import (
    AudioError, Classifier, Result, SilentError, TooShortError, classify, load_model,
)
from signals import noise, rhythm, tone


@pytest.fixture(scope="module")
def clf(toy_model: Path) -> Classifier:
    return load_model(toy_model, device="cpu")


@pytest.mark.parametrize("name,genre", [
    ("low.wav", "low"), ("low.ogg", "low"), ("low.opus", "low"), ("high.flac", "high"), ("high.mp3", "high"),
])
def test_file_genres(clf: Classifier, audio_dir: Path, name: str, genre: str) -> None:
    r = clf.classify(audio_dir / name)
    assert r.genre == genre and r.confidence > 0.9
    assert r.source == str(audio_dir / name)


def test_timeline_follows_a_change_of_genre(clf: Classifier, audio_dir: Path) -> None:
    r = clf.classify(audio_dir / "change.wav")
    assert [(s.genre, round(s.start), round(s.end)) for s in r.sections] == [("low", 0, 10), ("high", 10, 20)]
    genres = [row.genre for row in r.timeline]
    assert len(genres) == 20
    assert genres[:9] == ["low"] * 9 and genres[-9:] == ["high"] * 9
    assert r.timeline[0].start == 0 and r.timeline[-1].end == pytest.approx(20.0, abs=1e-3)


def test_array_input_matches_file_input(clf: Classifier, audio_dir: Path) -> None:
    import soundfile as sf

    y, sr = sf.read(audio_dir / "change.wav", dtype="float32")
    from_array = clf.classify(y, sr=sr)
    from_file = clf.classify(audio_dir / "change.wav")
    np.testing.assert_allclose(from_array.timeline_probabilities, from_file.timeline_probabilities, atol=1e-5)
    assert from_array.source is None


def test_stereo_int16_array_at_44k(clf: Classifier) -> None:
    y = tone(44100, 4.0, 110.0)
    stereo = (np.stack([y, y], axis=1) * 32767).astype(np.int16)
    assert clf.classify(stereo, sr=44100).genre == "low"


@pytest.mark.parametrize("seconds", [1.2, 3.0, 7.77, 40.3])
@pytest.mark.parametrize("n_blocks", [1, 3, 40])
def test_streaming_equals_whole_signal(clf: Classifier, seconds: float, n_blocks: int) -> None:
    from genre_infer import features as F

    y = np.concatenate([tone(16000, seconds / 2, 110.0), noise(16000, seconds / 2)])
    a = clf.analyse(np.array_split(y, n_blocks))
    spec = clf.model.features
    padded = np.tile(y, int(np.ceil(spec.segment_samples / len(y)))) if len(y) < spec.segment_samples else y
    x = F.compute(padded, spec)
    starts = F.window_starts(len(x), spec)
    expected = clf.model.probabilities(F.frame_windows(x, starts, spec.segment_frames))
    np.testing.assert_allclose(a.starts_s, starts * spec.hop_length / spec.sr)
    np.testing.assert_allclose(a.probs, expected, atol=1e-5)
    assert a.n_samples == len(y) and a.peak == pytest.approx(np.abs(y).max(), rel=0.1)  # less each block's mean


def test_long_file_is_streamed_in_blocks(clf: Classifier, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    from genre_infer import audio

    sf.write(tmp_path / "long.flac", np.concatenate([tone(SR, 50.0, 110.0), noise(SR, 50.0)]), SR)
    seen: list[int] = []
    real = audio.stream

    def spy(path, sr, block_s=audio.DECODE_BLOCK_S):  # type: ignore[no-untyped-def]
        for block in real(path, sr, block_s=7.0):
            seen.append(len(block))
            yield block

    monkeypatch.setattr(audio, "stream", spy)
    r = clf.classify(tmp_path / "long.flac")
    assert len(seen) >= 14 and max(seen) <= 7.0 * 16000 * 1.01  # soxr shifts a few samples
    assert [(s.genre, round(s.start), round(s.end)) for s in r.sections] == [("low", 0, 50), ("high", 50, 100)]


def test_result_schema(clf: Classifier, audio_dir: Path) -> None:
    r = clf.classify(audio_dir / "song.wav")
    assert isinstance(r, Result)
    d = r.to_dict(top_k=1)
    assert set(d) == {"schema_version", "file", "duration", "model", "genre", "confidence", "top",
                      "probabilities", "sections", "timeline"}
    assert d["model"] == {"name": "toy", "version": "1.0"}
    assert len(d["top"]) == 1 and d["top"][0]["genre"] == d["genre"]
    assert abs(sum(d["probabilities"].values()) - 1) < 1e-3
    assert len(d["timeline"]) == 12
    row = d["timeline"][3]
    assert set(row) == {"start", "end", "genre", "confidence", "probabilities"}
    assert (row["start"], row["end"]) == (3.0, 4.0)
    assert d["sections"][0]["start"] == 0 and d["sections"][-1]["end"] == d["duration"]
    assert "timeline" not in r.to_dict(timeline=False)


def test_short_input_is_padded_not_refused(clf: Classifier) -> None:
    r = clf.classify(tone(SR, 1.5, 110.0), sr=SR)
    assert r.genre == "low" and len(r.timeline) == 2 and r.duration == pytest.approx(1.5)


def test_too_short(clf: Classifier) -> None:
    with pytest.raises(TooShortError, match="too short"):
        clf.classify(tone(SR, 0.01), sr=SR)


@pytest.mark.parametrize("y", [np.zeros(SR * 3, np.float32), np.full(SR * 3, 1e-6, np.float32)])
def test_silent(clf: Classifier, y: np.ndarray) -> None:
    with pytest.raises(SilentError, match="silent"):
        clf.classify(y, sr=SR)


def test_array_without_sr_and_wrong_types(clf: Classifier) -> None:
    with pytest.raises(AudioError, match="sample rate"):
        clf.classify(np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="file path or a numpy array"):
        clf.classify(12345)  # type: ignore[arg-type]


def test_classify_caches_and_reuses_models(toy_model: Path) -> None:
    a = classify(tone(SR, 3.0), sr=SR, model=toy_model)
    b = classify(noise(SR, 3.0), sr=SR, model=str(toy_model))
    assert (a.genre, b.genre) == ("low", "high")
    from genre_infer import api

    assert sum(1 for k in api._cache if k[0] == str(toy_model)) == 1


def test_one_classifier_many_threads(clf: Classifier) -> None:
    inputs = [tone(SR, 3.0, 110.0 + i) if i % 2 == 0 else noise(SR, 3.0, seed=i) for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        genres = list(pool.map(lambda y: clf.classify(y, sr=SR).genre, inputs))
    assert genres == ["low", "high"] * 4


def test_default_model_end_to_end() -> None:
    r = classify(rhythm(44100, 8.0), sr=44100)
    assert r.genre in r.labels and len(r.labels) == 11 and "electronic" in r.labels
    assert np.isclose(r.probabilities.sum(), 1.0, atol=1e-4)
    assert np.allclose(r.timeline_probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_dc_alone_is_silent_and_absurd_values_are_refused(clf: Classifier) -> None:
    from genre_infer.errors import AudioError, SilentError

    with pytest.raises(SilentError):
        clf.classify(np.full(16000 * 3, 0.5, dtype=np.float32), 16000)
    assert clf.classify(tone(16000, 3.0, 110.0) * 0.5 + 0.4, 16000).genre == "low"  # DC offset + signal
    with pytest.raises(AudioError, match="far outside"):
        clf.classify(tone(16000, 3.0, 110.0) * 1e30, 16000)


def test_a_model_with_timeline_smoothing_reports_the_smoothed_seconds(tmp_path: Path) -> None:
    """The runtime smooths the seconds as the model's metadata says, and the verdict follows them."""
    from genre_infer import timeline as tl
    from genre_infer.features import FeatureSpec
    from genre_infer.model import ModelInfo, TimelineSpec

    spec = FeatureSpec(segment_frames=63, n_mels=96)
    plain = build_toy_model(tmp_path / "plain.onnx")
    meta = ModelInfo("toy", "1.0", ("low", "high"), spec, timeline=TimelineSpec(0.1, 2.0)).to_metadata()
    smooth = build_toy_model(tmp_path / "smooth.onnx", metadata=meta)
    y = np.concatenate([tone(SR, 6.0, 110.0), noise(SR, 1.0), tone(SR, 6.0, 110.0)])
    a = load_model(plain, device="cpu").classify(y, sr=SR)
    b = load_model(smooth, device="cpu").classify(y, sr=SR)
    np.testing.assert_allclose(b.timeline_probabilities, tl.sticky_smooth(a.timeline_probabilities, 0.1, 2.0), atol=1e-6)
    np.testing.assert_allclose(b.probabilities, tl.verdict(b.timeline_probabilities, 1.0, b.duration), atol=1e-6)


def test_repr_names_the_model_and_device(toy_model: Path) -> None:
    text = repr(load_model(toy_model, device="cpu"))
    assert text.startswith("Classifier(") and "'toy'" in text and "'1.0'" in text and "device='cpu'" in text
    assert str(toy_model) in text


def test_a_pipe_is_classified(clf: Classifier, audio_dir: Path) -> None:
    """``/dev/stdin``, ``<(cat song.mp3)``: a stream with no size, read more than once inside."""
    import os
    import threading

    r, w = os.pipe()

    def feed() -> None:
        with os.fdopen(w, "wb") as f:
            f.write((audio_dir / "high.mp3").read_bytes())

    t = threading.Thread(target=feed)
    t.start()
    try:
        result = clf.classify(f"/dev/fd/{r}")
    finally:
        t.join(10)
        os.close(r)
    assert result.genre == "high" and result.source == f"/dev/fd/{r}"
