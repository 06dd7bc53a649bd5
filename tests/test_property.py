"""Property-based: any array, rate and length gives a well-formed result or our documented error."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from genre_infer import GenreInferError, load_model

RATES = st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000]) | st.integers(-5, 200000)
DTYPES = st.sampled_from([np.float32, np.float64, np.int16, np.int32, np.uint8])


@pytest.fixture(scope="module")
def clf(toy_model: Path):  # type: ignore[no-untyped-def]
    return load_model(toy_model, device="cpu")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dtype=DTYPES,
    channels=st.integers(1, 8),
    seconds=st.floats(0.0, 4.0),
    sr=RATES,
    scale=st.sampled_from([0.0, 1e-6, 0.01, 1.0, 10.0, 1e30]),
    special=st.sampled_from([None, np.nan, np.inf, -np.inf]),
    seed=st.integers(0, 2**16),
)
def test_any_array_gives_a_result_or_our_error(clf, dtype, channels, seconds, sr, scale, special, seed) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    n = max(int(seconds * max(sr, 1)), 0) if 0 < sr <= 200000 else int(seconds * 1000)
    n = min(n, 200000 * 4)
    y = rng.standard_normal((channels, n)) * scale
    if special is not None and n:
        y[0, rng.integers(n)] = special
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        y = np.clip(np.nan_to_num(y * info.max, posinf=info.max, neginf=info.min), info.min, info.max).astype(dtype)
    else:
        with np.errstate(over="ignore"):
            y = y.astype(dtype)
    if channels == 1 and seed % 2:
        y = y[0]
    try:
        r = clf.classify(y, sr=sr)
    except GenreInferError as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("classified")
    assert np.all(np.isfinite(r.probabilities)) and abs(float(r.probabilities.sum()) - 1) < 1e-4
    assert np.all(np.isfinite(r.timeline_probabilities))
    np.testing.assert_allclose(r.timeline_probabilities.sum(axis=1), 1, atol=1e-4)
    assert r.sections[0].start == 0 and r.sections[-1].end == pytest.approx(r.duration)


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5)))
def test_odd_shapes_are_refused_cleanly(arr: np.ndarray) -> None:
    from genre_infer import audio

    try:
        out = audio.from_array(arr, 16000, 16000)
    except GenreInferError:
        return
    assert out.ndim == 1 and out.dtype == np.float32
