"""Export a run to ONNX with genre-infer metadata, calibrated and checked.

Steps: rebuild the run's best network; fit a softmax temperature on the
validation windows' logits (LBFGS on the NLL) and report the expected
calibration error before and after; export with a dynamic batch axis
(input ``features`` ``(batch, frames, bands)``, output ``logits``); write one
``metadata_props`` entry (:data:`genre_infer.constants.METADATA_KEY`);
check onnxruntime against torch on real validation windows (max abs diff
below :data:`PARITY_TOL`, else fail) and that :func:`genre_infer.load_model`
accepts the file. The target file is replaced atomically only after every
check passed, so an exported model is always valid.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genre_infer.constants import METADATA_KEY
from genre_infer.features import FeatureSpec
from genre_infer.model import ModelInfo

from . import metrics
from .calibrate import ece, fit_temperature
from .constants import CACHE_DIR, OPSET, PARITY_TOL, REPO_ROOT
from .fit import evaluate_split, load_run, prepare

__all__ = ["onnx_export", "parity", "write_metadata", "write_checked", "export",
           "update_metrics", "metrics_file"]


def onnx_export(net: nn.Module, spec: FeatureSpec, path: Path, sequence: bool = False, layout: str | None = None) -> None:
    """Plain ONNX export (TorchScript exporter).

    A windowed network gets a dynamic batch axis; a ``sequence`` network
    (features ``(1, frames, bands)`` + ``starts (windows,)`` → ``(windows, labels)``)
    dynamic frame and window axes; a ``stream`` network its four inputs and two
    outputs (see :mod:`genre_infer.model`).
    """
    layout = layout or ("sequence" if sequence else "windows")
    outputs = ["logits"]
    if layout == "stream":
        frames, dim = 4 * spec.segment_frames, int(net.frame_dim)  # type: ignore[arg-type]
        args: tuple[torch.Tensor, ...] = (torch.zeros(1, frames, spec.n_bands), torch.tensor([2, frames - 2]),
                                          torch.zeros(spec.segment_frames, dim), torch.tensor([0, spec.segment_frames]))
        names = ["features", "keep", "past", "starts"]
        axes = {"features": {1: "frames"}, "past": {0: "rows"}, "starts": {0: "windows"},
                "logits": {0: "windows"}, "frames": {0: "kept"}}
        outputs = ["logits", "frames"]
    elif layout == "sequence":
        frames = 4 * spec.segment_frames
        args = (torch.zeros(1, frames, spec.n_bands),
                                          torch.tensor([0, spec.segment_frames, frames - spec.segment_frames]))
        names = ["features", "starts"]
        axes = {"features": {1: "frames"}, "starts": {0: "windows"}, "logits": {0: "windows"}}
    else:
        args, names = (torch.zeros(2, spec.segment_frames, spec.n_bands),), ["features"]
        axes = {"features": {0: "batch"}, "logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net.eval(), args, str(path), input_names=names, output_names=outputs,
            dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )


def write_metadata(path: Path, info: ModelInfo, out: Path | None = None) -> None:
    """Store ``info`` as the model's single genre-infer ``metadata_props`` entry, in ``path``
    itself or in a copy at ``out``."""
    import onnx

    model = onnx.load(str(path))
    for p in list(model.metadata_props):
        if p.key == METADATA_KEY:
            model.metadata_props.remove(p)
    prop = model.metadata_props.add()
    prop.key = METADATA_KEY
    prop.value = json.dumps(info.to_metadata())
    onnx.checker.check_model(model)
    target = out or path
    tmp = target.with_name(f".{target.name}.metadata")  # replaced in one step: a model file is never half-written
    try:
        onnx.save(model, str(tmp))
        os.chmod(tmp, (target if target.exists() else path).stat().st_mode & 0o777)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def amend_metadata(
    src: Path, out: Path, changes: dict[str, Any], record: tuple[str, dict[str, Any]], version: str | None,
    format_version: int,
) -> ModelInfo:
    """Copy ``src`` to ``out`` (which may be ``src``) with top-level metadata ``changes``, a dated
    ``training.<record[0]>`` note, ``version`` when given and at least ``format_version``; the
    new metadata is validated before anything is written."""
    from genre_infer.model import GenreModel

    meta = GenreModel(src, device="cpu").info.to_metadata()
    meta.update(changes)
    name, note = record
    meta["training"] = {**meta.get("training", {}), name: {
        **note, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
    if version:
        meta["version"] = version
    meta["format_version"] = max(int(meta["format_version"]), format_version)
    new = ModelInfo.from_metadata(meta)
    write_metadata(src, new, out)
    return new


def update_metrics(
    model: Path, note: str, valid: Path | None = None, test: Path | None = None,
    updates: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Store newly measured figures in an exported model's metadata (``python -m train set-metrics``).

    ``valid``/``test`` are ``train evaluate`` metrics.json files whose scores replace
    ``metrics.valid``/``metrics.test``; ``updates`` set dotted keys under ``metrics``
    (e.g. ``calibration.track_ece_after``). What is replaced is kept in
    ``metrics.history`` with ``note`` saying why, so the file tells its own story.
    """
    from genre_infer.model import GenreModel

    info = GenreModel(model, device="cpu").info
    metrics_doc = json.loads(json.dumps(info.extra.get("metrics", {})))
    replaced: dict[str, Any] = {}
    for key, path in (("valid", valid), ("test", test)):
        if path is not None:
            replaced[key] = metrics_doc.get(key)
            metrics_doc[key] = json.loads(Path(path).read_text())["scores"]
    for dotted, value in (updates or {}).items():
        *parents, leaf = dotted.split(".")
        node = metrics_doc
        for k in parents:
            node = node.setdefault(k, {})
        replaced[dotted] = node.get(leaf)
        node[leaf] = value
    metrics_doc.setdefault("history", []).append({"note": note, "replaced": replaced,
                                                  "date": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    write_metadata(model, ModelInfo.from_metadata({**info.to_metadata(), "metrics": metrics_doc}))
    return metrics_doc


def parity(net: nn.Module, path: Path, windows: np.ndarray | tuple[np.ndarray, np.ndarray]) -> float:
    """Max abs difference between onnxruntime's and torch's logits on an example input.

    ``windows`` is ``(batch, frames, bands)`` for a windowed network, or the tuple of a
    sequence network's ``(features (1, frames, bands), starts)`` or a stream network's
    ``(features, keep, past, starts)``; for a stream network the kept frames' embeddings
    are compared too, relative to their largest magnitude (they reach ~100 where logits
    stay near 1).
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = windows if isinstance(windows, tuple) else (windows,)
    arrays = [np.ascontiguousarray(a, dtype=np.int64 if a.dtype.kind in "iu" else np.float32) for a in inputs]
    names = ["features", "keep", "past", "starts"] if len(arrays) == 4 else ["features", "starts"]
    with torch.no_grad():
        ref = net.eval()(*[torch.from_numpy(a) for a in arrays])
    refs = [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]
    got = sess.run(["logits", "frames"][: len(refs)], dict(zip(names, arrays)))
    return float(max(np.max(np.abs(r - g)) / (1.0 if i == 0 else max(1.0, float(np.abs(r).max())))
                     for i, (r, g) in enumerate(zip(refs, got))))


def write_checked(
    net: nn.Module, info: ModelInfo, windows: np.ndarray | tuple[np.ndarray, np.ndarray], out: Path,
) -> float:
    """Export ``net`` with ``info`` as metadata to ``out``, only once every check has passed.

    The file is written beside ``out`` first; onnxruntime must match torch on ``windows``
    (see :func:`parity` for the sequence and stream layouts' tuples of inputs)
    (max abs logit difference below :data:`PARITY_TOL`) and :func:`genre_infer.load_model`
    must read back the same labels and features. Then it replaces ``out`` atomically, so an
    exported model is always valid. Returns the parity difference.
    """
    import genre_infer

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=out.parent, prefix=f".{out.stem}-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        onnx_export(net, info.features, tmp, layout=info.network.layout)
        write_metadata(tmp, info)
        diff = parity(net, tmp, windows)
        if not diff < PARITY_TOL:
            raise RuntimeError(f"onnxruntime vs torch max abs diff {diff:.3g} >= {PARITY_TOL}")
        loaded = genre_infer.load_model(tmp, device="cpu")
        if tuple(loaded.labels) != tuple(info.labels) or loaded.model.features != info.features:
            raise RuntimeError("genre_infer reads different labels or features than were written")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a shipped model must be readable
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return diff


def shipped_model(path: str | os.PathLike[str]) -> str | None:
    """The name of the shipped model that ``path`` would overwrite, else ``None``.

    Shipped models are ``exported/*.onnx`` of this checkout (which ``pip install .`` puts
    in the wheel) and the models of the installed package.
    """
    from genre_infer.model import available_models

    target = Path(path).resolve()
    if target.suffix == ".onnx" and target.parent == (REPO_ROOT / "exported").resolve() and target.exists():
        return target.stem
    return next((name for name, p in available_models().items() if p.resolve() == target), None)


def export(
    run: str | os.PathLike[str], out: str | os.PathLike[str], name: str, version: str,
    cache_dir: str | os.PathLike[str] = CACHE_DIR, calibrate: bool = True,
    test_metrics: str | os.PathLike[str] | None = None, parity_windows: int = 64,
) -> dict[str, Any]:
    """Export a run folder's best network to ``out`` (see module docstring).

    Returns
    -------
    dict
        The metadata document written.

    Raises
    ------
    RuntimeError
        Parity above tolerance, or genre_infer refuses the file (``out`` is then untouched).
    """
    run = Path(run)
    out = Path(out)
    net, cfg, spec, labels, ckpt = load_run(run)
    prep = prepare(cfg.data, cfg, cache_dir, splits=("valid",))
    if prep.spec != spec:
        raise RuntimeError("features of the data now differ from the run's (cache or data changed)")
    dev = torch.device("cpu")
    valid, preds = evaluate_split(net, prep.clips["valid"], spec, len(labels), dev)
    logits = np.concatenate([p.window_logits for p in preds])
    y = np.concatenate([np.full(len(p.window_logits), p.label) for p in preds])
    temperature = fit_temperature(logits, y) if calibrate else 1.0
    calib = {"temperature": temperature, "ece_before": ece(metrics.softmax(logits), y),
             "ece_after": ece(metrics.softmax(logits, temperature), y), "fitted_on": "valid windows"}
    if temperature != 1.0:  # the figures of what ships: song verdicts depend on the temperature
        valid, _ = evaluate_split(net, prep.clips["valid"], spec, len(labels), dev, temperature=temperature)
    run_metrics = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    metric_doc: dict[str, Any] = {"valid": valid, "calibration": calib}
    if test_metrics:
        metric_doc["test"] = json.loads(Path(test_metrics).read_text()).get("scores")
    extra = {
        "training": {
            "data": str(cfg.data), "split": ckpt.get("split"), "config": ckpt["config"], "seed": cfg.seed,
            "epochs": run_metrics.get("epochs_run"), "best_epoch": run_metrics.get("best_epoch"),
            "run": run.name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
        },
        "metrics": metric_doc,
        "parameters": int(ckpt["parameters"]),
    }
    info = ModelInfo(name, version, tuple(labels), features=spec, temperature=temperature,
                     uncertain_below=0.0, extra=extra)
    windows = np.concatenate([metrics.track_windows(c.x, spec)[0] for c in prep.clips["valid"][:8]])
    rng = np.random.default_rng(0)
    diff = write_checked(net, info, windows[rng.permutation(len(windows))[:parity_windows]], out)
    print(f"exported {out}: parity max|diff| {diff:.2e}, T={temperature:.3f}, "
          f"ECE {calib['ece_before']:.3f} -> {calib['ece_after']:.3f}, valid {json.dumps(valid)}")
    return info.to_metadata()


def metrics_file(model: Path, bench: Path | None = None) -> dict[str, Any]:
    """A shipped model's measured figures as one JSON document (``python -m train metrics-file``).

    Everything comes from the model's own metadata (name, version, head configuration,
    ``metrics``) and, when given, a ``bench/bench.py`` results file measured on it, so
    ``exported/metrics.json`` never says something the model file does not.
    """
    import hashlib

    from genre_infer.model import GenreModel

    info = GenreModel(model, device="cpu").info
    training = info.extra.get("training", {})
    doc: dict[str, Any] = {
        "model": {"name": info.name, "version": info.version, "file": model.name,
                  "size_bytes": model.stat().st_size, "sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
                  "parameters": info.extra.get("parameters"), "layout": info.network.layout},
        "labels": list(info.labels), "temperature": info.temperature, "uncertain_below": info.uncertain_below,
        "config": training.get("config"), "recipe": training.get("recipe"),
        "metrics": info.extra.get("metrics", {}),
    }
    if bench is not None:
        doc["bench"] = json.loads(bench.read_text())
    return doc
