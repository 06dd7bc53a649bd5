"""Label a whole music library on a Ray cluster (``pip install 'genre-infer[ray]'``).

Ray Data is the engine: a dataset of file paths (or of bytes, as
``ray.data.read_binary_files(..., include_paths=True)`` gives them) flows through an
actor pool of :class:`Classify` instances, each holding one loaded model, and the rows
land in Parquet. Every row is the ``genre-infer --format jsonl`` record of one file,
flattened into columns (:func:`record` turns it back):

``schema_version, path, duration, genre, confidence, prob_<genre>... (one per genre,
in the model's order), top, sections, timeline (JSON text), model_name,
model_version, error``.

A file that cannot be classified is a row with ``error`` set (the message the CLI
prints) and the result columns null, never a failed job. :func:`classify_library`
does the whole job and resumes: files already in the output are not classified again.

Ray is imported by the functions that need it, so this module's pure parts need only
pyarrow, and ``import genre_infer`` never loads either.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import uuid
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

try:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
except ImportError as exc:  # pragma: no cover - the extra's own dependency
    raise ImportError("genre_infer.cluster needs the ray extra: pip install 'genre-infer[ray]'") from exc

from .cli import WORKER_DIED
from .constants import AUDIO_EXTENSIONS, OUTPUT_SCHEMA_VERSION
from .errors import GenreInferError
from .output import display_path

__all__ = [
    "Classify", "Ledger", "LibrarySummary", "classify_library", "list_audio", "read_done", "record", "row_schema",
    "start_ledger", "PROB_PREFIX", "RAY_MISSING", "WORKER_DIED",
]

#: Column name prefix of the per-genre probabilities (``prob_rock``).
PROB_PREFIX = "prob_"
#: What a caller sees when Ray is not installed.
RAY_MISSING = "Ray is not installed: pip install 'genre-infer[ray]'"
#: Files per block of the input dataset, in batches: a block is classified by one actor
#: and written as one Parquet file, so it is also what an interrupted run loses at most.
BATCHES_PER_BLOCK = 4
#: Environment of the actors: numpy's BLAS threads fought onnxruntime's for the cores
#: (see genre_infer.cli), so they get one, as ``genre-infer`` gives its workers.
WRITERS = 2
ACTOR_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise GenreInferError(RAY_MISSING) from None
    return ray


def row_schema(labels: Sequence[str]) -> pa.Schema:
    """The Arrow schema of the rows for a model with genres ``labels``."""
    return pa.schema(
        [("schema_version", pa.int32()), ("path", pa.string()), ("duration", pa.float64()),
         ("genre", pa.string()), ("confidence", pa.float64())]
        + [(PROB_PREFIX + g, pa.float64()) for g in labels]
        + [("top", pa.string()), ("sections", pa.string()), ("timeline", pa.string()),
           ("model_name", pa.string()), ("model_version", pa.string()), ("error", pa.string())]
    )


def _row(rec: Mapping[str, Any], labels: Sequence[str], model: tuple[str, str]) -> dict[str, Any]:
    """A JSONL record (a result's ``to_dict`` or an error record) as one row of :func:`row_schema`."""
    row: dict[str, Any] = {
        "schema_version": rec["schema_version"], "path": rec["file"], "duration": rec.get("duration"),
        "genre": rec.get("genre"), "confidence": rec.get("confidence"),
    }
    probs = rec.get("probabilities") or {}
    for g in labels:
        row[PROB_PREFIX + g] = probs.get(g)
    for key in ("top", "sections", "timeline"):
        row[key] = json.dumps(rec[key], ensure_ascii=False) if key in rec else None
    row["model_name"], row["model_version"] = model
    row["error"] = rec.get("error")
    return row


def record(row: Mapping[str, Any]) -> dict[str, Any]:
    """The ``genre-infer --format jsonl`` record of one row (keys and values as the CLI writes them).

    Parameters
    ----------
    row : mapping
        A row of the Parquet output, e.g. from ``pyarrow.Table.to_pylist()``.

    Returns
    -------
    dict
        A result record, or ``{"schema_version", "file", "error"}`` for a failed file.
    """
    if row.get("error") is not None:
        return {"schema_version": row["schema_version"], "file": row["path"], "error": row["error"]}
    rec: dict[str, Any] = {
        "schema_version": row["schema_version"], "file": row["path"], "duration": row["duration"],
        "model": {"name": row["model_name"], "version": row["model_version"]},
        "genre": row["genre"], "confidence": row["confidence"], "top": json.loads(row["top"]),
        "probabilities": {k[len(PROB_PREFIX):]: v for k, v in row.items() if k.startswith(PROB_PREFIX)},
        "sections": json.loads(row["sections"]),
    }
    if row.get("timeline") is not None:
        rec["timeline"] = json.loads(row["timeline"])
    return rec


def _is_uri(path: str) -> bool:
    return "://" in path


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """pyarrow's filesystem and path for a URI (``s3://``, ``gs://``, ``hdfs://``...) or a local path."""
    if not _is_uri(uri):
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise GenreInferError(f"{uri}: cannot open this location ({exc})") from None


def _uri(fs: pafs.FileSystem, path: str, like: str) -> str:
    """``path`` on ``fs`` spelt as users spell it: local paths as they are, others as ``scheme://path``."""
    if isinstance(fs, pafs.LocalFileSystem):
        return path
    return f"{like.split('://', 1)[0]}://{path}"


def list_audio(source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """The audio files under ``source``: a folder (searched recursively), a file, a URI, or a list of them.

    Local paths come back absolute; other filesystems as ``scheme://bucket/key``. Folders
    give the files with an extension of :data:`genre_infer.constants.AUDIO_EXTENSIONS`,
    sorted; a file named directly is taken whatever its extension.

    Raises
    ------
    GenreInferError
        A source that does not exist, or no audio file at all.
    """
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    found: list[str] = []
    seen: set[str] = set()
    for src in map(os.fspath, sources):
        fs, path = _filesystem(src)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.NotFound:
            raise GenreInferError(f"{src}: no such file or folder")
        if info.type == pafs.FileType.Directory:
            entries = fs.get_file_info(pafs.FileSelector(path, recursive=True))
            names = sorted(
                e.path for e in entries
                if e.type == pafs.FileType.File and os.path.splitext(e.base_name)[1].lower() in AUDIO_EXTENSIONS
                and not e.base_name.startswith(".")
            )
        else:
            names = [path]
        for name in names:
            uri = _uri(fs, name, src)
            if uri not in seen:
                seen.add(uri)
                found.append(uri)
    if not found:
        raise GenreInferError(f"no audio files in {', '.join(map(os.fspath, sources))}")
    return found


class Classify:
    """A Ray Data ``map_batches`` callable: one loaded model per actor, a batch of files in, rows out.

    Parameters
    ----------
    model : str, bytes or None
        A shipped model's name, an ``.onnx`` path that exists on every node, the bytes of an
        ``.onnx`` file (as :func:`classify_library` ships a local model to remote nodes), or
        ``None`` for the default model.
    device : {"cpu", "cuda", "auto"}
        Where the network runs: ``cuda`` for actors given GPUs (``num_gpus``).
    threads : int
        onnxruntime threads (give the actor as many CPUs).
    top_k : int
        Entries of the ``top`` column, as ``genre-infer --top-k``.
    timeline : bool
        Fill the ``timeline`` column (a row per second; the bulk of a row).
    ledger : str, optional
        Name of a :func:`start_ledger` actor. With one, a batch that was in flight when its
        worker died (Ray runs it again on the restarted actor) is classified one file at a
        time, and a file in flight when a worker died that way gets the error
        :data:`WORKER_DIED` instead of killing workers for ever. Without one, Ray's retries
        are all there is.

    Notes
    -----
    A batch is a mapping (``batch_format="numpy"`` or ``"pandas"``) with a ``path`` column
    and, optionally, a ``bytes`` column. With bytes, each file's contents are decoded from
    a temporary copy; without, the actor reads the path itself (a local or shared
    filesystem, or a URI that pyarrow opens: ``s3://``, ``gs://``...). Returns a
    ``pyarrow.Table`` of :func:`row_schema`, one row per input, in input order.

    Examples
    --------
    >>> import ray                                                       # doctest: +SKIP
    >>> ds = ray.data.read_binary_files("s3://bucket/music", include_paths=True)  # doctest: +SKIP
    >>> rows = ds.map_batches(Classify, batch_size=16, compute=ray.data.ActorPoolStrategy(size=4))  # doctest: +SKIP
    >>> rows.write_parquet("s3://bucket/genres")                         # doctest: +SKIP
    """

    def __init__(
        self, model: str | bytes | None = None, *, device: str = "cpu", threads: int = 1, top_k: int = 3,
        timeline: bool = True, ledger: str | None = None,
    ) -> None:
        from .api import Classifier

        self._tmp = tempfile.mkdtemp(prefix="genre-infer-ray-")
        if isinstance(model, bytes):
            path = os.path.join(self._tmp, "model.onnx")
            with open(path, "wb") as f:
                f.write(model)
            model = path
        self.classifier = Classifier(model, device=device, threads=threads)  # type: ignore[arg-type]
        self.top_k, self.timeline = top_k, timeline
        self.labels = self.classifier.labels
        self.schema = row_schema(self.labels)
        self._model = (self.classifier.name, self.classifier.version)
        self._filesystems: dict[str, pafs.FileSystem] = {}
        self._ledger = None
        if ledger is not None:
            import ray

            self._ledger = ray.get_actor(ledger)

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "_tmp", ""), ignore_errors=True)

    def _read_uri(self, uri: str) -> bytes:
        scheme, rest = uri.split("://", 1)
        key = f"{scheme}://{rest.split('/', 1)[0]}"
        fs = self._filesystems.get(key)
        if fs is None:
            fs = self._filesystems[key] = pafs.FileSystem.from_uri(uri)[0]
        with fs.open_input_stream(rest) as f:
            return f.read()

    def _classify_bytes(self, name: str, data: bytes) -> tuple[str, Any]:
        from .cli import _classify_one

        fd, tmp = tempfile.mkstemp(suffix=os.path.splitext(name)[1].lower(), dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            status, payload = _classify_one(tmp, self.classifier)
            if status == "error":  # ffmpeg names the file it read: the copy, which the user never saw
                payload = payload.replace(tmp, name)
            return status, payload
        finally:
            os.unlink(tmp)

    def classify_file(self, path: str, data: bytes | None = None) -> dict[str, Any]:
        """The JSONL record of one file (given by path, or by its name and contents)."""
        from .cli import _classify_one

        try:
            if data is not None:
                status, payload = self._classify_bytes(path, data)
            elif _is_uri(path):
                try:
                    data = self._read_uri(path)
                except OSError as exc:
                    status, payload = "error", f"cannot read ({exc})"
                else:
                    status, payload = self._classify_bytes(path, data)
            else:
                status, payload = _classify_one(path, self.classifier)
        except Exception as exc:  # one odd file must not fail a job over a whole library
            status, payload = "error", f"internal error ({type(exc).__name__}: {exc})"
        name = display_path(path)
        if status == "ok":
            rec = payload.to_dict(top_k=self.top_k, timeline=self.timeline)
            rec["file"] = name
            return rec
        return {"schema_version": OUTPUT_SCHEMA_VERSION, "file": name, "error": payload}

    def _begin(self, key: str, paths: list[str]) -> int:
        import ray

        try:
            return int(ray.get(self._ledger.begin.remote(key, paths, os.getpid())))  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - the ledger's node was lost: classify on, as without one
            return 0

    def __call__(self, batch: Mapping[str, Any]) -> pa.Table:
        paths = [str(p) for p in batch["path"]]
        blobs = list(batch["bytes"]) if "bytes" in batch else [None] * len(paths)
        inputs = [(p, None if b is None else bytes(b)) for p, b in zip(paths, blobs)]
        if self._ledger is None:
            recs = [self.classify_file(p, b) for p, b in inputs]
        else:
            key = "batch:" + hashlib.sha1("\0".join(paths).encode("utf-8", "surrogateescape")).hexdigest()
            if self._begin(key, paths) == 0:
                recs = [self.classify_file(p, b) for p, b in inputs]
            else:  # a worker died on this batch: one file at a time, to find the file that kills
                recs = []
                for p, b in inputs:
                    if self._begin("file:" + p, [p]) == 0:
                        recs.append(self.classify_file(p, b))
                    else:  # in flight, alone, when a worker died: as genre-infer --jobs does
                        recs.append({"schema_version": OUTPUT_SCHEMA_VERSION, "file": display_path(p),
                                     "error": WORKER_DIED})
                    self._ledger.end.remote("file:" + p)
            self._ledger.end.remote(key)
        rows = [_row(rec, self.labels, self._model) for rec in recs]
        return pa.Table.from_pylist(rows, schema=self.schema)


class Ledger:
    """What the actors of one job have begun and not finished: ``{key: (pid, paths, deaths)}``.

    An entry still open when the same key begins again was left by a worker that died.
    """

    def __init__(self) -> None:
        self._open: dict[str, tuple[int, list[str], int]] = {}

    def begin(self, key: str, paths: list[str], pid: int) -> int:
        """Open ``key``; returns how many times it was begun before and never finished."""
        before = self._open.get(key)
        deaths = 0 if before is None else before[2] + 1
        self._open[key] = (pid, paths, deaths)
        return deaths

    def end(self, key: str) -> None:
        self._open.pop(key, None)

    def in_flight(self) -> dict[str, tuple[int, list[str], int]]:
        """``{key: (pid of the actor, paths, deaths before)}`` of what is being classified now."""
        return dict(self._open)


def start_ledger(ray: Any) -> tuple[Any, str]:
    """A :class:`Ledger` actor for one job (no CPU; it ends with the driver): ``(handle, name)``."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    name = f"genre-infer-ledger-{uuid.uuid4().hex}"
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)  # the driver's node
    actor = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(Ledger)
    return actor.options(name=name, scheduling_strategy=here).remote(), name


def read_done(dest: str) -> dict[str, tuple[str, str]]:
    """Files already in the output folder ``dest``: ``{path: (model_name, model_version)}``.

    A Parquet file that cannot be read (cut short when a run was killed while writing it)
    is deleted: its files are not in the result and are classified again.
    """
    fs, root = _filesystem(dest)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        return {}
    if info.type != pafs.FileType.Directory:
        raise GenreInferError(f"{dest}: not a folder (the output is a folder of Parquet files)")
    done: dict[str, tuple[str, str]] = {}
    for entry in fs.get_file_info(pafs.FileSelector(root, recursive=True)):
        if entry.type != pafs.FileType.File or not entry.base_name.endswith(".parquet") \
                or entry.base_name.startswith((".", "_")):
            continue
        try:
            table = pq.read_table(entry.path, columns=["path", "model_name", "model_version"], filesystem=fs)
        except (pa.ArrowInvalid, OSError):
            fs.delete_file(entry.path)  # an unfinished file: its rows are done again
            continue
        for p, n, v in zip(*(table.column(c).to_pylist() for c in ("path", "model_name", "model_version"))):
            done[p] = (n, v)
    return done


class LibrarySummary(NamedTuple):
    """What :func:`classify_library` did."""

    files: int  #: audio files in the source
    skipped: int  #: already in the output (resume), not classified again
    classified: int  #: files classified by this run (a row each, failed or not)
    failed: int  #: files of the source whose row in the output has an ``error`` (this run or before)
    failures: list[tuple[str, str]]  #: ``(path, error)`` of those files


def _default_concurrency(ray: Any, threads: int, gpus: float) -> int:
    res = ray.cluster_resources()
    if gpus > 0:
        return max(1, int(res.get("GPU", 0) // gpus))
    return max(1, int(res.get("CPU", 1) // threads))


def classify_library(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], dest: str | os.PathLike[str], *,
    model: str | os.PathLike[str] | None = None, concurrency: int | tuple[int, int] | None = None,
    num_gpus_per_actor: float = 0, threads: int = 1, batch_size: int = 16, top_k: int = 3,
    timeline: bool = True, resume: bool = True, address: str | None = None, progress: bool = True,
) -> LibrarySummary:
    """Classify every audio file under ``source`` on Ray and write the rows to Parquet in ``dest``.

    Parameters
    ----------
    source : str, os.PathLike or list of them
        A folder (searched recursively), a file, or a URI pyarrow reads (``s3://bucket/music``,
        ``gs://...``); the path must mean the same on every node (a shared filesystem or
        object storage).
    dest : str or os.PathLike
        Output folder or URI: Parquet files of :func:`row_schema`, one row per file.
    model : str, os.PathLike or None
        A shipped model's name or an ``.onnx`` file (read here and sent to every actor).
    concurrency : int or (int, int), optional
        Actors, or ``(min, max)`` for an autoscaling pool; default: one per ``threads``
        CPUs of the cluster (per ``num_gpus_per_actor`` GPUs with GPUs).
    num_gpus_per_actor : float
        GPUs per actor (fractions share one); above 0 the network runs on CUDA
        (onnxruntime-gpu on the workers).
    threads : int
        onnxruntime threads and CPUs per actor.
    batch_size : int
        Files per ``map_batches`` call.
    top_k : int
        Entries of the ``top`` column (``genre-infer --top-k``).
    timeline : bool
        Fill the ``timeline`` column (a row per second: about 260 bytes of JSON per second of audio).
    resume : bool
        Skip files already in ``dest`` (a rerun after a crash does only the rest). Off,
        ``dest`` must hold no results yet.
    address : str, optional
        Ray cluster to connect to when Ray is not started yet (``"auto"``, ``"ray://..."``);
        ``None`` lets ``ray.init`` decide (``RAY_ADDRESS``, else a local Ray).
    progress : bool
        Ray Data's progress bars (off: ``DataContext.enable_progress_bars`` is turned off).

    Returns
    -------
    LibrarySummary

    Raises
    ------
    GenreInferError
        Ray missing, no audio in ``source``, results of another model in ``dest``, or
        ``dest`` not empty with ``resume`` off.
    ModelError
        The model is not a genre-infer model.
    """
    from .api import Classifier

    ray = _import_ray()
    if batch_size < 1 or threads < 1 or num_gpus_per_actor < 0:
        raise GenreInferError("batch_size and threads must be at least 1, num_gpus_per_actor at least 0")
    clf = Classifier(model, device="cpu", threads=1)  # type: ignore[arg-type]  # checks the model here, once
    ident = (clf.name, clf.version)
    payload: str | bytes | None = None
    if model is not None:
        path = os.fspath(model)
        payload = clf.model.path.read_bytes() if os.path.isfile(path) else path
    files = list_audio(source)
    dest = os.fspath(dest)
    done = read_done(dest)
    if done and not resume:
        raise GenreInferError(f"{dest} already holds results ({len(done)} files): resume, or choose an empty folder")
    other = {m for p, m in done.items() if m != ident}
    if other:
        n, v = sorted(other)[0]
        raise GenreInferError(f"{dest} holds results of model {n} {v}, not {ident[0]} {ident[1]}: "
                              "choose another output folder")
    names = [display_path(f) for f in files]
    todo = [f for f, name in zip(files, names) if name not in done]
    if todo:
        _run(ray, todo, dest, address=address, payload=payload, concurrency=concurrency,
             gpus=float(num_gpus_per_actor), threads=threads, batch_size=batch_size, top_k=top_k,
             timeline=timeline, progress=progress)
    rows = _errors_of(dest, set(names))
    failures = sorted((p, e) for p, e in rows.items() if e is not None)
    return LibrarySummary(len(files), len(files) - len(todo), len(todo), len(failures), failures)


def _run(ray: Any, todo: list[str], dest: str, *, address: str | None, payload: str | bytes | None,
         concurrency: int | tuple[int, int] | None, gpus: float, threads: int, batch_size: int,
         top_k: int, timeline: bool, progress: bool) -> None:
    """Classify ``todo`` on Ray into Parquet files in ``dest``."""
    if not ray.is_initialized():
        ray.init(address=address)
    if not progress:
        ray.data.DataContext.get_current().enable_progress_bars = False
    size = concurrency if concurrency is not None else _default_concurrency(ray, threads, gpus)
    pool = (ray.data.ActorPoolStrategy(min_size=size[0], max_size=size[1]) if isinstance(size, tuple)
            else ray.data.ActorPoolStrategy(size=size))
    ledger, ledger_name = start_ledger(ray)
    # blocks of BATCHES_PER_BLOCK batches, but at least two per actor while there are batches enough
    actors = size[1] if isinstance(size, tuple) else size
    blocks = min(math.ceil(len(todo) / batch_size),
                 max(math.ceil(len(todo) / (batch_size * BATCHES_PER_BLOCK)), 2 * actors))
    ds = ray.data.from_items([{"path": f} for f in todo], override_num_blocks=blocks)
    rows = ds.map_batches(
        Classify, fn_constructor_kwargs={"model": payload, "device": "cuda" if gpus > 0 else "cpu",
                                         "threads": threads, "top_k": top_k, "timeline": timeline,
                                         "ledger": ledger_name},
        batch_size=batch_size, batch_format="numpy", compute=pool, num_cpus=threads, num_gpus=gpus,
        runtime_env={"env_vars": ACTOR_ENV},
    )
    fs, root = _filesystem(dest)
    fs.create_dir(root, recursive=True)
    # writes are light: they must not wait for the CPUs the actors hold
    try:
        rows.write_parquet(root, filesystem=fs, ray_remote_args={"num_cpus": 0}, concurrency=WRITERS)
    finally:
        ray.kill(ledger)


def _errors_of(dest: str, paths: set[str]) -> dict[str, str | None]:
    """``{path: error}`` of the rows in ``dest`` for ``paths`` (``None``: classified)."""
    fs, root = _filesystem(dest)
    table = pq.read_table(root, columns=["path", "error"], filesystem=fs)
    return {p: e for p, e in zip(table.column("path").to_pylist(), table.column("error").to_pylist())
            if p in paths}
