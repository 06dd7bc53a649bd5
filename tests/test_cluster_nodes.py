"""genre-infer-ray on a simulated two-node Ray cluster (``ray.cluster_utils.Cluster``, one CPU
each): the command joins it by ``--address``, an actor runs on each node, and the rows equal
``genre-infer --format jsonl`` for the same 200 files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
from ray.cluster_utils import Cluster  # noqa: E402

from library import BAD, REPO, check_rows, cli_records, make_library, ray_processes, read_rows  # noqa: E402

pytestmark = pytest.mark.ray
WORKER = "MapWorker(MapBatches(Classify))"
NODE = {"num_cpus": 1, "object_store_memory": 100 * 1024**2}


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    c.add_node(**NODE)
    c.wait_for_nodes()
    yield c
    c.shutdown()


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_two_nodes_label_the_library_as_the_cli(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    library = tmp_path / "library"
    make_library(library)
    cli = cli_records(library, tmp_path / "cli.jsonl")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "genre_infer.cluster_cli", str(library), str(out),
                             "--address", cluster.address, "--concurrency", "2", "--batch-size", "4"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    raylets: set[int] = set()  # a worker's parent is the raylet of its node
    while proc.poll() is None:
        for pid in ray_processes(WORKER):
            try:
                raylets.add(_parent(pid))
            except OSError:
                pass
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 1, stderr  # the bad files failed, each a row with its error
    assert len(raylets) == 2, "the actors did not run on both nodes"
    check_rows(read_rows(out), cli)
    lines = [line for line in stderr.splitlines() if line.startswith("genre-infer-ray:")]
    assert sorted(lines[:-1]) == sorted(f"genre-infer-ray: error: {library / b}: {cli[str(library / b)]['error']}"
                                        for b in BAD)
    assert lines[-1] == f"genre-infer-ray: 200 files: 200 classified now; {len(BAD)} failed"
