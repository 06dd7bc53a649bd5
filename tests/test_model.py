"""Model files are validated before any audio is read."""

import json
from pathlib import Path

import pytest

from conftest import build_toy_model
from genre_infer import ModelError, load_model
from genre_infer.constants import METADATA_FORMAT_VERSION
from genre_infer.features import FeatureSpec
from genre_infer.model import ModelInfo, available_models, resolve_model_path


def test_toy_model_loads(toy_model: Path) -> None:
    clf = load_model(toy_model, device="cpu", threads=1)
    assert clf.labels == ("low", "high") and clf.name == "toy" and clf.version == "1.0"


def test_not_onnx(tmp_path: Path) -> None:
    p = tmp_path / "model.onnx"
    p.write_bytes(b"this is not a protobuf at all" * 10)
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        load_model(p)


def test_onnx_without_our_metadata(tmp_path: Path) -> None:
    p = build_toy_model(tmp_path / "plain.onnx", metadata=None)
    with pytest.raises(ModelError, match="not a genre-infer model"):
        load_model(p)


def test_metadata_from_a_newer_format(tmp_path: Path) -> None:
    meta = ModelInfo("toy", "1", ("a", "b"), FeatureSpec(segment_frames=63)).to_metadata()
    meta["format_version"] = METADATA_FORMAT_VERSION + 1
    p = build_toy_model(tmp_path / "future.onnx", metadata=meta)
    with pytest.raises(ModelError, match="newer"):
        load_model(p)


@pytest.mark.parametrize("broken", ["{not json", json.dumps({"format_version": 1, "name": "x"}), json.dumps([1, 2])])
def test_broken_metadata(tmp_path: Path, broken: str) -> None:
    p = build_toy_model(tmp_path / "broken.onnx", metadata=broken)
    with pytest.raises(ModelError):
        load_model(p)


def test_input_shape_disagrees_with_metadata(tmp_path: Path) -> None:
    p = build_toy_model(tmp_path / "shape.onnx", declared_frames=187)  # metadata says 63
    with pytest.raises(ModelError, match="input shape"):
        load_model(p)


def test_label_count_disagrees_with_output(tmp_path: Path) -> None:
    meta = ModelInfo("toy", "1", ("a", "b", "c"), FeatureSpec(segment_frames=63)).to_metadata()
    p = build_toy_model(tmp_path / "labels.onnx", metadata=meta)
    with pytest.raises(ModelError, match="labels"):
        load_model(p)


def test_missing_model_path() -> None:
    with pytest.raises(ModelError, match="no model file"):
        resolve_model_path("/nonexistent/model.onnx")


def test_a_retired_model_name_says_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    from genre_infer import model as model_mod

    monkeypatch.setitem(model_mod.RETIRED_MODELS, "old", "retired in 9.9: use `default`")
    with pytest.raises(ModelError, match="retired.*use `default`"):
        resolve_model_path("old")


def test_every_shipped_model_is_selectable_by_name() -> None:
    assert {"default", "fast", "gtzan-musicnn"} <= set(available_models())
    assert "musicnn-msd-genres" not in available_models()  # the default's expert is not a model of its own
    assert len(load_model("gtzan-musicnn", device="cpu").labels) == 10


def test_default_model_is_shipped() -> None:
    assert "default" in available_models()
    clf = load_model()
    assert len(clf.labels) >= 2
    assert clf.model.info.extra.get("metrics"), "the shipped model must carry its measured metrics"


def test_cuda_request_without_cuda_is_a_clear_error(toy_model: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    from genre_infer import GenreInferError

    with pytest.raises(GenreInferError, match="CUDA"):
        load_model(toy_model, device="cuda")


def test_cuda_gives_the_cpu_timeline() -> None:
    """With onnxruntime-gpu and a GPU, ``auto`` picks CUDA and the shipped model reads a song as on the CPU."""
    import numpy as np
    import onnxruntime as ort

    from signals import rhythm

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("no CUDA provider (onnxruntime-gpu and an NVIDIA GPU)")
    y = rhythm(22050, 75.0)  # several stream calls, and a partial last second
    gpu = load_model(device="auto")
    assert gpu.model.providers[0] == "CUDAExecutionProvider"
    options = gpu.model.session.get_provider_options()["CUDAExecutionProvider"]
    assert options["cudnn_conv_algo_search"] == "HEURISTIC" and options["use_tf32"] == "0"
    cpu = load_model(device="cpu")
    a, b = gpu.classify(y, sr=22050), cpu.classify(y, sr=22050)
    assert a.timeline_probabilities.shape == b.timeline_probabilities.shape == (75, len(cpu.labels))
    # cuDNN's convolution algorithms sum in another order than the CPU's: close, not bitwise equal
    np.testing.assert_allclose(a.timeline_probabilities, b.timeline_probabilities, atol=1e-4)
    assert a.genre == b.genre


def test_cuda_providers_carry_the_heuristic_search(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    from genre_infer.model import CUDA_OPTIONS, select_providers

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    want = [("CUDAExecutionProvider", CUDA_OPTIONS), "CPUExecutionProvider"]
    assert select_providers("auto") == select_providers("cuda") == want
    assert CUDA_OPTIONS == {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}
    assert select_providers("cpu") == ["CPUExecutionProvider"]


def test_a_cuda_provider_that_cannot_start(toy_model: Path, monkeypatch: pytest.MonkeyPatch,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    """onnxruntime-gpu without its CUDA libraries lists CUDA but starts on the CPU: ``cuda`` says
    so in one line, ``auto`` runs on the CPU, and nothing lands on stdout (it carries results)."""
    import onnxruntime as ort

    from genre_infer import GenreInferError

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(GenreInferError, match="could not start it"):
        load_model(toy_model, device="cuda")
    assert load_model(toy_model, device="auto").model.providers == ["CPUExecutionProvider"]
    assert capfd.readouterr().out == ""


def test_timeline_smoothing_metadata(tmp_path: Path) -> None:
    from genre_infer.model import TIMELINE_FORMAT, TimelineSpec

    spec = FeatureSpec(segment_frames=63, n_mels=96)
    info = ModelInfo("toy", "1.0", ("low", "high"), spec, timeline=TimelineSpec(0.05, 3.3))
    meta = info.to_metadata()
    assert meta["format_version"] == TIMELINE_FORMAT == METADATA_FORMAT_VERSION - 1  # the oldest that can describe it
    assert ModelInfo.from_metadata(meta).timeline == TimelineSpec(0.05, 3.3)
    assert "timeline" not in ModelInfo("toy", "1.0", ("low", "high"), spec).to_metadata()
    model = load_model(build_toy_model(tmp_path / "t.onnx", metadata=meta), device="cpu")
    assert model.model.info.timeline == TimelineSpec(0.05, 3.3, "sticky-hmm")
    for bad in ({**meta, "format_version": 4},
                {**meta, "timeline": {"switch_prob": 0.0}},
                {**meta, "timeline": {"switch_prob": 0.05, "temperature": -1}},
                {**meta, "timeline": {"switch_prob": 0.05, "method": "median"}},
                {**meta, "timeline": {"switch_prob": 0.05, "window": 3}}):
        with pytest.raises(ModelError):
            ModelInfo.from_metadata(bad)
