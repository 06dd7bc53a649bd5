"""The shipped model keeps the accuracy its metadata and model card state (needs the shared GTZAN clips)."""

from pathlib import Path

import pytest

from conftest import DATA
from genre_infer import load_model

MARGIN = 0.05  # a regression is more than one test clip in twenty


def _clips(split: str) -> list[tuple[Path, str]]:
    listing = DATA / f"{split}.txt"
    if not listing.is_file():
        pytest.skip(f"the shared data is absent ({listing})")
    return [(DATA / rel, rel.split("/")[1]) for rel in listing.read_text().split()]


@pytest.fixture(scope="module")
def clf():  # type: ignore[no-untyped-def]
    return load_model("default", device="cpu")


def test_held_out_track_accuracy_matches_the_card(clf) -> None:  # type: ignore[no-untyped-def]
    stated = clf.model.info.extra["metrics"]["test"]
    clips = _clips("test")
    results = [(clf.classify(path), genre) for path, genre in clips]
    correct = sum(r.genre == genre for r, genre in results)
    accuracy = correct / len(clips)
    assert len(clips) == stated["tracks"]
    assert accuracy >= stated["track_accuracy"] - MARGIN, (
        f"test track accuracy {accuracy:.2f} < card's {stated['track_accuracy']:.2f} - {MARGIN}")
    windows = sum(len(r.timeline) for r, _ in results)
    right = sum(row.genre == genre for r, genre in results for row in r.timeline)
    assert right / windows >= 0.5, "per-second accuracy collapsed"


def test_probabilities_are_calibrated_probabilities(clf) -> None:  # type: ignore[no-untyped-def]
    path, _ = _clips("test")[0]
    r = clf.classify(path)
    assert abs(float(r.probabilities.sum()) - 1) < 1e-4
    assert clf.model.info.temperature > 0


def test_metrics_file_describes_the_shipped_file() -> None:
    """exported/metrics.json is regenerated (`python -m train metrics-file`) whenever the model changes."""
    import hashlib
    import json

    root = Path(__file__).resolve().parent.parent / "exported"
    doc = json.loads((root / "metrics.json").read_text())
    model = root / "default.onnx"
    assert doc["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest(), "stale exported/metrics.json"
    info = load_model(model, device="cpu").model.info
    assert (doc["model"]["name"], doc["model"]["version"]) == (info.name, info.version)
    assert doc["metrics"]["test"] == info.extra["metrics"]["test"]


def test_shipped_model_hears_every_level_alike(clf) -> None:  # type: ignore[no-untyped-def]
    """1.4.0's loudness normalisation: a song 18 dB quieter reads the same, second by second
    (1.3.0 lost a third of its validation accuracy at -12 dB)."""
    import numpy as np

    from genre_infer import audio

    path, _ = _clips("valid")[0]
    y = audio.load(path, 22050)
    loud = clf.classify(y, sr=22050)
    quiet = clf.classify(y * np.float32(10 ** (-18 / 20)), sr=22050)
    np.testing.assert_allclose(quiet.timeline_probabilities, loud.timeline_probabilities, atol=1e-3)
