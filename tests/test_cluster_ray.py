"""genre-infer on a real local Ray (``ray.init(num_cpus=2)``): 200 files into Parquet, equal row
for row to ``genre-infer --format jsonl``; a worker killed mid-run; a driver killed mid-run, then
resumed. About a minute on two cores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from library import (  # noqa: E402
    REPO, SR, check_rows, cli, cli_records, library, parquet_files, ray_processes, read_rows, wait_for,
)  # cli and library are fixtures

from genre_infer.cluster import WORKER_DIED, classify_library  # noqa: E402

pytestmark = pytest.mark.ray
WORKER = "MapWorker(MapBatches(Classify))"


@pytest.fixture(scope="module")
def local_ray():  # type: ignore[no-untyped-def]
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_library_to_parquet_equals_the_cli_jsonl(  # type: ignore[no-untyped-def]
    local_ray, library: Path, cli: dict[str, dict], tmp_path: Path,
) -> None:
    summary = classify_library(library, tmp_path / "out", concurrency=2)
    check_rows(read_rows(tmp_path / "out"), cli)
    failed = sorted(f for f, rec in cli.items() if "error" in rec)
    assert len(failed) == 5
    assert (summary.files, summary.skipped, summary.classified, summary.failed) == (200, 0, 200, 5)
    assert summary.failures == [(f, cli[f]["error"]) for f in failed]
    again = classify_library(library, tmp_path / "out", concurrency=2)  # all done: nothing to do
    assert (again.skipped, again.classified, again.failed) == (200, 0, 5)
    assert len(read_rows(tmp_path / "out")) == 200


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(  # type: ignore[no-untyped-def]
    local_ray, library: Path, cli: dict[str, dict], tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    box: dict[str, object] = {}

    def job() -> None:
        try:
            box["summary"] = classify_library(library, out, concurrency=2, batch_size=2)
        except BaseException as exc:  # noqa: BLE001 - reported below
            box["error"] = exc

    before = set(ray_processes(WORKER))
    thread = threading.Thread(target=job)
    thread.start()
    busy: list[int] = []

    def mid_run() -> bool:  # some results written, and an actor inside a batch (Ray titles it ".submit")
        busy[:] = [p for p, title in ray_processes(WORKER).items() if p not in before and title.endswith(".submit")]
        return bool(busy) and bool(parquet_files(out) if out.exists() else [])

    wait_for(mid_run, 120, "an actor classifying after the first Parquet file")
    originals = set(ray_processes(WORKER)) - before
    os.kill(busy[0], signal.SIGKILL)  # as the OOM killer would
    written_at_kill = len(parquet_files(out))
    assert thread.is_alive()
    replaced: set[int] = set()

    def restarted() -> bool:
        replaced.update(set(ray_processes(WORKER)) - before - originals)
        return bool(replaced) or not thread.is_alive()

    wait_for(restarted, 120, "Ray to restart the actor")
    thread.join(180)
    assert not thread.is_alive() and "error" not in box, box.get("error")
    assert replaced, "Ray did not restart the killed actor"
    assert written_at_kill < len(parquet_files(out))  # the kill came before the end
    check_rows(read_rows(out), cli)
    assert box["summary"].classified == 200  # type: ignore[attr-defined]


def test_resume_after_the_driver_died_finishes_without_redoing(  # type: ignore[no-untyped-def]
    local_ray, library: Path, cli: dict[str, dict], tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    address = local_ray.get_runtime_context().gcs_address
    before = set(ray_processes(WORKER))  # an earlier dataset's actors may linger (ray 2.50 keeps them a while)
    proc = subprocess.Popen([sys.executable, "-m", "genre_infer.cluster_cli", str(library), str(out),
                             "--address", address, "--concurrency", "2", "--batch-size", "2", "-q"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(parquet_files(out)) >= 2 if out.exists() else False, 120, "two Parquet files")
        os.kill(proc.pid, signal.SIGKILL)  # the driver crashes mid-run
    finally:
        proc.kill()
        proc.wait()
    # Ray ends the dead driver's actors and tasks; a file they were writing may be cut short
    wait_for(lambda: not set(ray_processes(WORKER)) - before, 60, "the dead job's actors to go")
    time.sleep(0.5)
    kept = {p: p.read_bytes() for p in parquet_files(out)}
    first = []
    for p in kept:
        try:
            first += [r["path"] for r in read_rows_one(p)]
        except Exception:  # noqa: BLE001 - cut short: resume drops it
            pass
    assert 0 < len(first) < 200
    summary = classify_library(library, out, concurrency=2)
    assert summary.skipped == len(first) and summary.classified == 200 - len(first)
    rows = read_rows(out)
    check_rows(rows, cli)
    for p, data in kept.items():  # finished files are kept as they were, none written again
        if p.exists():
            assert p.read_bytes() == data
    new_paths = [r["path"] for p in parquet_files(out) if p not in kept for r in read_rows_one(p)]
    assert sorted(new_paths) == sorted(set(cli) - set(first))


def read_rows_one(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def test_a_file_that_kills_its_worker_twice_gets_an_error_row(  # type: ignore[no-untyped-def]
    local_ray, tmp_path: Path,
) -> None:
    import soundfile as sf
    from signals import noise, tone

    library = tmp_path / "library"
    library.mkdir()
    for i in range(11):
        sf.write(library / f"song{i:02d}.wav", tone(SR, 3.0, 120.0 + 10 * i), SR)
    poison = library / "song05-poison.wav"
    sf.write(poison, noise(SR, 90.0), SR)  # long enough to be seen in flight
    cli = cli_records(library, tmp_path / "cli.jsonl", expect=0)
    box: dict[str, object] = {}
    out = tmp_path / "out"
    thread = threading.Thread(
        target=lambda: box.update(summary=classify_library(library, out, concurrency=2, batch_size=2)))
    thread.start()
    killed: list[int] = []
    while thread.is_alive():  # whichever worker holds the poisoned file dies, as on a decoder's crash
        for name in ray.util.list_named_actors():
            if name.startswith("genre-infer-ledger-"):
                try:
                    flight = ray.get(ray.get_actor(name).in_flight.remote(), timeout=5)
                except Exception:  # noqa: BLE001 - the job ended meanwhile
                    flight = {}
                for key, (pid, paths, deaths) in flight.items():
                    # in its batch's first run, or classified alone after that; never when the
                    # ledger shows the retry that only writes its error row (deaths > 0): killing
                    # that worker too would be a third death the product did not cause
                    on_it = deaths == 0 and (key == f"file:{poison}" or (
                        key.startswith("batch:") and str(poison) in paths))
                    if on_it and pid not in killed and len(killed) < 4:  # 4: it is killing for ever
                        killed.append(pid)
                        os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    thread.join()
    assert len(killed) == 2  # once in its batch, once alone
    rows = {r["path"]: r for r in read_rows(out)}
    assert len(rows) == 12 and rows[str(poison)]["error"] == WORKER_DIED
    from genre_infer.cluster import record

    others = {p: c for p, c in cli.items() if p != str(poison)}
    assert {p: record(r) for p, r in rows.items() if p != str(poison)} == others
    assert box["summary"].failures == [(str(poison), WORKER_DIED)]  # type: ignore[attr-defined]
