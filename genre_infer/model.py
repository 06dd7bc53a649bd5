"""Load a genre-infer ONNX model, validate its metadata, and run batches.

A genre-infer model is an ONNX graph with one input of features and one
output of logits, in one of three layouts:

- ``windows`` (format 1): ``(batch, segment_frames, bands)`` → ``(batch, n_labels)``,
  one call per window;
- ``sequence`` (format 2): features ``(1, frames, bands)`` plus window starts
  ``(windows,)`` (int64, in frames) → ``(windows, n_labels)``: the network runs
  once over a long stretch of frames and pools each window from it, so
  overlapping windows share their computation;
- ``stream`` (format 3): the sequence network split at its per-frame
  embeddings, so consecutive calls share no frames but their context. Inputs
  ``features (1, frames, bands)``, ``keep (2,)`` (int64: the frames
  ``[keep[0], keep[1])`` of this call whose embeddings are wanted; the others
  are context), ``past (rows, dim)`` (embeddings returned by earlier calls) and
  ``starts (windows,)`` (int64, window starts as rows of ``past`` followed by
  this call's kept frames); outputs ``logits (windows, n_labels)`` and
  ``frames (keep[1] - keep[0], dim)``, the kept frames' embeddings;

plus a JSON document in the ``metadata_props`` entry named :data:`METADATA_KEY`::

    {
      "format_version": 1,           # 2 for the sequence layout, 3 for stream, 4 with features.level_db
      "name": "...", "version": "...",
      "labels": ["blues", ...],
      "features": {...FeatureSpec...},
      "temperature": 1.0,            # logits are divided by it before softmax
      "uncertain_below": 0.0,        # optional: confidence under which a second is "uncertain"
      "network": {"layout": "sequence", "context_frames": 80},  # formats 2 and 3
      "training": {...}, "metrics": {...}   # free-form, shown in model info
    }

Everything inference needs is read from there and nowhere else.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np

from .constants import BATCH_SIZE, DEFAULT_MODEL_NAME, MAX_THREADS, METADATA_FORMAT_VERSION, METADATA_KEY
from .errors import GenreInferError, ModelError
from .features import FeatureSpec
from .schema import MAX_METADATA_BYTES, check_metadata

__all__ = [
    "ModelInfo", "NetworkSpec", "TimelineSpec", "ExpertSpec", "GenreModel", "resolve_model_path", "available_models",
    "select_providers",
]

Device = Literal["auto", "cpu", "cuda"]
Layout = Literal["windows", "sequence", "stream"]

#: Oldest metadata format that can describe each layout.
LAYOUT_FORMAT = {"windows": 1, "sequence": 2, "stream": 3}
#: Metadata format that introduced ``features.level_db`` (loudness normalisation).
LEVEL_FORMAT = 4
#: Metadata format that introduced ``timeline`` (smoothing of the per-second probabilities).
TIMELINE_FORMAT = 5
#: Metadata format that introduced EfficientAT's front end (``features.mel_scale`` etc.),
#: ``network.chunk_frames`` and ``experts``.
FRONT_END_FORMAT = 6

#: Input names of a ``stream`` network, in this order.
STREAM_INPUTS = ("features", "keep", "past", "starts")


_PACKAGE_MODELS = Path(__file__).resolve().parent / "models"
_SOURCE_MODELS = Path(__file__).resolve().parent.parent / "exported"
#: Names of models shipped once and removed since, with what to use instead.
RETIRED_MODELS: dict[str, str] = {}


@dataclass(frozen=True)
class NetworkSpec:
    """How the network reads features.

    Attributes
    ----------
    layout : {"windows", "sequence", "stream"}
        One call per batch of windows; one call over a long stretch of frames
        that pools the windows inside it; or stretches that return their frames'
        embeddings, which later calls pool windows from (see the module docstring).
    context_frames : int
        Frames on each side of a frame that affect its embedding (the receptive
        field's half-width): stretches are cut with this much extra on each
        side, so the result equals one call over the whole signal (``sequence``
        and ``stream``).
    chunk_frames : int or None
        New frames per call of a ``stream`` network (``None``: the runtime's
        :data:`~genre_infer.constants.SEQUENCE_CHUNK_FRAMES`). A network that
        normalises over its whole input (squeeze-and-excitation, as EfficientAT's)
        fixes it, so its embeddings are those it was trained and checked with.
    """

    layout: Layout = "windows"
    context_frames: int = 0
    chunk_frames: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkSpec:
        """Parse the ``network`` metadata entry; raise ``ValueError`` when it is inconsistent."""
        unknown = set(d) - {"layout", "context_frames", "chunk_frames"}
        if unknown:
            raise ValueError(f"unknown network parameters: {sorted(unknown)}")
        chunk = d.get("chunk_frames")
        net = cls(str(d.get("layout", "windows")), int(d.get("context_frames", 0)),  # type: ignore[arg-type]
                  None if chunk is None else int(chunk))
        if net.layout not in LAYOUT_FORMAT:
            raise ValueError(f"unknown network layout {net.layout!r}")
        if net.context_frames < 0:
            raise ValueError("context_frames must not be negative")
        return net

    def to_dict(self) -> dict[str, Any]:
        """The ``network`` metadata entry (``chunk_frames`` only when set)."""
        d: dict[str, Any] = {"layout": self.layout, "context_frames": self.context_frames}
        if self.chunk_frames is not None:
            d["chunk_frames"] = self.chunk_frames
        return d


@dataclass(frozen=True)
class TimelineSpec:
    """How the per-second probabilities are smoothed over time (:func:`genre_infer.timeline.sticky_smooth`).

    Attributes
    ----------
    switch_prob : float
        Probability, per second, that the genre changes: the sticky hidden Markov model's
        transition probability (spread evenly over the other genres).
    temperature : float
        Temperature applied to the smoothed probabilities, which calibrates them again.
    method : str
        ``"sticky-hmm"``, the only method so far.
    """

    switch_prob: float
    temperature: float = 1.0
    method: str = "sticky-hmm"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TimelineSpec:
        """Parse the ``timeline`` metadata entry; raise ``ValueError`` when it is inconsistent."""
        unknown = set(d) - {"method", "switch_prob", "temperature"}
        if unknown:
            raise ValueError(f"unknown timeline parameters: {sorted(unknown)}")
        spec = cls(float(d["switch_prob"]), float(d.get("temperature", 1.0)), str(d.get("method", "sticky-hmm")))
        if spec.method != "sticky-hmm":
            raise ValueError(f"unknown timeline smoothing {spec.method!r}")
        if not 0.0 < spec.switch_prob < 1.0:
            raise ValueError("timeline switch_prob must lie between 0 and 1")
        if not spec.temperature > 0.0:
            raise ValueError("timeline temperature must be positive")
        return spec


@dataclass(frozen=True)
class ExpertSpec:
    """A second network whose window logits are added to the model's, genre by genre.

    Attributes
    ----------
    model : str
        File name of the expert's ``.onnx``, relative to the model file's folder (a path
        inside it: no absolute path, no ``..``). The expert is a genre-infer model with the
        same labels, and its own features (its own sample rate) and layout.
    weights : tuple of float
        Per-genre factor of the expert's logits: the model's window logits become
        ``logits + weights * expert_logits``, each window taking the expert window whose
        start is nearest.
    sha256 : str
        Digest of the expert file: a model never runs with an expert it was not fitted with.
    """

    model: str
    weights: tuple[float, ...]
    sha256: str

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExpertSpec:
        """Build from an ``experts`` entry that :func:`genre_infer.schema.check_experts` accepted."""
        return cls(str(d["model"]), tuple(float(w) for w in d["weights"]), str(d["sha256"]))

    def to_dict(self) -> dict[str, Any]:
        """The metadata entry."""
        return {"model": self.model, "weights": list(self.weights), "sha256": self.sha256}


@dataclass(frozen=True)
class ModelInfo:
    """What a model's metadata says about it.

    Attributes
    ----------
    name, version : str
        Model identity, reported in every result.
    labels : tuple of str
        Genre names in the order of the network's outputs.
    features : FeatureSpec
        Feature parameters the network was trained with.
    temperature : float
        Calibration temperature applied to the logits.
    uncertain_below : float
        Confidence under which a timeline second is labelled ``"uncertain"`` (0 disables).
    extra : dict
        The rest of the metadata (training recipe, metrics) as stored.
    network : NetworkSpec
        Layout of the network's input and output.
    timeline : TimelineSpec or None
        Smoothing of the per-second probabilities (``None``: none).
    experts : tuple of ExpertSpec
        Networks whose logits are added to this one's (:class:`ExpertSpec`).
    """

    name: str
    version: str
    labels: tuple[str, ...]
    features: FeatureSpec
    temperature: float = 1.0
    uncertain_below: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    network: NetworkSpec = NetworkSpec()
    timeline: TimelineSpec | None = None
    experts: tuple[ExpertSpec, ...] = ()

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> ModelInfo:
        """Parse and validate the metadata document; raise ``ModelError`` when it is not ours."""
        version = meta.get("format_version")
        if not isinstance(version, int):
            raise ModelError("metadata has no integer format_version")
        if version > METADATA_FORMAT_VERSION:
            raise ModelError(
                f"model metadata format {version} is newer than this genre-infer understands "
                f"({METADATA_FORMAT_VERSION}); upgrade genre-infer"
            )
        try:
            check_metadata(meta, METADATA_FORMAT_VERSION)
            labels = tuple(str(x) for x in meta["labels"])
            spec = FeatureSpec.from_dict(dict(meta["features"]))
            info = cls(
                name=str(meta["name"]),
                version=str(meta["version"]),
                labels=labels,
                features=spec,
                temperature=float(meta.get("temperature", 1.0)),
                uncertain_below=float(meta.get("uncertain_below", 0.0)),
                extra={k: v for k, v in meta.items() if k not in _CORE_KEYS},
                network=NetworkSpec.from_dict(dict(meta.get("network", {}))),
                timeline=TimelineSpec.from_dict(dict(meta["timeline"])) if "timeline" in meta else None,
                experts=tuple(ExpertSpec.from_dict(dict(e)) for e in meta.get("experts", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"invalid genre-infer metadata ({exc})") from None
        if len(labels) < 2 or len(set(labels)) != len(labels):
            raise ModelError("metadata labels must be at least two distinct names")
        if info.temperature <= 0:
            raise ModelError("metadata temperature must be positive")
        need = LAYOUT_FORMAT[info.network.layout]
        if version < need:
            raise ModelError(f"the {info.network.layout} layout needs metadata format {need}")
        if spec.level_db is not None and version < LEVEL_FORMAT:
            raise ModelError(f"loudness normalisation (features.level_db) needs metadata format {LEVEL_FORMAT}")
        if info.timeline is not None and version < TIMELINE_FORMAT:
            raise ModelError(f"timeline smoothing needs metadata format {TIMELINE_FORMAT}")
        if info._needs_front_end_format() and version < FRONT_END_FORMAT:
            raise ModelError(f"these feature or network parameters need metadata format {FRONT_END_FORMAT}")
        return info

    def _needs_front_end_format(self) -> bool:
        feats = set(self.features.to_dict()) - {"level_db"}
        return (bool(feats - _FORMAT5_FEATURES) or self.features.compression == "ln"
                or self.network.chunk_frames is not None or bool(self.experts))

    @property
    def smoothing_args(self) -> tuple[float, float]:
        """``(switch_prob, smoothed_temperature)`` for :func:`genre_infer.timeline.timeline_from_logits`
        (``(0.0, 1.0)``: no smoothing)."""
        return (self.timeline.switch_prob, self.timeline.temperature) if self.timeline else (0.0, 1.0)

    def to_metadata(self) -> dict[str, Any]:
        """The JSON document to store in an ONNX file (inverse of :meth:`from_metadata`)."""
        seq = self.network.layout != "windows"
        return {
            # the oldest format that can describe it
            "format_version": max(LAYOUT_FORMAT[self.network.layout],
                                  LEVEL_FORMAT if self.features.level_db is not None else 1,
                                  TIMELINE_FORMAT if self.timeline is not None else 1,
                                  FRONT_END_FORMAT if self._needs_front_end_format() else 1),
            "name": self.name,
            "version": self.version,
            "labels": list(self.labels),
            "features": self.features.to_dict(),
            "temperature": self.temperature,
            "uncertain_below": self.uncertain_below,
            **({"network": self.network.to_dict()} if seq else {}),
            **({"timeline": asdict(self.timeline)} if self.timeline is not None else {}),
            **({"experts": [e.to_dict() for e in self.experts]} if self.experts else {}),
            **self.extra,
        }


#: Feature parameters that metadata formats up to 5 know.
_FORMAT5_FEATURES = {"kind", "sr", "n_fft", "hop_length", "n_mels", "fmin", "fmax", "compression", "log_scale",
                     "n_mfcc", "segment_frames", "window_hop_s", "mean", "std"}

_CORE_KEYS = {"format_version", "name", "version", "labels", "features", "temperature", "uncertain_below", "network",
              "timeline", "experts"}


def available_models() -> dict[str, Path]:
    """Named models shipped with the package (or in ``exported/`` of a source checkout)."""
    found: dict[str, Path] = {}
    for folder in (_SOURCE_MODELS, _PACKAGE_MODELS):  # the package's copy wins
        if folder.is_dir():
            for p in sorted(folder.glob("*.onnx")):
                found[p.stem] = p
    return found


def resolve_model_path(model: str | os.PathLike[str] | None) -> Path:
    """Turn ``None`` (the default model), a shipped model's name, or a path into a file path."""
    if model is None:
        model = DEFAULT_MODEL_NAME
    text = os.fspath(model)
    shipped = available_models()
    # os.path's tests, not Path's: a name the system refuses (too long) is not there, no OSError
    if text in shipped and not os.path.exists(text):
        return shipped[text]
    path = Path(text)
    if os.path.isfile(text):
        return path
    if os.path.isdir(text):
        raise ModelError(f"model {text!r} is a directory, not an .onnx file")
    if os.path.exists(text):
        raise ModelError(f"model {text!r} is not a regular file (a pipe or device): give the .onnx file")
    if os.path.lexists(text):
        raise ModelError(f"model {text!r} is a broken symbolic link (or a loop of them)")
    if text in RETIRED_MODELS:
        raise ModelError(f"model {text!r} {RETIRED_MODELS[text]}")
    names = ", ".join(sorted(shipped)) or "none installed"
    raise ModelError(f"no model file or shipped model named {text!r} (shipped: {names})")


#: Options of onnxruntime's CUDA provider, measured on an H100 (4-min song, warm network):
#: cuDNN's exhaustive algorithm search, onnxruntime's default, searched again on every call
#: (0.23 s per 700-frame call, 0.40 s per song); the heuristic choice takes 0.018 s per call and
#: 0.08 s per song. TF32 moved logits by 3e-3 from the CPU's (one window in 239 changed its
#: winner); without it they stay within 3.3e-6, at the same speed.
CUDA_OPTIONS: dict[str, str] = {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}


def _preload_cuda() -> None:
    """Load the CUDA and cuDNN libraries of pip's ``nvidia-*`` packages for onnxruntime-gpu.

    ``onnxruntime.preload_dlls`` (onnxruntime 1.21 and later) finds them beside it in
    site-packages, as ``pip install 'onnxruntime-gpu[cuda,cudnn]'`` puts them; system-wide CUDA
    needs nothing. It prints what it could not load on stdout, which carries our results: that
    is dropped, and a CUDA provider that then fails to start is reported by :class:`GenreModel`.
    """
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    with _quiet_python_output(), contextlib.suppress(Exception):
        preload()


@contextlib.contextmanager
def _quiet_python_output() -> Iterator[None]:
    """Drop what onnxruntime's Python layer prints on stdout (which carries our results) or warns.

    Both are process-wide while it lasts, so it is kept to the start of a GPU session."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def select_providers(device: Device = "auto") -> list[str | tuple[str, dict[str, str]]]:
    """onnxruntime execution providers for ``device`` (``auto``: CUDA when available)."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    cuda: list[str | tuple[str, dict[str, str]]] = [("CUDAExecutionProvider", CUDA_OPTIONS), "CPUExecutionProvider"]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in have:
            raise GenreInferError(
                "CUDA was requested but onnxruntime has no CUDA provider "
                "(replace onnxruntime with onnxruntime-gpu on a machine with an NVIDIA GPU; see the README)"
            )
        return cuda
    if device != "auto":
        raise GenreInferError(f"unknown device {device!r} (choose auto, cpu or cuda)")
    if "CUDAExecutionProvider" in have:
        return cuda
    return ["CPUExecutionProvider"]


class GenreModel:
    """An onnxruntime session plus the metadata of the model it runs.

    One instance is safe to share between threads (onnxruntime's ``run`` is).

    Parameters
    ----------
    model : str, os.PathLike or None
        Path of an ``.onnx`` file, the name of a shipped model, or ``None`` for the default.
    device : {"auto", "cpu", "cuda"}
        Where to run; ``auto`` uses CUDA when onnxruntime-gpu sees a GPU.
    threads : int, optional
        Intra-op threads for the CPU provider (default: onnxruntime's choice).

    Raises
    ------
    ModelError
        The file is missing, not ONNX, lacks genre-infer metadata, or disagrees with it.
    """

    def __init__(
        self, model: str | os.PathLike[str] | None = None, *, device: Device = "auto",
        threads: int | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = resolve_model_path(model)
        providers = select_providers(device)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # onnxruntime's memory patterns are cached per input shape, and stream/sequence calls vary
        # in shape (rows handed on, windows per call): with them a 1-h file peaked at 307 MB against
        # 229 MB for 3 min; without, 234 MB, and no measurable loss of speed (52.3 s vs 53.7 s).
        opts.enable_mem_pattern = False
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= MAX_THREADS:
                raise GenreInferError(f"threads must be a whole number from 1 to {MAX_THREADS}, got {threads!r}")
            threads = int(threads)
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        on_cpu = providers[0] == "CPUExecutionProvider"
        if not on_cpu:
            _preload_cuda()
        try:
            # onnxruntime prints and warns when it falls back from a provider that cannot start;
            # the fallback is reported below
            with contextlib.nullcontext() if on_cpu else _quiet_python_output():
                self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: not a loadable ONNX model ({first[:160]})") from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise ModelError(f"{self.path}: an ONNX model, but not a genre-infer model (no metadata)")
        if len(raw) > MAX_METADATA_BYTES:
            raise ModelError(f"{self.path}: genre-infer metadata is larger than {MAX_METADATA_BYTES} bytes")
        try:
            meta = json.loads(raw)
        except (json.JSONDecodeError, RecursionError):
            raise ModelError(f"{self.path}: genre-infer metadata is not valid JSON (or nested too deeply)") from None
        if not isinstance(meta, dict):
            raise ModelError(f"{self.path}: genre-infer metadata is not a JSON object")
        try:
            self.info = ModelInfo.from_metadata(meta)
        except ModelError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        self._check_io()
        self.experts: list[tuple[GenreModel, np.ndarray]] = [
            (self._load_expert(e, device, threads), np.asarray(e.weights, np.float32)) for e in self.info.experts]
        self.providers = self.session.get_providers()
        if device == "cuda" and "CUDAExecutionProvider" not in self.providers:
            raise GenreInferError(
                "CUDA was requested but onnxruntime could not start it: the CUDA and cuDNN libraries "
                "onnxruntime-gpu was built for are missing (pip install 'onnxruntime-gpu[cuda,cudnn]') "
                "or no NVIDIA GPU is usable"
            )

    def _check_io(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        layout = self.info.network.layout
        if layout == "stream":
            self._check_stream_io(inputs, outputs)
            return
        spec, seq = self.info.features, layout == "sequence"
        if len(inputs) != (2 if seq else 1) or len(outputs) < 1:
            want = "features and window starts" if seq else "one input"
            raise ModelError(f"{self.path}: expected {want} and one output, as its metadata says")
        want_in = (None if seq else spec.segment_frames, spec.n_bands)
        shape = inputs[0].shape
        if len(shape) != 3 or any(
            isinstance(d, int) and w is not None and d != w for d, w in zip(shape[1:], want_in)
        ):
            raise ModelError(
                f"{self.path}: input shape {shape} disagrees with its metadata "
                f"({'1, frames' if seq else f'batch, {want_in[0]}'}, {want_in[1]})"
            )
        if seq and len(inputs[1].shape) != 1:
            raise ModelError(f"{self.path}: window starts input must be one-dimensional, not {inputs[1].shape}")
        self._check_logits(outputs[0].shape)
        self._input_name = inputs[0].name
        self._starts_name = inputs[1].name if seq else None
        self._output_name = outputs[0].name

    def _load_expert(self, e: ExpertSpec, device: Device, threads: int | None) -> GenreModel:
        import hashlib

        folder = self.path.resolve().parent
        path = (folder / e.model).resolve()
        if folder not in path.parents or not path.is_file():
            raise ModelError(f"{self.path}: its expert {e.model} is not a file beside it")
        if hashlib.sha256(path.read_bytes()).hexdigest() != e.sha256:
            raise ModelError(f"{self.path}: its expert {e.model} is not the file it was fitted with (sha256 differs)")
        expert = GenreModel(path, device=device, threads=threads)
        if expert.labels != self.labels:
            raise ModelError(f"{self.path}: its expert {e.model} has other labels")
        if expert.info.experts:
            raise ModelError(f"{self.path}: its expert {e.model} has experts of its own")
        if (expert.features.level_db is None) != (self.features.level_db is None):
            raise ModelError(f"{self.path}: a model and its experts normalise loudness alike, or none does")
        return expert

    def _check_logits(self, out: list[Any]) -> None:
        if len(out) != 2 or (isinstance(out[1], int) and out[1] != len(self.info.labels)):
            raise ModelError(
                f"{self.path}: output shape {out} disagrees with its {len(self.info.labels)} labels"
            )

    def _check_stream_io(self, inputs: list[Any], outputs: list[Any]) -> None:
        names, outs = tuple(i.name for i in inputs), [o.name for o in outputs][:2]
        if names != STREAM_INPUTS or outs != ["logits", "frames"]:
            raise ModelError(f"{self.path}: a stream network takes inputs {', '.join(STREAM_INPUTS)} and "
                             f"returns logits and frames, as its metadata says (it takes {', '.join(names)} "
                             f"and returns {', '.join(outs)})")
        shape = inputs[0].shape
        if len(shape) != 3 or (isinstance(shape[2], int) and shape[2] != self.info.features.n_bands):
            raise ModelError(f"{self.path}: input shape {shape} disagrees with its metadata "
                             f"(1, frames, {self.info.features.n_bands})")
        past = inputs[2].shape
        if len(past) != 2 or not isinstance(past[1], int) or [len(inputs[1].shape), len(inputs[3].shape)] != [1, 1]:
            raise ModelError(f"{self.path}: stream inputs keep/past/starts must be (2,), (rows, dim), (windows,)")
        self._check_logits(outputs[0].shape)
        frames = outputs[1].shape
        if len(frames) != 2 or (isinstance(frames[1], int) and frames[1] != past[1]):
            raise ModelError(f"{self.path}: stream output frames {frames} must be as wide as input past {past}")
        self.frame_dim = int(past[1])

    def _run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[Any]:
        """``session.run``, with a network that fails or answers in the wrong shape as a ModelError."""
        try:
            result = self.session.run(outputs, feeds)
        except MemoryError:
            raise
        except Exception as exc:  # onnxruntime's own Fail/RuntimeException/... types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{self.path}: the network failed to run ({first[:160]})") from None
        logits = result[0]
        if getattr(logits, "ndim", 0) != 2 or logits.shape[1] != len(self.info.labels):
            raise ModelError(f"{self.path}: the network returned logits of shape {getattr(logits, 'shape', '?')}, "
                             f"not (windows, {len(self.info.labels)}) for its {len(self.info.labels)} labels")
        return result

    @property
    def labels(self) -> tuple[str, ...]:
        """Genre names in output order."""
        return self.info.labels

    @property
    def features(self) -> FeatureSpec:
        """The model's feature parameters."""
        return self.info.features

    def logits(self, windows: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Run windows ``(n, frames, bands)`` through the network in batches → ``(n, labels)``.

        Windowed networks only; the others run through :func:`genre_infer.inference.make_runner`.
        """
        if self.info.network.layout != "windows":
            raise ModelError(f"{self.path}: a {self.info.network.layout} network does not take single windows "
                             "(run it with genre_infer.inference.make_runner)")
        out = []
        for i in range(0, len(windows), batch_size):
            batch = np.ascontiguousarray(windows[i : i + batch_size], dtype=np.float32)
            out.append(self._run([self._output_name], {self._input_name: batch})[0])
        return np.concatenate(out, axis=0).astype(np.float32, copy=False)

    def sequence_logits(self, x: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """Run a sequence network over features ``(frames, bands)`` → logits ``(len(starts), labels)``.

        ``starts`` are the windows' first frames within ``x``.
        """
        feeds = {self._input_name: np.ascontiguousarray(x[None], dtype=np.float32),
                 self._starts_name: np.ascontiguousarray(starts, dtype=np.int64)}
        return self._run([self._output_name], feeds)[0].astype(np.float32, copy=False)

    def stream_logits(
        self, x: np.ndarray, keep: tuple[int, int], past: np.ndarray, starts: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run a stream network: features ``(frames, bands)`` of which ``x[keep[0]:keep[1]]`` are
        embedded (the rest is context), windows at ``starts`` over ``past`` rows followed by
        the kept frames' → ``(logits (len(starts), labels), kept frames' embeddings)``."""
        feeds = {"features": np.ascontiguousarray(x[None], dtype=np.float32),
                 "keep": np.asarray(keep, dtype=np.int64),
                 "past": np.ascontiguousarray(past, dtype=np.float32).reshape(-1, self.frame_dim),
                 "starts": np.ascontiguousarray(starts, dtype=np.int64)}
        logits, frames = self._run(["logits", "frames"], feeds)
        return logits.astype(np.float32, copy=False), frames

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities from logits ``(n, labels)`` (softmax of logits / temperature)."""
        from .timeline import softmax

        return softmax(logits, self.info.temperature)

    def probabilities(self, windows: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Calibrated class probabilities ``(n, labels)`` of windows ``(n, frames, bands)``."""
        return self.calibrate(self.logits(windows, batch_size))
