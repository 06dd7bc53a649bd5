"""Loudness normalisation: the gated level, the gain, and models that hear every song at one level."""

from pathlib import Path

import numpy as np
import pytest

from conftest import build_toy_model
from genre_infer import load_model
from genre_infer.constants import LEVEL_MAX_BOOST_DB, LEVEL_MAX_CUT_DB, METADATA_FORMAT_VERSION
from genre_infer.features import FeatureSpec
from genre_infer.loudness import LevelMeter, gain_to, gated_level_db
from genre_infer.model import LEVEL_FORMAT, ModelInfo
from signals import noise, rhythm, tone


def test_level_of_a_sine_and_block_invariance() -> None:
    sr = 16000
    y = tone(sr, 10.0, amp=0.5)
    assert gated_level_db(y, sr) == pytest.approx(10 * np.log10(np.mean(y.astype(np.float64) ** 2)), abs=0.01)
    meter = LevelMeter(sr)
    for part in np.array_split(y, [1, 7000, 7001, 50000, 123457]):
        meter.push(part)
    assert meter.level_db() == pytest.approx(gated_level_db(y, sr), abs=1e-9)


def test_silence_and_quiet_passages_are_gated() -> None:
    sr = 16000
    loud = tone(sr, 10.0, amp=0.5)
    with_silence = np.concatenate([np.zeros(sr * 20, np.float32), loud])
    with_quiet = np.concatenate([tone(sr, 10.0, amp=0.5 * 10 ** (-30 / 20)), loud])
    assert gated_level_db(with_silence, sr) == pytest.approx(gated_level_db(loud, sr), abs=1e-6)
    assert gated_level_db(with_quiet, sr) == pytest.approx(gated_level_db(loud, sr), abs=1e-6)
    assert gated_level_db(np.zeros(sr, np.float32), sr) is None
    assert gated_level_db(tone(sr, 0.1, amp=0.5), sr) == pytest.approx(gated_level_db(loud, sr), abs=0.1)


def test_gain_is_limited() -> None:
    assert gain_to(-20.0, -16.0) == pytest.approx(10 ** (4 / 20))
    assert gain_to(-90.0, -16.0) == pytest.approx(10 ** (LEVEL_MAX_BOOST_DB / 20))
    assert gain_to(10.0, -16.0) == pytest.approx(10 ** (-LEVEL_MAX_CUT_DB / 20))
    assert gain_to(None, -16.0) == 1.0


def test_metadata_format_and_old_documents() -> None:
    plain = ModelInfo("m", "1", ("a", "b"), FeatureSpec())
    assert "level_db" not in plain.to_metadata()["features"]  # unchanged for models without it
    levelled = ModelInfo("m", "1", ("a", "b"), FeatureSpec(level_db=-17.0))
    meta = levelled.to_metadata()
    assert meta["format_version"] == LEVEL_FORMAT <= METADATA_FORMAT_VERSION
    assert ModelInfo.from_metadata(meta).features.level_db == -17.0
    from genre_infer.errors import ModelError

    with pytest.raises(ModelError, match="format 4"):
        ModelInfo.from_metadata({**meta, "format_version": 1})
    with pytest.raises(ModelError, match="level_db"):
        ModelInfo.from_metadata({**meta, "features": {**meta["features"], "level_db": 12.0}})


@pytest.fixture(scope="module")
def levelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = FeatureSpec(segment_frames=63, level_db=-20.0)
    meta = ModelInfo("toy-level", "1.0", ("low", "high"), spec).to_metadata()
    return build_toy_model(tmp_path_factory.mktemp("models") / "level.onnx", metadata=meta)


def test_a_levelled_model_hears_every_level_alike(levelled: Path, toy_model: Path) -> None:
    sr = 22050
    y = rhythm(sr, 12.0) * np.float32(0.5)
    clf, plain = load_model(levelled), load_model(toy_model)
    results = [clf.classify(y * np.float32(10 ** (db / 20)), sr=sr) for db in (-24, -12, 0)]  # boosts stay < 30 dB
    for r in results[1:]:
        np.testing.assert_allclose(r.probabilities, results[0].probabilities, atol=1e-4)
    quiet, loud = (plain.classify(y * np.float32(10 ** (db / 20)), sr=sr) for db in (-30, 0))
    assert np.abs(quiet.probabilities - loud.probabilities).max() > 1e-2  # the plain toy is level-dependent


def test_files_are_measured_once_kept_or_decoded_twice(levelled: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    from genre_infer import api, audio

    sr = 16000
    y = np.concatenate([tone(sr, 20.0, amp=0.05), noise(sr, 20.0, amp=0.01)])
    path = tmp_path / "song.wav"
    sf.write(path, y, sr)
    decodes: list[str] = []
    real = audio.stream

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        decodes.append(str(args[0]))
        yield from real(*args, **kwargs)

    monkeypatch.setattr(audio, "stream", spy)
    clf = load_model(levelled)
    kept = clf.classify(path)
    assert len(decodes) == 1
    monkeypatch.setattr(api, "LEVEL_KEEP_S", 5.0)  # longer than this: streamed twice
    twice = clf.classify(path)
    assert len(decodes) == 3
    from_array = clf.classify(y, sr=sr)
    np.testing.assert_allclose(kept.timeline_probabilities, twice.timeline_probabilities, atol=1e-6)
    np.testing.assert_allclose(kept.timeline_probabilities, from_array.timeline_probabilities, atol=1e-4)


def test_analyse_needs_the_level_of_a_stream(levelled: Path) -> None:
    clf = load_model(levelled)
    y = tone(16000, 5.0)
    with pytest.raises(ValueError, match="level_db"):
        clf.analyse(iter([y]))
    a, b = clf.analyse([y]), clf.analyse(iter([y]), level_db=gated_level_db(y, 16000))
    np.testing.assert_allclose(a.logits, b.logits, atol=1e-6)


def test_short_signals_are_levelled_before_they_are_repeated(tmp_path: Path) -> None:
    """A signal shorter than one window is repeated to fill it: the repeats are levelled too."""
    spec = FeatureSpec(segment_frames=300, level_db=-20.0)  # 4.8-s windows
    meta = ModelInfo("toy-level-long", "1.0", ("low", "high"), spec).to_metadata()
    clf = load_model(build_toy_model(tmp_path / "long-window.onnx", metadata=meta, frames=300))
    y = rhythm(16000, 2.0) * np.float32(0.5)
    results = [clf.classify(y * np.float32(10 ** (db / 20)), sr=16000) for db in (0, -12, -24)]
    for r in results[1:]:
        np.testing.assert_allclose(r.probabilities, results[0].probabilities, atol=1e-4)


def test_dc_offset_non_finite_and_near_silent_signals() -> None:
    sr = 16000
    music = rhythm(sr, 10.0) * np.float32(0.01)
    assert gated_level_db(music + np.float32(0.1), sr) == pytest.approx(gated_level_db(music, sr), abs=0.01)
    with_inf = music.copy()
    with_inf[5000] = np.inf
    assert np.isfinite(gated_level_db(with_inf, sr))
    assert gain_to(float("nan"), -16.0) == 1.0
    whisper = tone(sr, 10.0, amp=10 ** (-72 / 20))  # every block under the silence gate, yet not silent
    level = gated_level_db(whisper, sr)
    assert level is not None and level < -70
    assert gain_to(level, -16.0) == pytest.approx(10 ** (LEVEL_MAX_BOOST_DB / 20))


def test_a_file_with_an_infinite_sample_is_refused(levelled: Path, tmp_path: Path) -> None:
    import soundfile as sf

    from genre_infer.errors import AudioError

    y = rhythm(16000, 8.0) * np.float32(0.5)
    y[1000] = np.inf
    sf.write(tmp_path / "inf.wav", y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        load_model(levelled).classify(tmp_path / "inf.wav")
