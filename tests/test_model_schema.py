"""A model file someone else made: every metadata field's type and range is checked at load.

Anything outside the schema is a ModelError (exit 2 and one line from the command line),
never a traceback, a hang, gigabytes of memory or garbage results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from conftest import build_toy_model
from genre_infer import ModelError, load_model
from genre_infer.features import FeatureSpec
from genre_infer.model import ModelInfo

REPO = Path(__file__).resolve().parents[1]
NAN, INF = float("nan"), float("inf")


def base() -> dict[str, Any]:
    return ModelInfo("toy", "1.0", ("low", "high"), FeatureSpec(segment_frames=63)).to_metadata()


def features(**kw: Any) -> Callable[[dict], None]:
    return lambda m: m["features"].update(kw)


def top(**kw: Any) -> Callable[[dict], None]:
    return lambda m: m.update(kw)


def nested(depth: int) -> Callable[[dict], None]:
    def change(m: dict) -> None:
        v: Any = 1
        for _ in range(depth):
            v = [v]
        m["training"] = v
    return change


CASES: dict[str, tuple[Callable[[dict], None], str]] = {
    "temperature-nan": (top(temperature=NAN), "temperature"),
    "temperature-inf": (top(temperature=INF), "temperature"),
    "temperature-string": (top(temperature="1"), "temperature"),
    "temperature-zero": (top(temperature=0), "temperature"),
    "temperature-bool": (top(temperature=True), "temperature"),
    "uncertain-above-one": (top(uncertain_below=2), "uncertain_below"),
    "mean-nan": (features(mean=NAN), "features.mean"),
    "std-inf": (features(std=INF), "features.std"),
    "std-tiny": (features(std=1e-30), "features.std"),
    "n_fft-huge": (features(n_fft=10**9), "features.n_fft"),
    "n_fft-fraction": (features(n_fft=512.5), "features.n_fft"),
    "n_fft-float": (features(n_fft=512.0), "features.n_fft"),
    "n_fft-string": (features(n_fft="512"), "features.n_fft"),
    "n_fft-bool": (features(n_fft=True), "features.n_fft"),
    "hop-over-n_fft": (features(hop_length=4096), "features.hop_length"),
    "sr-absurd": (features(sr=10**18), "features.sr"),
    "sr-one": (features(sr=1), "features.sr"),
    "fmax-over-nyquist": (features(fmax=20000.0), "features.fmax"),
    "segment-fraction": (features(segment_frames=63.5), "features.segment_frames"),
    "window-hop-tiny": (features(window_hop_s=1e-9), "features.window_hop_s"),
    "level-nan": (features(level_db=NAN), "features.level_db"),
    "feature-unknown": (features(colour="blue"), "unknown feature parameters"),
    "labels-string": (top(labels="lowhigh"), "labels"),
    "labels-one": (top(labels=["low"]), "labels"),
    "labels-empty-name": (top(labels=["low", " "]), "labels[1]"),
    "labels-repeated": (top(labels=["low", "low"]), "distinct"),
    "labels-number": (top(labels=["low", 3]), "labels[1]"),
    "labels-long": (top(labels=["low", "x" * 101]), "labels[1]"),
    "labels-control": (top(labels=["low", "a\nb"]), "labels[1]"),
    "name-number": (top(name=5), "name"),
    "version-null": (top(version=None), "version"),
    "network-negative": (top(network={"layout": "windows", "context_frames": -1}), "context_frames"),
    "network-fraction": (top(network={"layout": "windows", "context_frames": 2.5}), "context_frames"),
    "network-string": (top(network="sequence"), "network"),
    "timeline-nan": (top(timeline={"switch_prob": NAN}), "switch_prob"),
    "features-list": (top(features=[1, 2]), "features"),
    "deep-nesting": (nested(100), "nested"),
    "format-fraction": (top(format_version=1.5), "format_version"),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile-models")
    out = {}
    for name, (change, _) in CASES.items():
        meta = base()
        change(meta)
        out[name] = build_toy_model(folder / f"{name}.onnx", metadata=json.dumps(meta))
    # nested beyond what Python's json module can parse at all
    out["deeper-than-json"] = build_toy_model(folder / "deeper.onnx",
                                              metadata=json.dumps(base())[:-1] + ', "x": ' + "[" * 100_000
                                              + "]" * 100_000 + "}")
    out["too-large"] = build_toy_model(folder / "large.onnx",
                                       metadata=json.dumps({**base(), "training": {"blob": "x" * 1_100_000}}))
    return out


@pytest.mark.parametrize("case", [*CASES, "deeper-than-json", "too-large"])
def test_metadata_outside_the_schema_is_refused(models: dict[str, Path], case: str) -> None:
    with pytest.raises(ModelError) as err:
        load_model(models[case], device="cpu")
    text = str(err.value)
    assert "\n" not in text and len(text) < 400
    if case in CASES:
        assert CASES[case][1] in text, text


def test_the_base_metadata_loads(tmp_path: Path) -> None:
    clf = load_model(build_toy_model(tmp_path / "ok.onnx", metadata=json.dumps(base())), device="cpu")
    assert clf.labels == ("low", "high")


@pytest.mark.parametrize("case", ["n_fft-huge", "temperature-inf", "labels-string", "deeper-than-json", "mean-nan"])
def test_command_line_refuses_with_exit_2_and_one_line(models: dict[str, Path], audio_dir: Path, case: str) -> None:
    r = subprocess.run([sys.executable, "-m", "genre_infer", str(audio_dir / "low.wav"), "--model", str(models[case])],
                       capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and r.stderr.count("\n") == 1 and r.stderr.startswith("genre-infer: error: "), r.stderr


def _save_toy(graph: Any, path: Path) -> Path:
    """Save ``graph`` as an opset-18 model carrying the toy model's metadata (:func:`base`)."""
    import onnx
    from onnx import helper

    from genre_infer.constants import METADATA_KEY

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    prop = model.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, json.dumps(base())
    onnx.save(model, str(path))
    return path


def _nan_model(path: Path) -> Path:
    """The toy model with its logits divided by zero: 0/0 and x/0 (NaN and infinity)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["features", "axes"], ["pooled"], keepdims=0),
         helper.make_node("MatMul", ["pooled", "W"], ["scores"]),
         helper.make_node("Div", ["scores", "zero"], ["logits"])],
        "nan", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 63, 96])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
                     numpy_helper.from_array(np.zeros((96, 2), np.float32), "W"),
                     numpy_helper.from_array(np.zeros(2, np.float32), "zero")])
    return _save_toy(graph, path)


def test_nan_logits_are_a_model_error_per_file(tmp_path: Path, audio_dir: Path) -> None:
    model = _nan_model(tmp_path / "nan.onnx")
    with pytest.raises(ModelError, match="NaN or infinity"):
        load_model(model, device="cpu").classify(audio_dir / "low.wav")
    r = subprocess.run([sys.executable, "-m", "genre_infer", str(audio_dir / "low.wav"), str(audio_dir / "high.flac"),
                        "--model", str(model), "-f", "json"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    assert doc["results"] == [] and len(doc["errors"]) == 2 and "NaN or infinity" in doc["errors"][0]["error"]


def _liar_model(path: Path, columns: int) -> Path:
    """Declares (batch, 2) logits but returns ``columns`` of them (a shape only a run can show)."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["features", "axes"], ["pooled"], keepdims=0),
         helper.make_node("MatMul", ["pooled", "W"], ["logits"])],
        "liar", [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 63, 96])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "n"])],
        initializer=[numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
                     numpy_helper.from_array(np.ones((96, columns), np.float32), "W")])
    return _save_toy(graph, path)


def test_logits_of_the_wrong_shape_are_a_model_error(tmp_path: Path, audio_dir: Path) -> None:
    with pytest.raises(ModelError, match=r"output shape \['batch', 3\] disagrees with its 2 labels"):
        load_model(_liar_model(tmp_path / "liar.onnx", 3), device="cpu")  # seen at load where the graph shows it
    clf = load_model(_liar_model(tmp_path / "honest.onnx", 2), device="cpu")
    assert clf.classify(audio_dir / "low.wav").duration > 0

    class Session:  # what only a run shows: a wrong shape, or the network failing
        def __init__(self, real, answer):  # type: ignore[no-untyped-def]
            self.real, self.answer = real, answer

        def run(self, outputs, feeds):  # type: ignore[no-untyped-def]
            if isinstance(self.answer, Exception):
                raise self.answer
            return [np.concatenate([self.real.run(outputs, feeds)[0]] * self.answer, axis=1)]

    real = clf.model.session
    clf.model.session = Session(real, 2)
    with pytest.raises(ModelError, match=r"logits of shape \(\d+, 4\), not \(windows, 2\)"):
        clf.classify(audio_dir / "low.wav")
    clf.model.session = Session(real, RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : boom\nmore"))
    with pytest.raises(ModelError, match=r"the network failed to run \(\[ONNXRuntimeError\] : 6 : RUNTIME_EXCEPTION : boom\)$"):
        clf.classify(audio_dir / "low.wav")
