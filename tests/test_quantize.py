"""`python -m train quantize`: the fast model's 8-bit front end, on the shipped float model."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")

from genre_infer import features as feat  # noqa: E402
from genre_infer.inference import window_logits  # noqa: E402
from genre_infer.model import GenreModel, available_models  # noqa: E402
from train.experiments.quantize import _feed, quantize, timbral_convs  # noqa: E402

from signals import noise, rhythm, tone  # noqa: E402


def _feeds(model: GenreModel) -> list[dict[str, np.ndarray]]:
    spec = model.features
    out = []
    for y in (tone(spec.sr, 12.0, 440.0) + 0.1 * noise(spec.sr, 12.0), rhythm(spec.sr, 12.0)):
        x = feat.compute(y.astype(np.float32), spec).astype(np.float32)
        out.append(_feed(model, x, feat.window_starts(len(x), spec).astype(np.int64)))
    return out


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenreModel, GenreModel, dict]:
    src = available_models()["gtzan-musicnn"]
    fp32 = GenreModel(src, device="cpu")
    out = tmp_path_factory.mktemp("q") / "q.onnx"
    res = quantize(src, out, _feeds(fp32), name="toy-int8")
    return fp32, GenreModel(out, device="cpu"), res


def test_only_the_timbral_convolutions_are_quantized(pair) -> None:  # type: ignore[no-untyped-def]
    import onnx

    _, q8, res = pair
    assert res["nodes"] == timbral_convs(onnx.load(str(available_models()["gtzan-musicnn"])))
    assert len(res["nodes"]) == 2 and res["max_before_dequantize"] == 2
    ops = [n.op_type for n in onnx.load(str(q8.path)).graph.node]
    assert ops.count("QuantizeLinear") >= 2  # activations into the two convolutions
    assert sum(op == "Conv" for op in ops) >= 6  # temporal and mid-end convolutions stay float


def test_quantized_model_is_ours_and_close_to_the_float_one(pair) -> None:  # type: ignore[no-untyped-def]
    fp32, q8, res = pair
    assert q8.info.name == "toy-int8" and q8.info.extra["quantized"]["source"]["name"] == fp32.info.name
    assert q8.info.labels == fp32.info.labels and q8.info.features == fp32.info.features
    assert q8.info.network == fp32.info.network and q8.info.temperature == fp32.info.temperature
    sr = fp32.features.sr
    y = tone(sr, 20.0, 330.0) + 0.05 * noise(sr, 20.0, seed=9) + 0.5 * rhythm(sr, 20.0, seed=4)
    x = feat.compute(y.astype(np.float32), fp32.features)
    a, b = window_logits(fp32, x)[0], window_logits(q8, x)[0]
    assert np.isfinite(b).all() and b.shape == a.shape
    assert np.abs(a - b).max() < 1.0, "8-bit front end drifted far from the float model"
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.9
    assert 0.9 <= res["argmax_agreement"] <= 1.0
