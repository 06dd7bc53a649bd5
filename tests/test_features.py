"""The feature code equals librosa's definitions, and windows cover the signal."""

import numpy as np
import pytest

from genre_infer import features as F
from signals import noise, rhythm

librosa = pytest.importorskip("librosa")


@pytest.fixture(scope="module")
def y() -> np.ndarray:
    return rhythm(16000, 5.0) + 0.05 * noise(16000, 5.0)


def test_melgram_matches_librosa(y: np.ndarray) -> None:
    spec = F.FeatureSpec()
    ours = F.melgram(y, spec)
    ref = np.log10(1 + 10000 * librosa.feature.melspectrogram(
        y=y, sr=16000, n_fft=512, hop_length=256, n_mels=96)).T
    assert ours.shape == ref.shape == (1 + len(y) // 256, 96)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_db_melgram_and_mfcc_match_librosa(y: np.ndarray) -> None:
    spec = F.FeatureSpec(kind="mfcc", compression="db", n_mfcc=13)
    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=256, n_mels=96)
    ref = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=None), n_mfcc=13).T
    ours = F.compute(y, spec)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-3 * np.abs(ref).max())
    db = F.melgram(y, F.FeatureSpec(compression="db"))
    np.testing.assert_allclose(db, librosa.power_to_db(mel, top_db=None).T, atol=0.01)  # dB


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (16000, 512, 96, 0.0, None), (22050, 2048, 128, 0.0, None), (44100, 1024, 40, 30.0, 11000.0),
])
def test_mel_filterbank_equals_librosa(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> None:
    ours = F._mel_basis(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    np.testing.assert_allclose(ours, ref, atol=1e-6 * ref.max())


def test_standardisation_is_applied(y: np.ndarray) -> None:
    raw = F.compute(y, F.FeatureSpec())
    std = F.compute(y, F.FeatureSpec(mean=1.5, std=2.0))
    np.testing.assert_allclose(std, (raw - 1.5) / 2.0, atol=1e-6)


@pytest.mark.parametrize("n_frames", [63, 64, 100, 187, 500, 1876])
def test_window_starts_cover_every_frame(n_frames: int) -> None:
    spec = F.FeatureSpec(segment_frames=63)
    starts = F.window_starts(n_frames, spec)
    assert starts[0] == 0 and starts[-1] == n_frames - 63
    assert np.all(np.diff(starts) > 0)
    hop = 16000 / 256
    assert np.all(np.diff(starts)[:-1] <= np.ceil(hop))


def test_window_starts_refuses_too_few_frames() -> None:
    with pytest.raises(ValueError):
        F.window_starts(10, F.FeatureSpec(segment_frames=63))


def test_frame_windows_are_slices() -> None:
    x = np.arange(200 * 4, dtype=np.float32).reshape(200, 4)
    starts = np.array([0, 50, 137])
    w = F.frame_windows(x, starts, 63)
    assert w.shape == (3, 63, 4) and w.flags.c_contiguous
    for i, s in enumerate(starts):
        np.testing.assert_array_equal(w[i], x[s : s + 63])


def test_spec_round_trip_and_validation() -> None:
    spec = F.FeatureSpec(kind="mfcc", n_mfcc=20, segment_frames=187)
    assert F.FeatureSpec.from_dict(spec.to_dict()) == spec
    assert spec.n_bands == 20 and abs(spec.segment_s - 187 * 256 / 16000) < 1e-9
    with pytest.raises(ValueError, match="unknown feature parameters"):
        F.FeatureSpec.from_dict({**spec.to_dict(), "future_knob": 1})
    with pytest.raises(ValueError):
        F.FeatureSpec.from_dict({**spec.to_dict(), "kind": "cqt"})
