"""Unit tests of the training wing: splits, gain augmentation, export metadata and parity."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
sf = pytest.importorskip("soundfile")

from genre_infer import features as gi_features  # noqa: E402
from genre_infer.constants import METADATA_KEY  # noqa: E402
from genre_infer.features import FeatureSpec  # noqa: E402
from test_train_e2e import GENRES, SR, make_tree, synth  # noqa: E402
from train import augment, calibrate, data, export, metrics  # noqa: E402
from train.fit import FitConfig, fit  # noqa: E402


def test_stratified_split_keeps_each_track_on_one_side(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", per_genre=10)
    for s in ("train", "valid", "test"):
        (root / f"{s}.txt").unlink()
    tracks, labels = data.discover(root)
    assert labels == sorted(GENRES)
    how = data.assign_splits(tracks, root, seed=3)
    assert how.startswith("stratified")
    assert all(t.split in ("train", "valid", "test") for t in tracks)
    rels = [t.rel for t in tracks]
    assert len(rels) == len(set(rels))
    for g in GENRES:  # every genre on every side
        assert {t.split for t in tracks if t.genre == g} == {"train", "valid", "test"}
    again, _ = data.discover(root)
    data.assign_splits(again, root, seed=3)
    assert [t.split for t in again] == [t.split for t in tracks]


def test_split_lists_are_used_and_overlap_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "d", per_genre=4)
    tracks, _ = data.discover(root)
    assert data.assign_splits(tracks, root) == "lists"
    sides = {t.rel: t.split for t in tracks}
    assert sides["audio/chords/chords.00.wav"] == "valid" and sides["audio/chords/chords.03.wav"] == "train"
    (root / "extra.txt").write_text("audio/chords/chords.03.wav\n")  # also in train.txt
    tracks, _ = data.discover(root)
    with pytest.raises(ValueError, match="both"):
        data.assign_splits(tracks, root)


@pytest.mark.parametrize("kind,compression", [("melgram", "log10_1p"), ("melgram", "db"), ("mfcc", "log10_1p")])
def test_gain_augmentation_is_exact(kind: str, compression: str) -> None:
    spec = FeatureSpec(kind=kind, compression=compression)  # type: ignore[arg-type]
    hiss = np.random.default_rng(0).standard_normal(SR * 2).astype(np.float32)
    y = synth("chords", 1)[: SR * 2] + 0.01 * synth("bursts", 1)[: SR * 2] + 1e-3 * hiss  # above the dB floor
    gain_db = 7.5
    louder = gi_features.compute((y * 10 ** (gain_db / 20)).astype(np.float32), spec)
    shifted = augment.apply_gain(gi_features.compute(y, spec), gain_db, spec)
    np.testing.assert_allclose(shifted, louder, rtol=1e-4, atol=2e-3)


def test_cache_reuses_features(tmp_path: Path) -> None:
    f = tmp_path / "a.wav"
    sf.write(f, synth("clicks", 0), SR)
    spec = FeatureSpec(segment_frames=63)
    x1, n1 = data.load_features(f, spec, tmp_path / "cache")
    files = list((tmp_path / "cache").rglob("*.npy"))
    assert len(files) == 1
    x2, n2 = data.load_features(f, replace(spec, segment_frames=187, mean=1.0, std=2.0), tmp_path / "cache")
    assert list((tmp_path / "cache").rglob("*.npy")) == files  # windowing/standardisation share the cache
    np.testing.assert_array_equal(x1, x2)
    assert n1 == n2 == len(synth("clicks", 0))


def test_track_verdict_matches_runtime_windows() -> None:
    spec = FeatureSpec(segment_frames=63)
    x = np.zeros((300, spec.n_bands), np.float32)
    windows, starts_s = metrics.track_windows(x, spec)
    assert windows.shape[1:] == (63, spec.n_bands)
    assert starts_s[-1] == pytest.approx((300 - 63) * spec.hop_length / spec.sr)
    logits = np.tile(np.log(np.array([[0.2, 0.8]], np.float32)), (len(windows), 1))
    np.testing.assert_allclose(metrics.track_verdict(logits, starts_s, spec, 299 * 256), [0.2, 0.8], rtol=1e-5)
    # the temperature sharpens or softens the numbers (here every second agrees, so not the winner)
    sharp = metrics.track_verdict(logits, starts_s, spec, 299 * 256, temperature=0.5)
    np.testing.assert_allclose(sharp, [1 / 17, 16 / 17], rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("tiny")
    root = make_tree(tmp / "data", per_genre=5)
    cfg = FitConfig(data=str(root), name="unit", segment_s=1.0, channels=(4, 8), epochs=2, patience=2,
                    crops_per_track=2, batch_size=8, mixup_alpha=0.0)
    run = fit(cfg, tmp / "runs", tmp / "cache", verbose=False)
    return run, tmp / "cache"


def test_export_metadata_round_trip(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    import genre_infer
    import onnx

    run, cache = tiny_run
    out = tmp_path / "m.onnx"
    meta = export.export(run, out, "unit-model", "9.9.9", cache)
    assert out.stat().st_mode & 0o044 == 0o044  # readable by group and others (not mkstemp's 0600)
    model = onnx.load(str(out))
    props = [p for p in model.metadata_props if p.key == METADATA_KEY]
    assert len(props) == 1
    stored = json.loads(props[0].value)
    assert stored == json.loads(json.dumps(meta))
    clf = genre_infer.load_model(out, device="cpu")
    cfg = json.loads((run / "config.json").read_text())
    assert clf.name == "unit-model" and clf.version == "9.9.9"
    assert list(clf.labels) == cfg["labels"]
    assert clf.model.features == FeatureSpec.from_dict(cfg["features"])
    assert clf.model.info.temperature == pytest.approx(stored["temperature"])
    extra = clf.model.info.extra
    assert extra["training"]["seed"] == 0 and extra["training"]["split"]["how"] == "lists"
    assert {"segment_accuracy", "track_macro_f1"} <= set(extra["metrics"]["valid"])
    assert extra["parameters"] > 0
    # dynamic batch
    for n in (1, 5):
        assert clf.model.logits(np.zeros((n, 63, 96), np.float32)).shape == (n, len(GENRES))


def test_parity_check_detects_mismatch(tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    from train.fit import load_run

    run, _ = tiny_run
    net, _, spec, _, _ = load_run(run)
    path = tmp_path / "p.onnx"
    export.onnx_export(net, spec, path)
    w = np.random.default_rng(0).standard_normal((7, spec.segment_frames, spec.n_bands)).astype(np.float32)
    assert export.parity(net, path, w) < 1e-4
    with torch.no_grad():
        net.head.bias += 0.01
    assert export.parity(net, path, w) > 1e-3


def test_temperature_fit_recovers_scale() -> None:
    rng = np.random.default_rng(0)
    true = rng.standard_normal((2000, 4)) * 2.0
    labels = np.array([rng.choice(4, p=np.exp(r) / np.exp(r).sum()) for r in true])
    t = calibrate.fit_temperature(true * 3.0, labels)  # logits 3x too confident
    assert t == pytest.approx(3.0, rel=0.15)


def test_distilled_student_shapes_and_context() -> None:
    """The student emits one frame per 8 and its declared context makes stretches exact."""
    import torch

    from train.experiments.distill import STRIDE, Student, StudentConfig, window_frame_ranges

    torch.manual_seed(0)
    net = Student(3).eval()
    x = torch.randn(1, 800, 96)
    ctx = Student.context_frames(StudentConfig())
    with torch.no_grad():
        whole = net(x)
        part = net(x[:, 200 - ctx : 400 + ctx])
    assert whole.shape == (1, 800 // STRIDE, 3) and ctx % STRIDE == 0
    k = ctx // STRIDE
    torch.testing.assert_close(part[:, k : k + 200 // STRIDE], whole[:, 200 // STRIDE : 400 // STRIDE], atol=1e-4, rtol=1e-4)
    lo, hi = window_frame_ranges(np.array([0, 62, 613]), 187, STRIDE, 100)
    assert lo.tolist() == [0, 8, 77] and hi.tolist() == [24, 32, 100]


def test_finetune_training_crops_equal_the_whole_clip_pass() -> None:
    """A training window cut with the mid end's context gives the logits of the same window
    pooled from one pass over the whole clip (exactly inside the clip, closely at its edges,
    where the whole pass pads each layer's input); only the mid end's convolutions and the
    head's new layer train."""
    import torch

    from train.data import Track
    from train.experiments.finetune import FrontTrack, MidAndHead, _window_batch
    from train.backbones.musicnn import Musicnn
    from train.heads import Head, HeadConfig

    torch.manual_seed(0)
    backbone = Musicnn().eval()
    for m in backbone.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
    model = MidAndHead(backbone, Head(backbone, 3, HeadConfig(kind="probe"))).eval()
    front = np.random.default_rng(0).standard_normal((561, 400)).astype(np.float16)
    item = FrontTrack(Track(Path("x.wav"), "g/x.wav", "g"), 0, 0, front, 400 * 256)
    starts = np.array([9, 50, 204, 0, 213])  # context inside the clip (3), then the clip's very edges
    with torch.no_grad():
        whole = model.head(torch.from_numpy(model.pooled(front, starts))).numpy()
        crops = model.window_logits(_window_batch([item], [(0, int(s)) for s in starts])).numpy()
    np.testing.assert_allclose(crops[:3], whole[:3], atol=2e-5)
    assert np.abs(crops[3:] - whole[3:]).max() < 0.01
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"net.mid{i}.conv.{w}" for i in (1, 2, 3) for w in ("weight", "bias")} | {
        "head.out.weight", "head.out.bias"}


def test_level_copies_a_model_with_loudness_normalisation(tmp_path: Path) -> None:
    from conftest import build_toy_model
    from genre_infer import load_model
    from train.level import with_level

    src = build_toy_model(tmp_path / "toy.onnx")
    out = tmp_path / "toy-level.onnx"
    info = with_level(src, out, -17.234, "2.0", "test")
    assert info.features.level_db == -17.23 and info.version == "2.0"
    copy = load_model(out).model.info
    assert copy.features.level_db == -17.23 and copy.extra["training"]["loudness"]["note"] == "test"
    assert load_model(src).model.info.features.level_db is None  # the source is untouched


def test_smoothing_choice_and_copy(tmp_path: Path) -> None:
    """The rule picks the best calibrated switch probability, and the copy carries it (format 5)."""
    from conftest import build_toy_model
    from genre_infer import load_model
    from genre_infer.model import ModelInfo, TimelineSpec
    from train import smoothing

    rng = np.random.default_rng(0)
    cases = []
    for g in range(2):  # noisy evidence around a true genre: smoothing helps, and must be re-calibrated
        for kind in ("clip", "pair", "insert"):
            truth = np.full(30, g)
            if kind != "clip":
                truth[15 if kind == "pair" else 10:30 if kind == "pair" else 20] = 1 - g
            p = np.where(np.arange(2) == truth[:, None], 0.62, 0.38) + rng.normal(0, 0.15, (30, 2))
            p = np.clip(p, 0.01, None)
            cases.append(smoothing.Case(kind, p / p.sum(1, keepdims=True), truth))
    rows = smoothing.grid_rows(cases, (0.3, 0.05))
    assert [r["switch_prob"] for r in rows] == [0.0, 0.3, 0.05]
    best = smoothing.choose(rows, max_ece=1.0)
    assert best["seconds_mean"] == max(r["seconds_mean"] for r in rows[1:])
    assert best["seconds_mean"] > rows[0]["seconds_mean"]  # smoothing the noise pays
    fallback = smoothing.choose(rows, max_ece=-1.0)  # none within: the best-calibrated smoothing, said so
    assert fallback["ece_seconds_clip"] == min(r["ece_seconds_clip"] for r in rows[1:])
    assert "best-calibrated" in fallback["rule"]
    worse = [dict(r, seconds_mean=0.0) if r["switch_prob"] else r for r in rows]
    with pytest.raises(RuntimeError):  # unless it gets fewer seconds right than no smoothing
        smoothing.choose(worse, max_ece=-1.0)
    src = build_toy_model(tmp_path / "src.onnx")
    info = smoothing.with_timeline(src, tmp_path / "dst.onnx", TimelineSpec(0.05, 3.0), "2.0", {"note": "test"})
    got = load_model(tmp_path / "dst.onnx", device="cpu").model.info
    assert got == info and got.timeline == TimelineSpec(0.05, 3.0) and got.version == "2.0"
    assert got.to_metadata()["format_version"] == 5 and got.extra["training"]["timeline"]["note"] == "test"
    assert isinstance(ModelInfo.from_metadata(got.to_metadata()), ModelInfo)


def test_export_refuses_to_overwrite_a_shipped_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A copied example must not replace exported/default.onnx, which `pip install .` ships."""
    from train.__main__ import main as train_main

    shipped = Path(__file__).resolve().parents[1] / "exported" / "default.onnx"
    before = shipped.read_bytes()
    calls: list[tuple] = []
    monkeypatch.setattr(export, "export", lambda *a, **k: calls.append(a))
    assert train_main(["export", str(tmp_path / "run"), "--out", str(shipped)]) == 2
    err = capsys.readouterr().err
    assert "shipped model 'default'" in err and "--force" in err and err.count("\n") == 1
    assert calls == [] and shipped.read_bytes() == before
    assert export.shipped_model(tmp_path / "mine.onnx") is None and export.shipped_model(shipped) == "default"
    assert train_main(["export", str(tmp_path / "run"), "--out", str(shipped), "--force"]) == 0
    assert calls and calls[0][1] == str(shipped)  # --force goes on to export (stubbed here)
