"""EfficientAT's front end, the mn04 port, its stream export and models with experts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import build_toy_model
from genre_infer import load_model
from genre_infer.errors import ModelError
from genre_infer.features import FeatureSpec, FeatureStream, compute
from genre_infer.model import ExpertSpec, ModelInfo

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "weights" / "efficientat"
#: EfficientAT's parameters, written out here as the test's own record of them.
EAT = FeatureSpec(
    kind="melgram", sr=32000, n_fft=1024, hop_length=320, n_mels=128, fmin=0.0, fmax=15000.0,
    compression="ln", log_scale=1e-5, segment_frames=300, window_hop_s=1.0, mean=-4.5, std=5.0,
    mel_scale="kaldi", win_length=800, symmetric_window=True, pad_mode="reflect", preemphasis=0.97,
)


def _reference() -> np.lib.npyio.NpzFile:
    f = SHARED / "mn04_reference.npz"
    if not f.is_file():
        pytest.skip(f"the shared EfficientAT files are absent ({f})")
    return np.load(f)


def test_efficientat_mel_matches_the_reference() -> None:
    ref = _reference()
    for i in range(3):
        want = ref[f"clip{i}_mel"][0, 0].T  # (frames, 128)
        got = compute(ref[f"clip{i}_wave32k"], EAT)
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4


@pytest.mark.parametrize("block", [1, 511, 513, 7777, 100_000])
def test_efficientat_stream_equals_whole(block: int) -> None:
    y = np.random.default_rng(block).standard_normal(32000 * 3 + 123).astype(np.float32) * 0.1
    stream = FeatureStream(EAT)
    parts = [stream.push(y[i : i + block]) for i in range(0, len(y), block)] + [stream.finish()]
    whole = compute(y, EAT)
    got = np.concatenate(parts)
    assert got.shape == whole.shape == (1 + (len(y) - 1) // 320, 128)
    assert np.abs(got - whole).max() < 1e-5


def test_cutoff_zeroes_the_bands_above_it() -> None:
    sr = 32000
    t = np.arange(sr * 2) / sr
    high = (0.5 * np.sin(2 * np.pi * 11000 * t)).astype(np.float32)
    full, cut = compute(high, EAT), compute(high, replace(EAT, cutoff_hz=8000.0))
    floor = (np.log(1e-5) + 4.5) / 5.0
    assert full.max() > floor + 1.0  # the tone shows without the cutoff
    above = slice(106, 128)  # Kaldi bands 0-15 kHz: from band 105 on, every band lies above 8 kHz
    assert full[:, above].max() > floor + 1.0
    assert np.allclose(cut[:, above], floor, atol=1e-4)  # and is gone with it


def test_new_feature_fields_stay_out_of_old_metadata() -> None:
    old = FeatureSpec(level_db=-17.0).to_dict()
    assert set(old) == {"kind", "sr", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "compression", "log_scale",
                        "n_mfcc", "segment_frames", "window_hop_s", "mean", "std", "level_db"}
    assert FeatureSpec.from_dict(EAT.to_dict()) == EAT
    info = ModelInfo("m", "1", ("a", "b"), EAT)
    assert info.to_metadata()["format_version"] == 6
    meta = info.to_metadata() | {"format_version": 5}
    with pytest.raises(ModelError, match="format 6"):
        ModelInfo.from_metadata(meta)


@pytest.mark.parametrize("bad", [{"pad_mode": "wrap"}, {"mel_scale": "htk"}, {"win_length": 2048},
                                 {"preemphasis": 1.5}, {"cutoff_hz": 17000.0}, {"compression": "ln", "log_scale": 0}])
def test_bad_front_end_parameters_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        FeatureSpec.from_dict(EAT.to_dict() | bad)


# --- the port ---------------------------------------------------------------------------------------------------

def test_mn04_checkpoint_loader_checks_every_array(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from train.backbones.mn04 import Mn04, load_mn04

    state = {k: v.numpy() for k, v in Mn04().state_dict().items()}
    good = tmp_path / "good.npz"
    np.savez(good, **state)
    assert isinstance(load_mn04(good), torch.nn.Module)
    missing = dict(state)
    missing.pop("classifier.5.bias")
    extra = dict(state, **{"features.99.weight": np.zeros(3, np.float32)})
    shape = dict(state, **{"classifier.5.bias": np.zeros(526, np.float32)})
    nan = dict(state, **{"classifier.5.bias": np.full(527, np.nan, np.float32)})
    for name, arrays, match in (("missing", missing, "missing"), ("extra", extra, "unexpected"),
                                ("shape", shape, "shape"), ("nan", nan, "non-finite")):
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(ValueError, match=match):
            load_mn04(tmp_path / f"{name}.npz")


def test_mn04_port_matches_the_reference_logits() -> None:
    torch = pytest.importorskip("torch")
    ref = _reference()
    from train.backbones.mn04 import load_mn04

    net = load_mn04(SHARED / "mn04_as.npz")
    with torch.no_grad():
        for i in range(3):
            mel = torch.from_numpy(ref[f"clip{i}_mel"])
            pooled = net.columns(mel).mean(dim=2)
            assert np.abs(pooled.numpy() - ref[f"clip{i}_pooled"]).max() < 1e-4
            assert np.abs(net.head(pooled).numpy() - ref[f"clip{i}_logits"]).max() < 1e-4


def test_stream_export_through_the_runtime_equals_torch(tmp_path: Path) -> None:
    """The exported tagger run by genre-infer's stream runner gives torch's window logits for a
    signal that fits one call (chunking aside, the same computation)."""
    torch = pytest.importorskip("torch")
    ref = _reference()
    from genre_infer.api import Classifier
    from genre_infer.features import window_starts
    from train.audioset import MN04_FEATURES, audioset_labels, export_stream, tagger_model

    assert MN04_FEATURES == EAT
    net = tagger_model(SHARED / "mn04_as.npz")
    out = tmp_path / "tagger.onnx"
    export_stream(net, audioset_labels(SHARED / "audioset_class_labels_indices.csv"), EAT, out, "t", "1")
    y = ref["clip1_wave32k"][: 32000 * 9]  # 900 frames: one call of the runtime
    a = Classifier(out, device="cpu").analyse([y])
    x = compute(y, EAT)
    starts = window_starts(len(x), EAT)
    with torch.no_grad():
        want, _ = net(torch.from_numpy(x[None]), torch.tensor([0, len(x)]), torch.zeros(0, 384),
                      torch.from_numpy(starts))
    assert np.allclose(a.starts_s, starts * EAT.hop_length / EAT.sr)
    assert np.abs(a.logits - want.numpy()).max() < 1e-3


# --- experts -----------------------------------------------------------------------------------------------------

def _with_expert(tmp_path: Path, weights: list[float], digest: str | None = None, name: str = "experts/e.onnx") -> Path:
    expert = build_toy_model(tmp_path / "experts" / "e.onnx") if not (tmp_path / "experts" / "e.onnx").exists() \
        else tmp_path / "experts" / "e.onnx"
    spec = FeatureSpec(segment_frames=63, n_mels=96)
    e = ExpertSpec(name, tuple(weights), digest or hashlib.sha256(expert.read_bytes()).hexdigest())
    meta = ModelInfo("toy+e", "1.0", ("low", "high"), spec, experts=(e,)).to_metadata()
    return build_toy_model(tmp_path / "main.onnx", metadata=meta)


def test_expert_logits_are_added_per_genre(tmp_path: Path) -> None:
    (tmp_path / "experts").mkdir()
    plain = load_model(build_toy_model(tmp_path / "plain.onnx"), device="cpu")
    combined = load_model(_with_expert(tmp_path, [2.0, -1.0]), device="cpu")
    y = np.random.default_rng(0).standard_normal(22050 * 5).astype(np.float32) * 0.1
    a = plain.analyse([y])
    b = combined.analyse([y])
    assert np.allclose(b.starts_s, a.starts_s)
    assert np.allclose(b.logits, a.logits * np.array([3.0, 0.0], np.float32), atol=1e-5)


@pytest.mark.parametrize("case", ["digest", "outside", "absolute", "weights"])
def test_experts_that_do_not_fit_are_refused(tmp_path: Path, case: str) -> None:
    (tmp_path / "experts").mkdir()
    build_toy_model(tmp_path / "experts" / "e.onnx")
    if case == "digest":
        path = _with_expert(tmp_path, [1.0, 1.0], digest="0" * 64)
        with pytest.raises(ModelError, match="sha256"):
            load_model(path, device="cpu")
        return
    meta = ModelInfo("toy+e", "1.0", ("low", "high"), FeatureSpec(segment_frames=63, n_mels=96),
                     experts=(ExpertSpec("experts/e.onnx", (1.0, 1.0), "0" * 64),)).to_metadata()
    bad = {"outside": {"model": "../e.onnx"}, "absolute": {"model": "/tmp/e.onnx"},
           "weights": {"weights": [1.0, float("nan")]}}[case]
    meta["experts"][0].update(bad)
    path = build_toy_model(tmp_path / "main.onnx", metadata=json.dumps(meta))
    with pytest.raises(ModelError, match="expert"):
        load_model(path, device="cpu")


def test_an_expert_with_other_windows_is_matched_by_nearest_start(tmp_path: Path) -> None:
    (tmp_path / "experts").mkdir()
    expert = build_toy_model(tmp_path / "experts" / "e.onnx", frames=40)  # shorter windows: another end window
    spec = FeatureSpec(segment_frames=63, n_mels=96)
    e = ExpertSpec("experts/e.onnx", (1.0, 0.5), hashlib.sha256(expert.read_bytes()).hexdigest())
    main = build_toy_model(tmp_path / "main.onnx",
                           metadata=ModelInfo("toy+e", "1.0", ("low", "high"), spec, experts=(e,)).to_metadata())
    y = np.random.default_rng(1).standard_normal(22050 * 4 + 777).astype(np.float32) * 0.1
    a = load_model(build_toy_model(tmp_path / "plain.onnx"), device="cpu").analyse([y])
    b = load_model(expert, device="cpu").analyse([y])
    got = load_model(main, device="cpu").analyse([y])
    assert len(b.starts_s) != len(a.starts_s) or not np.allclose(b.starts_s, a.starts_s)
    nearest = np.abs(b.starts_s[None, :] - a.starts_s[:, None]).argmin(1)
    np.testing.assert_allclose(got.logits, a.logits + np.array([1.0, 0.5]) * b.logits[nearest], atol=1e-5)


def test_the_selection_scores_every_candidate_on_synthetic_clips(tmp_path: Path) -> None:
    """`python -m train audioset-select`'s scoring on clips whose AudioSet logits favour their own
    genre's class: zero-shot and fitted heads read them right, and every row has the rule's score."""
    pytest.importorskip("torch")
    from train.audioset_heads import GENRE_CLASSES, MUSIC_GENRE_CLASSES
    from train.audioset_select import GENRES, Item, run

    classes = list(MUSIC_GENRE_CLASSES) + [f"c{i}" for i in range(527 - len(MUSIC_GENRE_CLASSES))]
    rng = np.random.default_rng(0)

    def item(genre: str, dataset: str, split: str) -> Item:
        tags = rng.normal(-5.0, 1.0, (28, 527)).astype(np.float32)
        tags[:, classes.index(GENRE_CLASSES[genre])] += 4.0
        return Item(f"{genre}-{rng.integers(1 << 30)}", dataset, genre, split, False, "", 30.0,
                    {"mn04": (tags, np.arange(28, dtype=np.float64), 3.0)})

    items = [item(g, "gtzan", s) for g in GENRES[:-1] for s in ("train", "valid", "extra")]
    items += [item(g, "emotify", "") for g in ("classical", "rock", "electronic")]
    rows = run(tmp_path, items, classes, ["mn04"])
    assert {r["candidate"] for r in rows} >= {"mn04:zero-shot", "mn04:scale-bias(l2=0.01)", "mn04:stacked(l2=1.0)"}
    best = {r["candidate"]: r for r in rows}
    assert best["mn04:zero-shot"]["gtzan_cv_track_accuracy"] == 1.0 and best["mn04:zero-shot"]["S"] == 1.0
    assert best["mn04:scale-bias(l2=0.01)"]["emotify_electronic_non_gtzan"] == 1.0
    assert (tmp_path / "results.md").is_file() and (tmp_path / "results.json").is_file()
