"""The ``genre-infer`` command: arguments → :mod:`genre_infer.api` → :mod:`genre_infer.output`.

Exit codes: 0 every input classified; 1 some inputs failed (the others are
still classified and written) or the output could not be written; 2 usage or
model error; 130 interrupted (Ctrl-C; 143 SIGTERM, 129 SIGHUP).

Options are checked before any work is done. ``-`` reads audio from standard input, and
pipes (``/dev/stdin``, ``<(...)``) work: such inputs are copied to a temporary file first,
since decoding and the pictures read them more than once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator

import click

from ._version import __version__
from .constants import AUDIO_EXTENSIONS, MAX_THREADS

STDIN = "-"
#: Output formats implied by the extension of ``--output`` when ``--format`` is not given.
FORMAT_OF_EXTENSION = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "text"}
#: --plot suffixes shown in messages (matplotlib writes a few more, which are accepted too).
PLOT_SUFFIXES = (".png", ".svg", ".pdf")

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
MAX_AUTO_JOBS = 8  # --jobs auto: worker processes at most (each holds its own model, ~140 MB)
#: --jobs auto on a GPU: workers at most. They share the GPU, and each decodes and computes
#: features on its own core: on an H100 with 16 cores, 200 songs took 15.6-16.6 s with one
#: worker, 5.9-6.2 s with 4 and 5.1-5.8 s with 8 (two runs), and each holds a CUDA context
#: (~0.8 GB of RAM).
MAX_CUDA_AUTO_JOBS = 4


def _error(message: str) -> None:
    from .output import printable  # names in the message stay on this one line

    click.echo(f"genre-infer: error: {printable(message)}", err=True)


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stops the batch as Ctrl-C does (exit code 128 + the signal's number)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop_on_signals() -> dict[int, Any]:
    """SIGTERM and SIGHUP end the run as Ctrl-C does: workers stopped, output finished by its rule.

    Returns the handlers replaced (to put back when the command returns, for callers that
    run it in their own process); none outside the main thread, where Python cannot set them.
    """
    import signal
    import threading

    def stop(signum: int, _frame: Any) -> None:
        raise _Stopped(signum)

    replaced: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return replaced
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            replaced[sig] = signal.signal(sig, stop)
    return replaced


def _interruptible(command: Any) -> Any:
    """Ctrl-C (or SIGTERM/SIGHUP) before the batch starts or after it ends: one line and
    128 + the signal's number, rather than click's "Aborted!" and exit 1."""
    import functools

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        import signal

        replaced = _stop_on_signals()
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as exc:
            _error("interrupted")
            sys.exit(128 + exc.signum if isinstance(exc, _Stopped) else EXIT_INTERRUPTED)
        finally:
            for sig, handler in replaced.items():
                signal.signal(sig, handler)

    return run


def _silence_stdout() -> None:
    """Standard output failed (disk full): nothing more goes there, not even Python's flush at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit


def _reserve_std_descriptors() -> None:
    """Give a closed descriptor 0, 1 or 2 (``genre-infer x.wav >&-``) /dev/null, so that no file
    this run opens (an output, a temporary copy) takes its number and becomes "standard
    output" for a library or a child process by accident."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDWR)
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
            except OSError:
                pass


def _quiet_native_stderr() -> None:
    """Send what C libraries print on file descriptor 2 (mpg123's "Note: ..." lines) to
    /dev/null, keeping Python's ``sys.stderr`` on the real stderr: one line per error."""
    try:
        if sys.stderr.fileno() != 2:
            return
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(saved, "w", buffering=1, encoding=sys.stderr.encoding,
                               errors="backslashreplace")
    except (OSError, ValueError, AttributeError):  # no real fd 2 (e.g. under a test runner)
        pass


def _stderr_path(path: str | None) -> str | None:
    """``-o /dev/stderr`` is the stderr the user gave us, not the /dev/null that
    :func:`_quiet_native_stderr` put on descriptor 2 for C libraries."""
    if path in ("/dev/stderr", "/dev/fd/2", "/proc/self/fd/2") and os.path.exists("/dev/fd"):
        try:
            if sys.stderr.fileno() != 2:
                return f"/dev/fd/{sys.stderr.fileno()}"
        except (OSError, ValueError, AttributeError):
            pass
    return path


def _input_it_is(target: str | None, files: list[str]) -> str | None:
    """The input that the output file ``target`` already is (the same file), if any:
    writing it would destroy that input."""
    import stat

    if not target:
        return None
    try:
        st = os.stat(target)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    for f in files:
        try:
            other = os.stat(f)
        except (OSError, ValueError):
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return f
    return None


def folder_audio(folder: str) -> list[str]:
    """The audio files under ``folder``, sorted, and every folder under it that could not be
    read (each reported as that path's error line, never skipped in silence).

    Symbolic links to folders are followed (an album linked in from another disk is part of
    the library); a folder reached again (a link loop) is searched once.
    """
    found: list[str] = []
    seen: set[str] = set()

    def unreadable(exc: OSError) -> None:
        if exc.filename is not None:
            found.append(os.fspath(exc.filename))

    for root, dirs, files in os.walk(folder, onerror=unreadable, followlinks=True):
        seen.add(os.path.realpath(root))
        keep = []
        for d in dirs:
            real = os.path.realpath(os.path.join(root, d))
            if real not in seen:
                seen.add(real)
                keep.append(d)
        dirs[:] = keep
        found.extend(os.path.join(root, f) for f in files if os.path.splitext(f)[1].lower() in AUDIO_EXTENSIONS)
    return sorted(found)


def _same_outputs(targets: dict[str, str | None]) -> str | None:
    """Two output options of one run that name the same file (one would overwrite the other)."""
    from .output import display_path

    named = [(opt, t) for opt, t in targets.items() if t and not (opt != "-o" and names_folder(t))]
    for i, (a, ta) in enumerate(named):
        for b, tb in named[i + 1 :]:
            try:
                same = os.path.realpath(ta) == os.path.realpath(tb) or os.path.samefile(ta, tb)
            except (OSError, ValueError):
                same = False
            if same:
                return f"{a} {display_path(ta)} and {b} {display_path(tb)} name the same file (one would overwrite the other)"
    return None


def expand_paths(paths: tuple[str, ...]) -> Iterator[str]:
    """Files to classify: files as given, folders searched recursively for audio, no repeats."""
    seen: set[str] = set()
    for p in paths:
        candidates: list[str]
        if p == STDIN:
            candidates = [p]
        elif os.path.isdir(p):
            candidates = folder_audio(p)
            if not candidates:
                candidates = [p]  # reported as "no audio files" by the caller
        else:
            candidates = [p]
        for c in candidates:
            key = os.path.realpath(c) if os.path.exists(c) else c
            if key not in seen:
                seen.add(key)
                yield c


_worker: Any = None


#: Seconds between a worker's checks that the process that started it is still alive.
PARENT_POLL_S = 0.5


def _die_with_parent(parent: int) -> None:
    """End this worker when ``parent`` dies, however it dies (SIGKILL included).

    On Linux the kernel sends SIGKILL at once (``PR_SET_PDEATHSIG``); everywhere, a
    daemon thread checks every :data:`PARENT_POLL_S` seconds that the parent is still
    this process's parent (an orphan is adopted by init or a subreaper) and exits if not.
    """
    import signal
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_S)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="genre-infer-parent-watch", daemon=True).start()


def _init_worker(model: str | None, device: str, threads: int | None, parent: int | None = None) -> None:
    global _worker
    import signal

    from .api import Classifier

    if parent is not None:
        _die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the parent alone stops the batch and reports;
    # SIGTERM to a worker (from the parent's cleanup, or anyone) ends it at once
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    _worker = Classifier(model, device=device, threads=threads)  # type: ignore[arg-type]


def _classify_one(path: str, clf: Any = None) -> tuple[str, Any]:
    """Classify one file: ``("ok", Result)`` or ``("error", message)``; never raises for bad input."""
    from .errors import GenreInferError

    try:
        if os.path.isdir(path):
            try:
                with os.scandir(path):
                    pass
            except OSError as exc:
                from .audio import os_problem

                raise GenreInferError(f"cannot read this folder ({os_problem(exc)})") from None
            raise GenreInferError("no audio files found in this folder")
        return "ok", (clf or _worker).classify(path)
    except GenreInferError as exc:
        return "error", str(exc)
    except MemoryError:
        return "error", "out of memory"
    except Exception as exc:  # noqa: BLE001 - a bug met by one file must not end the batch
        if os.environ.get("GENRE_INFER_DEBUG"):
            raise
        return "error", f"internal error ({type(exc).__name__}: {str(exc)[:200]}); please report it"


def _results(files: list[str], clf: Any, jobs: int, model: str | None, device: str,
             threads: int | None) -> Iterator[tuple[str, Any]]:
    """``(status, payload)`` per file, in input order, each as soon as it (and those before it) is done."""
    if jobs <= 1 or len(files) <= 1:
        for f in files:
            yield _classify_one(f, clf)
        return
    yield from _pool_results(files, jobs, (model, device, threads or 1, os.getpid()))


#: What a file gets when the worker process classifying it died twice (killed, e.g. out of memory).
WORKER_DIED = "the worker process died while classifying it (out of memory?)"


def _pool_results(files: list[str], jobs: int, initargs: tuple[Any, ...],
                  work: Any = _classify_one) -> Iterator[tuple[str, Any]]:
    """:func:`_results` over worker processes.

    A worker that dies breaks the whole pool and every file in flight with it, so the
    first unfinished file is tried again in a fresh pool, alone; if it kills that worker
    too it gets :data:`WORKER_DIED` and the batch goes on. Ctrl-C (or the consumer
    stopping) terminates the workers at once: their files' results would be dropped anyway.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("spawn")
    start, suspect, fruitless = 0, -1, 0
    while start < len(files):
        if fruitless == 3:  # three pools in a row died before finishing a file: workers cannot run at all
            for _ in files[start:]:
                yield "error", "worker processes keep dying (try --jobs 1)"
            return
        pool = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=initargs)
        produced, base = False, start
        try:
            pending = [pool.submit(work, f) for f in files[base : base + 1 if base == suspect else None]]
            for k in range(base, len(files)):
                if k == base + len(pending):  # the suspect passed alone: the others may come now
                    pending += [pool.submit(work, f) for f in files[k:]]
                try:
                    item = pending[k - base].result()
                except BrokenProcessPool:
                    if k == suspect:
                        yield "error", WORKER_DIED
                        start = k + 1
                    else:
                        start = suspect = k
                    break
                yield item
                start, produced = k + 1, True
        except BaseException:  # Ctrl-C, or the consumer stopped
            for proc in list((getattr(pool, "_processes", None) or {}).values()):  # no public way to stop them
                proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        # all done (or broken): the pool's threads end here, before the interpreter's exit handlers
        pool.shutdown(wait=True, cancel_futures=True)
        fruitless = 0 if produced else fruitless + 1


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: --jobs auto starts a worker for every this many files at most: each pays about 0.5 s to
#: start and load the model, about what 5-8 short files take to classify.
FILES_PER_AUTO_JOB = 8


def job_count(jobs: str, n_files: int, providers: list[str], threads: int | None = None,
              force: bool = False) -> int:
    """Worker processes for ``--jobs`` (a number, or ``auto``) and ``n_files`` files.

    ``auto``: one process per usable core divided by ``threads`` (at most
    :data:`MAX_AUTO_JOBS`, and one per :data:`FILES_PER_AUTO_JOB` files, since each
    worker pays for its own start), each running the network on one thread by default: on a
    2-core machine 200 songs take 11.8 s against 17.7 s for one process with two threads.
    On a GPU, at most :data:`MAX_CUDA_AUTO_JOBS` processes share it. A number is capped at
    the usable cores (each worker holds its own model) unless ``force``.
    """
    if jobs != "auto":
        return int(jobs) if force else min(int(jobs), max(1, _usable_cores()))
    most = MAX_CUDA_AUTO_JOBS if "CUDAExecutionProvider" in providers else MAX_AUTO_JOBS
    return max(1, min(_usable_cores() // (threads or 1), most, n_files // FILES_PER_AUTO_JOB))


def names_folder(value: str) -> bool:
    """Whether a --plot/--html value names a folder: an existing one, one ending in a slash, or
    a new name without a suffix."""
    p = Path(value)
    # os.path's tests: a name the system refuses (too long, ...) is simply not there, no OSError
    return os.path.isdir(value) or value.endswith(("/", os.sep)) or (not p.suffix and not os.path.lexists(value))


def visual_problem(option: str, value: str, n_files: int, suffixes: frozenset[str] | None) -> str | None:
    """Why ``option value`` cannot be written for ``n_files`` inputs (``None``: it can).

    Several inputs need a folder (one picture each); a file's suffix must be one of
    ``suffixes`` (``None``: any)."""
    if names_folder(value):
        return None
    p = Path(value)
    if n_files > 1:
        return (f"{option} {value}: {n_files} inputs make one file each; give a folder "
                f"(e.g. {option} {p.with_suffix('').name or 'out'}/)")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        what = f"unknown image type {p.suffix!r}" if p.suffix else "no image type in the name"
        return f"{option} {value}: {what} (use {', '.join(PLOT_SUFFIXES)}, or a folder)"
    return None


def plot_suffixes() -> frozenset[str]:
    """File suffixes matplotlib can save a figure as (``.png``, ``.svg``, ``.pdf``, ...)."""
    import matplotlib  # noqa: F401  (ImportError when it is not installed)
    from matplotlib.backend_bases import FigureCanvasBase

    return frozenset(f".{ext}" for ext in FigureCanvasBase.get_supported_filetypes())


class _Visuals:
    """Writes the --plot and --html outputs: one file, or a folder with one per song."""

    def __init__(self, plot: str | None, html: str | None, audio_mode: str, inputs: list[str] | None = None) -> None:
        self.plot, self.html, self.audio_mode = plot, html, audio_mode
        self.inputs = list(inputs or [])  # never written over, whatever links a folder holds
        self.plot_folder = plot is not None and names_folder(plot)
        self.html_folder = html is not None and names_folder(html)
        self.index: list[tuple[str, str, Any]] = []
        # a folder of reports has its own index.html: a song called "index" gets "index-2.html"
        self._names: set[str] = {"index.html"} if self.html_folder else set()

    def _target(self, base: str, folder_mode: bool, name: str, ext: str) -> Path:
        if not folder_mode:
            return Path(base)
        folder = Path(base)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from .errors import OutputError
            from .outfile import os_reason
            from .output import display_path

            raise OutputError(f"cannot make folder {display_path(folder)}: {os_reason(exc)}") from None
        stem, n = ("stdin" if name == STDIN else Path(name).stem), 1
        out = f"{stem}{ext}"
        while out in self._names:  # same stem in two folders
            n += 1
            out = f"{stem}-{n}{ext}"
        self._names.add(out)
        return folder / out

    def check(self) -> None:
        """Before any work: a single output file's folder must exist (folders are made as needed).

        Raises
        ------
        OutputError
            It does not, or is not a folder.
        """
        from .errors import OutputError
        from .output import display_path

        for base, folder_mode in ((self.plot, self.plot_folder), (self.html, self.html_folder)):
            if not base or folder_mode:
                continue
            folder = os.path.dirname(os.path.abspath(base))
            if not os.path.isdir(folder):
                what = "is not a folder" if os.path.exists(folder) else "does not exist"
                raise OutputError(f"cannot write {display_path(base)}: folder {display_path(folder)} {what}")

    def add(self, name: str, src: str, result: Any) -> None:
        """Pictures of ``result`` for the input ``name``, whose audio is read from ``src``."""
        if not (self.plot or self.html):
            return
        from . import report
        from .outfile import write_bytes, write_file
        from .output import display_path

        mel = report.display_melgram(src)
        if self.plot:
            ext = ".png" if self.plot_folder else Path(self.plot).suffix
            target = self._writable(self._target(self.plot, self.plot_folder, name, ext))
            write_bytes(target, report.plot_bytes(result, ext, melgram=mel))
        if self.html:
            target = self._target(self.html, self.html_folder, name, ".html")
            page = report.html_report(result, melgram=mel, **report.audio_for_html(src, self.audio_mode, target))
            write_file(self._writable(target), page)
            self.index.append((target.name, display_path(Path(name).name), result))

    def close(self) -> None:
        if self.html and self.index and self.html_folder:
            from . import report
            from .outfile import write_file

            write_file(self._writable(Path(self.html) / "index.html"), report.html_index(self.index))

    def _writable(self, target: Path) -> Path:
        """``target``, unless it is one of the inputs (a folder's ``song.html`` linked to
        ``song.wav``): writing it would destroy that input.

        Raises
        ------
        OutputError
            It is.
        """
        from .errors import OutputError
        from .output import display_path

        same = _input_it_is(str(target), self.inputs)
        if same is not None:
            raise OutputError(f"cannot write {display_path(target)}: it is one of the inputs "
                              f"({display_path(same)}) and would be overwritten")
        return target


def _version_text() -> str:
    """The package's version, the default model's name and version (from its metadata), and
    the onnxruntime and Python it runs on."""
    import onnxruntime

    from .errors import GenreInferError
    from .model import GenreModel

    try:
        info = GenreModel(None, device="cpu").info
        model = f"{info.name} {info.version}"
    except GenreInferError as exc:
        model = f"cannot be loaded ({exc})"
    return (f"genre-infer {__version__}\ndefault model: {model}\n"
            f"onnxruntime {onnxruntime.__version__}, python {sys.version.split()[0]}")


def output_format(fmt: str | None, output: str | None) -> str:
    """The output format: ``--format``, else the one ``--output``'s extension names, else text.

    Raises
    ------
    click.UsageError
        ``--format`` and the extension name two different formats.
    """
    implied = FORMAT_OF_EXTENSION.get(Path(output).suffix.lower()) if output else None
    if fmt is not None and implied is not None and fmt != implied:
        raise click.UsageError(f"--format {fmt} but --output {output} names a {implied} file "
                               "(drop one of them, or make them agree)")
    return fmt or implied or "text"


def _stream_like(path: str) -> bool:
    """Standard input, or a path that is a pipe, device or socket (read only once)."""
    from .audio import is_regular_file

    return path == STDIN or (os.path.exists(path) and not os.path.isdir(path) and not is_regular_file(path))


def _special_kind(path: str) -> str:
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return "not a regular file"
    return ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")


def scanned_specials(paths: tuple[str, ...], files: list[str]) -> dict[str, str]:
    """``{file: error}`` for the pipes, devices and sockets a folder scan found (a FIFO would
    block the batch, a link to /dev/zero fill the disk): never read. Named on the command
    line, such a path is read as the stream the user meant."""
    given = set(paths)
    return {f: f"{_special_kind(f)}, found in a folder: not read (name it on its own to read it)"
            for f in files if f not in given and _stream_like(f)}


def _skipping(refused: dict[str, str], files: list[str], results_of: Any) -> Iterator[tuple[str, Any]]:
    """``results_of(files)`` with each file in ``refused`` given its error instead, in order."""
    results = results_of([f for f in files if f not in refused])
    try:
        for f in files:
            yield ("error", refused[f]) if f in refused else next(results)
        for _ in results:  # runs it to its end (its worker pool is shut down there)
            pass
    finally:
        results.close()


def _spool_streams(files: list[str], folder: str) -> dict[str, str]:
    """Copy standard input and pipes among ``files`` into ``folder``: ``{input: copy}``."""
    from .audio import spool

    copies: dict[str, str] = {}
    for i, f in enumerate(files):
        if not _stream_like(f):
            continue
        try:
            if f == STDIN:
                copies[f] = str(spool(sys.stdin.buffer, folder, f"{i}-stdin"))
            else:
                with open(f, "rb") as src:
                    copies[f] = str(spool(src, folder, f"{i}-stream"))
        except OSError:
            pass  # left as it is: classifying it reports the problem as that file's error line
    return copies


def _input_problem(files: list[str], plot: str | None, html: str | None, html_audio: str) -> str | None:
    """What is wrong with the inputs and picture options together, found before any work."""
    from .output import display_path

    for option, value in (("--plot", plot), ("--html", html)):
        if value is not None and not value:
            return f"{option} needs a file or folder name, got {value!r}"
    if STDIN in files and sys.stdin is None:
        return "- reads audio from standard input, which is closed"
    if STDIN in files and sys.stdin.isatty():
        return "- reads audio from standard input, which is a terminal (pipe a file into it: genre-infer - < song.mp3)"
    if plot:
        try:
            suffixes = plot_suffixes()
        except ImportError:
            return "--plot needs matplotlib: pip install 'genre-infer[plot]'"
        problem = visual_problem("--plot", plot, len(files), suffixes)
        if problem:
            return problem
    if html:
        problem = visual_problem("--html", html, len(files), None)
        if problem:
            return problem
        streams = [f for f in files if _stream_like(f)]
        if html_audio == "link" and streams:
            return (f"--html-audio link needs audio files, and {display_path(streams[0])} is a stream "
                    "(use --html-audio embed)")
    return None


def _print_model_info(clf: object) -> None:
    import json

    info = clf.model.info  # type: ignore[attr-defined]
    click.echo(json.dumps({"path": str(clf.model.path), "providers": clf.model.providers,  # type: ignore[attr-defined]
                           **info.to_metadata()}, indent=2))


def _check_jobs(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value == "auto":
        return value
    try:
        if int(value) >= 1:
            return str(int(value))
    except ValueError:
        pass
    raise click.BadParameter(f"{value!r} is not a number of jobs (1 or more) or 'auto'")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("paths", nargs=-1, metavar="PATH...")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json", "jsonl", "csv"]), default=None,
              help="Output format (json/jsonl/csv: see README schema). Default: from --output's "
                   "extension (.json, .jsonl, .csv, .txt), else text.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write results to FILE instead of standard output (- is standard output).")
@click.option("-k", "--top-k", type=click.IntRange(1, None), default=3, show_default=True,
              help="Genres listed in the verdict.")
@click.option("-t", "--timeline", is_flag=True, help="Text output: add a row per second.")
@click.option("-m", "--model", metavar="NAME|PATH",
              help="A shipped model's name or an .onnx file exported by `python -m train export`.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="Where the network runs (auto: CUDA when onnxruntime-gpu sees a GPU).")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), help="CPU threads for the network (per job).")
@click.option("-j", "--jobs", metavar="N|auto", default="auto", show_default=True, callback=_check_jobs,
              help="Files classified in parallel (worker processes); auto: one per core for a batch.")
@click.option("--force-jobs", is_flag=True, help="Run --jobs N workers even when N exceeds the usable cores.")
@click.option("--plot", "plot_path", metavar="FILE|DIR",
              help="Save a timeline plot (.png/.svg/.pdf; a folder of PNGs for several files). Needs matplotlib.")
@click.option("--html", "html_path", metavar="FILE|DIR",
              help="Save a listen-along HTML report (a folder with index.html for several files).")
@click.option("--html-audio", type=click.Choice(["embed", "link"]), default="embed", show_default=True,
              help="HTML report: embed the audio in the page, or link to the file.")
@click.option("--list-genres", is_flag=True, help="Print the model's genres and exit.")
@click.option("--model-info", is_flag=True, help="Print the model's metadata (JSON) and exit.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary on stderr.")
@click.option("--version", is_flag=True, help="Print the version and exit.")
@click.pass_context
@_interruptible
def main(
    ctx: click.Context, paths: tuple[str, ...], fmt: str | None, output: str | None, top_k: int,
    timeline: bool, model: str | None, device: str, threads: int | None, jobs: str, force_jobs: bool,
    plot_path: str | None, html_path: str | None, html_audio: str, list_genres: bool,
    model_info: bool, quiet: bool, version: bool,
) -> None:
    """Recognise the genre of songs, second by second.

    PATH is an audio file (wav, flac, ogg, opus, mp3; m4a/aac/webm with ffmpeg),
    a folder, searched recursively for audio files, or - for standard input.

    \b
    Examples:
      genre-infer song.mp3
      genre-infer song.mp3 --timeline
      genre-infer ~/Music --output genres.jsonl
      ffmpeg -i song.m4a -f wav - | genre-infer -
    """
    _reserve_std_descriptors()
    if output == STDIN:  # as for the inputs, "-" is the standard stream, not a file named "-"
        output = None
    if sys.stdout is None and (output is None or version or list_genres or model_info):
        _error("standard output is closed: nothing could be written (give -o FILE, or leave it open)")
        ctx.exit(EXIT_USAGE)
    if version:
        click.echo(_version_text())
        ctx.exit(EXIT_OK)
    if not paths and not (list_genres or model_info):
        click.echo(ctx.get_usage(), err=True)
        _error("no PATH given (try `genre-infer --help`)")
        ctx.exit(EXIT_USAGE)
    try:
        fmt = output_format(fmt, output)
    except click.UsageError as exc:
        _error(exc.message)
        ctx.exit(EXIT_USAGE)
    files = list(expand_paths(paths))
    refused = scanned_specials(paths, files)  # each that file's error line, never read
    from .output import display_path

    for option, target in (("-o", output), ("--plot", plot_path), ("--html", html_path)):
        same = _input_it_is(target, files)
        if same is not None:  # before any other check of the option: this is what is wrong with it
            _error(f"{option} {display_path(target or '')} is one of the inputs ({display_path(same)}): "
                   "it would be overwritten")
            ctx.exit(EXIT_USAGE)
    clash = _same_outputs({"-o": output, "--plot": plot_path, "--html": html_path})
    if clash:
        _error(clash)
        ctx.exit(EXIT_USAGE)
    problem = None if list_genres or model_info else _input_problem([f for f in files if f not in refused], plot_path, html_path, html_audio)
    if problem:
        _error(problem)
        ctx.exit(EXIT_USAGE)

    # numpy's BLAS only multiplies small matrices here; its idle-spinning thread pool fought
    # onnxruntime's threads for the cores (950 short files: 15 s with it, 1.3 s without).
    # Set before numpy loads; spawned --jobs workers inherit it.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import dataclasses

    from .api import Classifier
    from .errors import GenreInferError, OutputError
    from .output import Writer, display_path
    from .progress import ProgressBar, bar_wanted

    if not os.environ.get("GENRE_INFER_DEBUG"):
        # before the model loads: onnxruntime's C++ logger writes there when a CUDA provider
        # cannot start (missing libraries), and our own line says what matters
        _quiet_native_stderr()
    try:
        clf = Classifier(model, device=device, threads=threads)  # type: ignore[arg-type]
    except GenreInferError as exc:
        _error(str(exc))
        ctx.exit(EXIT_USAGE)
    if list_genres or model_info:
        if list_genres:
            click.echo("\n".join(clf.labels))
        if model_info:
            _print_model_info(clf)
        ctx.exit(EXIT_OK)

    import tempfile

    if plot_path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            _error("--plot needs matplotlib: pip install 'genre-infer[plot]'")
            ctx.exit(EXIT_USAGE)
    # standard input and pipes, copied once: the decoder and the pictures read them again
    reads = _spool_streams([f for f in files if f not in refused],
                           ctx.with_resource(tempfile.TemporaryDirectory(prefix="genre-infer-")))
    visuals = _Visuals(plot_path, html_path, html_audio, inputs=files)
    output = _stderr_path(output)
    try:
        visuals.check()
        writer = Writer(fmt, output, model={"name": clf.name, "version": clf.version},  # type: ignore[arg-type]
                        labels=clf.labels, top_k=top_k, timeline=timeline)
    except GenreInferError as exc:
        _error(str(exc))
        ctx.exit(EXIT_USAGE)

    n_jobs = job_count(jobs, len(files), clf.model.providers, threads, force=force_jobs)
    if jobs != "auto" and n_jobs < int(jobs) and not quiet:
        click.echo(f"genre-infer: --jobs {jobs} is more than the {n_jobs} usable cores: using {n_jobs} "
                   "(--force-jobs to insist)", err=True)
    failed = 0
    bar = ProgressBar(len(files), sys.stderr, enabled=not quiet and len(files) > 1 and bar_wanted(sys.stderr))
    read_paths = [reads.get(f, f) for f in files]
    results = _skipping(refused, read_paths, lambda todo: _results(todo, clf, n_jobs, model, device, threads))
    try:
        # results first: zip then asks it once more after the last file, which runs the
        # generator to its end (the worker pool is shut down there, not at exit)
        for (status, payload), f, src in zip(results, files, read_paths):
            with bar.above():  # what is printed goes above the bar, never after it
                if status == "ok":
                    if src != f:  # a copy of standard input or a pipe: named as the user named it
                        payload = dataclasses.replace(payload, source=f)
                    writer.add(payload)
                    try:
                        visuals.add(f, src, payload)
                    except OutputError as exc:
                        failed += 1
                        _error(f"{display_path(f)}: {exc}")
                    except Exception as exc:  # noqa: BLE001 - one file's picture never stops the batch
                        failed += 1
                        _error(f"{display_path(f)}: cannot make plot/report: {exc or type(exc).__name__}")
                else:
                    failed += 1
                    name = display_path(f) or "''"
                    _error(f"{name}: {payload}")
                    writer.add_error(name, payload)
            bar.update(1)
        bar.close()
        writer.close()
        visuals.close()
    except KeyboardInterrupt as exc:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_IGN)
        bar.close()
        results.close()  # stops the worker processes now, wherever the interrupt landed
        if writer.keeps_partial:  # JSONL, or standard output
            kept = "finished results were kept"
            try:
                writer.close(interrupted=True)
            except OutputError as err:
                kept = str(err)
        else:  # docs/output.md: only a finished run writes a JSON, CSV or text file
            writer.abort()
            kept = (f"{display_path(output or '')} was left as it was (only a finished run writes "
                    f"{fmt}; -f jsonl keeps results as they finish)")
        _error(f"interrupted after {writer.written} of {len(files)} files; {kept}")
        ctx.exit(128 + exc.signum if isinstance(exc, _Stopped) else EXIT_INTERRUPTED)
    except OutputError as exc:
        bar.close()
        results.close()
        writer.abort()
        if output is None:
            _silence_stdout()
        _error(f"{exc}; stopped after {writer.written} of {len(files)} files")
        ctx.exit(EXIT_SOME_FAILED)
    except BrokenPipeError:
        bar.close()
        results.close()
        sys.stderr.close()
        ctx.exit(EXIT_SOME_FAILED)
    if not quiet and len(files) > 1:
        click.echo(f"genre-infer: classified {len(files) - failed} of {len(files)} files"
                   + (f"; {failed} failed" if failed else ""), err=True)
    ctx.exit(EXIT_SOME_FAILED if failed else EXIT_OK)


if __name__ == "__main__":
    main()
