"""genre_infer.cluster without a running Ray: the map_batches callable called directly, the row
schema and its way back to JSONL, listing, resume bookkeeping, and genre-infer-ray's errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

from library import BAD, REPO, cli, library  # noqa: E402,F401 - cli and library are fixtures

from genre_infer.cluster import PROB_PREFIX, Classify, list_audio, read_done, record, row_schema  # noqa: E402
from genre_infer.errors import GenreInferError  # noqa: E402


@pytest.fixture(scope="module")
def classify() -> Classify:
    return Classify()


def test_rows_are_the_cli_records_by_path_and_by_bytes(library: Path, cli: dict[str, dict], classify: Classify) -> None:
    files = [str(library / "album0" / "track000.wav"), str(library / "album0" / "track003.flac"),
             str(library / "album0" / "track007.ogg")] + [str(library / b) for b in BAD]
    by_path = classify({"path": np.array(files)})
    assert by_path.schema == row_schema(classify.labels)
    assert by_path.column("path").to_pylist() == files  # input order
    by_bytes = classify({"path": np.array(files), "bytes": np.array([Path(f).read_bytes() for f in files], dtype=object)})
    for table in (by_path, by_bytes):
        assert [record(r) for r in table.to_pylist()] == [cli[f] for f in files]
    errors = by_path.column("error").to_pylist()
    assert errors[:3] == [None] * 3 and all(errors[3:])  # a failed file is a row, with the CLI's message
    bad = by_path.to_pylist()[3]
    assert bad["genre"] is None and bad[PROB_PREFIX + classify.labels[0]] is None
    assert (bad["model_name"], bad["model_version"]) == (classify.classifier.name, classify.classifier.version)


def test_a_batch_of_only_failures_keeps_the_schema(library: Path, classify: Classify) -> None:
    table = classify({"path": np.array([str(library / b) for b in BAD])})
    assert table.schema == row_schema(classify.labels)  # every Parquet file of a job has one schema
    assert table.num_rows == len(BAD) and None not in table.column("error").to_pylist()


def test_record_drops_no_field_and_keeps_the_order(classify: Classify, library: Path) -> None:
    row = classify({"path": np.array([str(library / "album1" / "track051.wav")])}).to_pylist()[0]
    rec = record(row)
    assert list(rec) == ["schema_version", "file", "duration", "model", "genre", "confidence", "top",
                         "probabilities", "sections", "timeline"]
    assert list(rec["probabilities"]) == list(classify.labels)
    assert len(rec["top"]) == 3


def test_list_audio_walks_folders_and_takes_files_as_given(library: Path, tmp_path: Path) -> None:
    found = list_audio(library)
    assert len(found) == 200 and found == sorted(found)
    assert all(os.path.isabs(f) for f in found) and not any(f.endswith(".jpg") for f in found)
    (tmp_path / ".hidden.wav").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(GenreInferError, match="no audio files"):
        list_audio(tmp_path)
    one = library / "album0" / "track000.wav"
    assert list_audio([str(one), one, str(library / "bad")]) == [str(one)] + [str(library / b) for b in BAD]
    with pytest.raises(GenreInferError, match="no such file"):
        list_audio(tmp_path / "missing")


def test_read_done_drops_a_parquet_file_cut_short(tmp_path: Path, classify: Classify, library: Path) -> None:
    files = [str(library / "album0" / f"track00{i}.wav") for i in range(3)]
    table = classify({"path": np.array(files)})
    pq.write_table(table.slice(0, 2), tmp_path / "a.parquet")
    pq.write_table(table.slice(2), tmp_path / "b.parquet")
    data = (tmp_path / "b.parquet").read_bytes()
    (tmp_path / "b.parquet").write_bytes(data[: len(data) // 2])  # killed while writing
    model = (classify.classifier.name, classify.classifier.version)
    assert read_done(str(tmp_path)) == {files[0]: model, files[1]: model}
    assert not (tmp_path / "b.parquet").exists()
    assert read_done(str(tmp_path / "missing")) == {}


def _ray_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genre_infer.cluster_cli", *args], cwd=REPO, capture_output=True,
                          text=True, env=env, timeout=120)


def test_neither_genre_infer_nor_its_help_imports_ray() -> None:
    code = ("import sys, genre_infer, genre_infer.cli, genre_infer.cluster_cli\n"
            "from click.testing import CliRunner\n"
            "assert CliRunner().invoke(genre_infer.cluster_cli.main, ['--help']).exit_code == 0\n"
            "assert CliRunner().invoke(genre_infer.cli.main, ['--help']).exit_code == 0\n"
            "print(sorted(m for m in ('ray', 'pyarrow', 'numpy', 'onnxruntime') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_without_ray_one_line_and_exit_2(tmp_path: Path, library: Path) -> None:
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "noray")}
    r = _ray_cli(str(library), str(tmp_path / "out"), env=env)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["genre-infer-ray: error: Ray is not installed: pip install 'genre-infer[ray]'"]


def test_user_errors_are_one_line_before_ray_starts(tmp_path: Path, library: Path, classify: Classify) -> None:
    pytest.importorskip("ray")
    r = _ray_cli(str(tmp_path / "missing"), str(tmp_path / "out"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"genre-infer-ray: error: {tmp_path / 'missing'}: no such file or folder"]
    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(classify({"path": np.array([str(library / "album0" / "track000.wav")])}), out / "a.parquet")
    r = _ray_cli(str(library), str(out), "--no-resume")
    assert r.returncode == 2 and "already holds results (1 files)" in r.stderr and len(r.stderr.splitlines()) == 1
    other = classify({"path": np.array([str(library / "album0" / "track001.wav")])})
    other = other.set_column(other.schema.get_field_index("model_version"), "model_version",
                             pa.array(["0.0"], pa.string()))
    pq.write_table(other, out / "b.parquet")
    r = _ray_cli(str(library), str(out))
    assert r.returncode == 2 and "holds results of model" in r.stderr and len(r.stderr.splitlines()) == 1
    r = _ray_cli(str(library), str(out), "--concurrency", "3-1")
    assert r.returncode == 2 and "MIN-MAX" in r.stderr
    assert not list((tmp_path / "out").glob("*-0.parquet"))  # nothing ran


def test_a_uri_is_read_through_pyarrow_and_named_as_given(library: Path, cli: dict[str, dict], classify: Classify) -> None:
    # file:// goes the way of s3:// and gs://: the actor reads the bytes with pyarrow, decodes a copy
    local = str(library / "album2" / "track100.wav")
    uris = [f"file://{local}", f"file://{library / 'bad' / 'not-audio.mp3'}", f"file://{library / 'gone.wav'}"]
    rows = classify({"path": np.array(uris)}).to_pylist()
    assert [r["path"] for r in rows] == uris
    assert record(rows[0]) == {**cli[local], "file": uris[0]}
    assert rows[1]["error"] == cli[str(library / "bad" / "not-audio.mp3")]["error"].replace(
        str(library / "bad" / "not-audio.mp3"), uris[1])
    assert rows[2]["error"].startswith("cannot read (") and rows[2]["genre"] is None


def test_without_the_timeline_the_record_is_the_cli_record_without_it(library: Path, cli: dict[str, dict]) -> None:
    f = str(library / "album3" / "track150.wav")
    row = Classify(timeline=False, top_k=5)({"path": np.array([f])}).to_pylist()[0]
    assert row["timeline"] is None
    want = {k: v for k, v in cli[f].items() if k != "timeline"}
    got = record(row)
    assert len(got["top"]) == 5 and got["top"][:3] == want["top"]
    assert {**got, "top": want["top"]} == want
