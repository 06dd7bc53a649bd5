"""The ``genre-infer-ray`` command: a library (folder or URI) → Ray Data → Parquet.

Exit codes as ``genre-infer``: 0 every file classified; 1 some files failed (their rows
carry the error); 2 usage error, Ray missing, or a model/output folder that does not
fit; 130 interrupted (finished Parquet files are kept: run again to finish).
"""

from __future__ import annotations

import os
import sys

import click

from ._version import __version__

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _error(message: str) -> None:
    click.echo(f"genre-infer-ray: error: {message}", err=True)


def _concurrency(ctx: click.Context, param: click.Parameter, value: str | None) -> int | tuple[int, int] | None:
    if value is None:
        return None
    try:
        parts = [int(v) for v in value.split("-")]
        if all(p >= 1 for p in parts) and (len(parts) == 1 or (len(parts) == 2 and parts[0] <= parts[1])):
            return parts[0] if len(parts) == 1 else (parts[0], parts[1])
    except ValueError:
        pass
    raise click.BadParameter(f"{value!r} is not a number of actors (N) or a range (MIN-MAX)")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("source", metavar="SRC")
@click.argument("dest", metavar="DEST")
@click.option("--address", metavar="ADDR",
              help="Ray cluster to join: auto (one started by `ray start` here), HOST:PORT or ray://HOST:PORT. "
                   "Default: RAY_ADDRESS, else a Ray started on this machine.")
@click.option("--concurrency", metavar="N|MIN-MAX", callback=_concurrency,
              help="Actors (each loads the model once); MIN-MAX autoscales. Default: one per CPU "
                   "(per --gpus-per-actor GPUs with GPUs).")
@click.option("--gpus-per-actor", type=click.FloatRange(0, None), default=0.0, show_default=True,
              help="GPUs per actor (0.25: four share one); above 0 the network runs on CUDA.")
@click.option("--threads", type=click.IntRange(1, None), default=1, show_default=True,
              help="CPU threads (and Ray CPUs) per actor.")
@click.option("-m", "--model", metavar="NAME|PATH", help="A shipped model's name or an .onnx file.")
@click.option("--batch-size", type=click.IntRange(1, None), default=16, show_default=True,
              help="Files per batch an actor classifies.")
@click.option("-k", "--top-k", type=click.IntRange(1, None), default=3, show_default=True,
              help="Genres in the top column.")
@click.option("--no-timeline", is_flag=True,
              help="Leave the timeline column empty (it is most of a row: ~260 bytes per second of audio).")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Skip files already in DEST (--no-resume: DEST must hold no results).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars, per-file errors or summary on stderr.")
@click.version_option(__version__, "--version", prog_name="genre-infer-ray", message="%(prog)s %(version)s")
def main(
    source: str, dest: str, address: str | None, concurrency: int | tuple[int, int] | None,
    gpus_per_actor: float, threads: int, model: str | None, batch_size: int, top_k: int, no_timeline: bool,
    resume: bool, quiet: bool,
) -> None:
    """Label a whole music library on a Ray cluster, into Parquet.

    SRC is a folder (searched recursively for audio files), a file, or a URI pyarrow
    reads (s3://bucket/music, gs://...). DEST is a folder or URI that receives Parquet
    files: one row per file, the same results as `genre-infer --format jsonl`.
    A rerun after an interruption classifies only the files not yet in DEST.

    \b
    Examples:
      genre-infer-ray ~/Music genres/
      genre-infer-ray s3://bucket/music s3://bucket/genres --address auto --concurrency 64
    """
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")  # as genre-infer: before numpy loads
    from .errors import GenreInferError

    try:
        from .cluster import RAY_MISSING, classify_library
    except ImportError:
        _error("Ray is not installed: pip install 'genre-infer[ray]'")
        sys.exit(EXIT_USAGE)
    try:
        import ray  # noqa: F401
    except ImportError:
        _error(RAY_MISSING)
        sys.exit(EXIT_USAGE)
    try:
        summary = classify_library(
            source, dest, model=model, concurrency=concurrency, num_gpus_per_actor=gpus_per_actor,
            threads=threads, batch_size=batch_size, top_k=top_k, timeline=not no_timeline, resume=resume,
            address=address, progress=not quiet,
        )
    except GenreInferError as exc:
        _error(str(exc))
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        _error(f"interrupted; the finished files are in {dest}: run the same command again to finish")
        sys.exit(EXIT_INTERRUPTED)
    if not quiet:
        for path, message in summary.failures:
            _error(f"{path}: {message}")
        click.echo(
            f"genre-infer-ray: {summary.files} files: {summary.classified} classified now"
            + (f", {summary.skipped} already in {dest}" if summary.skipped else "")
            + (f"; {summary.failed} failed" if summary.failed else ""),
            err=True,
        )
    sys.exit(EXIT_SOME_FAILED if summary.failed else EXIT_OK)


if __name__ == "__main__":
    main()
