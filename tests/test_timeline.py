"""Window probabilities → per-second timeline, sections and verdict."""

import numpy as np
import pytest

from genre_infer import timeline as tl


def test_step_average_weights_by_overlap() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    steps = tl.step_average(probs, np.array([0.0, 1.5]), 1.5, 3.0, 1.0)
    assert steps.shape == (3, 2)
    np.testing.assert_allclose(steps[0], [1, 0])
    np.testing.assert_allclose(steps[1], [0.5, 0.5])  # half of each window
    np.testing.assert_allclose(steps[2], [0, 1])
    np.testing.assert_allclose(steps.sum(axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize("duration", [1.0, 3.0, 7.3, 30.013])
def test_steps_cover_duration(duration: float) -> None:
    starts = np.arange(0, max(duration - 3, 0) + 1e-9, 1.0)
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=len(starts)).astype(np.float32)
    steps = tl.step_average(p, starts, 3.0, duration)  # a weighted mean of rows summing to 1
    assert len(steps) == int(np.ceil(duration - 1e-9))
    assert np.all(np.isfinite(steps))
    np.testing.assert_allclose(steps.sum(axis=1), 1, rtol=1e-5)


def test_segment_runs_merges_short_blips() -> None:
    labels = [0] * 8 + [1] * 1 + [0] * 6 + [1] * 10
    probs = np.eye(2, dtype=np.float32)[labels] * 0.8 + 0.1
    runs = tl.segment_runs(probs, 1.0, len(labels), min_len_s=4.0, radius=0)
    assert [(lo, hi, g) for lo, hi, g, _ in runs] == [(0.0, 15.0, 0), (15.0, 25.0, 1)]
    assert runs[0][3] == pytest.approx((14 * 0.9 + 0.1) / 15, rel=1e-5)


def test_segment_runs_single_short_song() -> None:
    probs = np.array([[0.7, 0.3], [0.2, 0.8]], dtype=np.float32)
    runs = tl.segment_runs(probs, 1.0, 1.6, min_len_s=4.0, radius=2)
    assert len(runs) == 1 and runs[0][:2] == (0.0, 1.6)


def test_smooth_is_a_moving_average() -> None:
    p = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    s = tl.smooth(p, 1)
    np.testing.assert_allclose(s[1], [2 / 3, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(s[0], [0.5, 0.5], rtol=1e-6)


def test_verdict_weights_the_last_partial_step() -> None:
    steps = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    v = tl.verdict(steps, 1.0, 1.25)
    np.testing.assert_allclose(v, [0.8, 0.2], rtol=1e-6)


def test_logits_are_pooled_before_the_temperature() -> None:
    """Seconds pool window logits, so the temperature never changes a second's winner; the
    song is the time-weighted mean of the seconds' probabilities."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(28, 5)).astype(np.float32) * 3
    starts = np.arange(28, dtype=np.float64)
    steps1, song1 = tl.timeline_from_logits(logits, starts, 3.0, 30.0, 1.0, temperature=1.0)
    steps2, song2 = tl.timeline_from_logits(logits, starts, 3.0, 30.0, 1.0, temperature=0.4)
    assert steps1.shape == (30, 5) and np.allclose(steps1.sum(1), 1, atol=1e-5)
    assert (steps1.argmax(1) == steps2.argmax(1)).all()
    assert steps2.max(1).mean() > steps1.max(1).mean()  # a lower temperature is surer
    # second 1 is covered by windows 0 and 1 (wholly): the softmax of their mean logits
    np.testing.assert_allclose(steps1[1], tl.softmax(logits[:2].mean(0)), rtol=1e-5)
    np.testing.assert_allclose(song1, tl.time_average(steps1, 1.0, 30.0), rtol=1e-5)


def test_a_mix_reads_as_its_parts() -> None:
    """Three genres a third of the time each, and a fourth that is second best throughout: the
    verdict names the three (about a third each), not the one nearest the average sound."""
    logits = np.full((30, 4), -4.0, dtype=np.float32)
    logits[:, 3] = 2.0
    for k in range(3):
        logits[10 * k : 10 * (k + 1), k] = 6.0
    starts = np.arange(30, dtype=np.float64)
    steps, song = tl.timeline_from_logits(logits, starts, 1.0, 30.0, 1.0)
    assert set(np.argsort(song)[-3:]) == {0, 1, 2} and song[3] < 0.05
    np.testing.assert_allclose(song[:3], [1 / 3] * 3, atol=0.03)
    mean_logits = tl.softmax(tl.time_average(logits, 1.0, 30.0))
    assert mean_logits.argmax() == 3  # what pooling logits over the song would have said


def _brute_posterior(p: np.ndarray, switch: float) -> np.ndarray:
    """Forward-backward with the explicit transition matrix, in float64, no tricks."""
    n, k = p.shape
    a = np.full((k, k), switch / (k - 1)) + np.eye(k) * (1 - switch - switch / (k - 1))
    fwd = np.zeros((n, k))
    fwd[0] = p[0] / k
    for t in range(1, n):
        fwd[t] = p[t] * (a.T @ fwd[t - 1])
    bwd = np.ones((n, k))
    for t in range(n - 2, -1, -1):
        bwd[t] = a @ (p[t + 1] * bwd[t + 1])
    post = fwd * bwd
    return post / post.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_sticky_smooth_is_the_hmm_posterior(k: int) -> None:
    rng = np.random.default_rng(k)
    p = rng.dirichlet(np.ones(k), size=40)
    np.testing.assert_allclose(tl.sticky_smooth(p, 0.05), _brute_posterior(p, 0.05), atol=1e-6)


def test_sticky_smooth_removes_a_flicker_and_keeps_a_change() -> None:
    a, b = np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.8, 0.1])
    flicker = np.array([a] * 10 + [np.array([0.35, 0.55, 0.1])] + [a] * 10)
    assert (tl.sticky_smooth(flicker, 0.05).argmax(1) == 0).all()
    change = np.array([a] * 12 + [b] * 12)
    assert tl.sticky_smooth(change, 0.05).argmax(1).tolist() == [0] * 12 + [1] * 12  # switches where it happens


def test_sticky_smooth_temperature_softens_without_changing_winners() -> None:
    p = np.random.default_rng(1).dirichlet(np.ones(4), size=30)
    sharp, soft = tl.sticky_smooth(p, 0.1, 1.0), tl.sticky_smooth(p, 0.1, 3.0)
    assert (sharp.argmax(1) == soft.argmax(1)).all()
    assert (soft.max(1) <= sharp.max(1) + 1e-6).all()
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-5)
    assert soft.dtype == np.float32


def test_sticky_smooth_of_one_step_and_without_smoothing() -> None:
    one = np.array([[0.2, 0.8]])
    np.testing.assert_allclose(tl.sticky_smooth(one, 0.05), one)
    # a 1-s song is calibrated by the same temperature as a long one
    np.testing.assert_allclose(tl.sticky_smooth(one, 0.05, 3.0), tl.softmax(np.log(one), 3.0), atol=1e-6)
    with pytest.raises(ValueError, match="finite"):
        tl.sticky_smooth(np.array([[0.5, 0.5], [np.nan, 0.5]]), 0.05)
    with pytest.raises(ValueError, match="switch_prob"):
        tl.sticky_smooth(one, 1.0)
    logits = np.random.default_rng(2).standard_normal((9, 3))
    starts = np.arange(9, dtype=np.float64)
    plain = tl.timeline_from_logits(logits, starts, 3.0, 11.0)
    off = tl.timeline_from_logits(logits, starts, 3.0, 11.0, switch_prob=0.0, smoothed_temperature=5.0)
    np.testing.assert_array_equal(plain[0], off[0])
    on = tl.timeline_from_logits(logits, starts, 3.0, 11.0, 1.0, 1.0, 0.05, 2.0)
    np.testing.assert_allclose(on[0], tl.sticky_smooth(plain[0], 0.05, 2.0), atol=1e-6)
    np.testing.assert_allclose(on[1], tl.verdict(on[0], 1.0, 11.0), atol=1e-6)
