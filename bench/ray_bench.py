"""Files per second with Ray (genre-infer-ray) against `genre-infer --jobs 2`, on the same files.

    pip install ".[ray]"
    python bench/ray_bench.py              # 200 hard links to one 30-s mp3 (bench.py's batch folder)
    python bench/ray_bench.py --songs 40 --repeat 1

Three timings of the same folder, each the median of ``--repeat`` runs:

- ``cli``: ``genre-infer FOLDER --jobs N -f jsonl`` as a fresh process;
- ``ray_cold``: ``genre-infer-ray FOLDER DEST --concurrency N`` as a fresh process, which
  starts a local Ray, its actors and tears it down: what one command costs on one machine;
- ``ray_cold_nice0``: the same with ``RAY_worker_niceness=0``. Ray runs its workers at nice 15,
  so on a machine shared with other work they get far less CPU than the CLI's workers;
  this gives them the CLI's priority;
- ``ray_warm``: ``classify_library`` on an already started local Ray (``num_cpus=N``, workers at
  nice 0), as on a cluster that is up: the actor pool's start, scheduling, the Parquet writes;
- ``ray_warm_1actor``: the same with one actor, so the gain of a second actor is measured.

The runs are interleaved (CLI, Ray, CLI, Ray...), so load from other work on the machine
falls on both; ``load_avg_1min_at_end`` records how busy it was.

Writes bench/ray_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench import batch_folder, machine  # noqa: E402


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--songs", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2, help="CLI --jobs, Ray actors and num_cpus")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=str(HERE / "ray_results.json"))
    args = ap.parse_args()
    n, jobs = args.songs, args.jobs
    folder = batch_folder(n)
    tmp = Path(tempfile.mkdtemp(prefix="ray-bench-"))

    def fresh(name: str) -> str:
        d = tmp / name
        shutil.rmtree(d, ignore_errors=True)
        return str(d)

    cli = [sys.executable, "-m", "genre_infer", str(folder), "-q", "-f", "jsonl", "-j", str(jobs),
           "-o", str(tmp / "cli.jsonl")]
    times: dict[str, list[float]] = {"cli": [], "ray_cold": [], "ray_cold_nice0": [], "ray_warm": [],
                                     "ray_warm_1actor": []}
    ray_cli = [sys.executable, "-m", "genre_infer.cluster_cli", str(folder), "--concurrency", str(jobs), "-q"]
    for _ in range(args.repeat):
        times["cli"].append(wall(cli))
        times["ray_cold"].append(wall(ray_cli + [fresh("cold")]))
        times["ray_cold_nice0"].append(wall(ray_cli + [fresh("cold0")], {**os.environ, "RAY_worker_niceness": "0"}))

    import ray

    os.environ["RAY_worker_niceness"] = "0"

    from genre_infer.cluster import classify_library

    ray.init(num_cpus=jobs, object_store_memory=200 * 1024**2, include_dashboard=False, log_to_driver=False)
    try:
        for _ in range(args.repeat):
            for key, actors in (("ray_warm", jobs), ("ray_warm_1actor", 1)):
                t = time.perf_counter()
                summary = classify_library(folder, fresh(key), concurrency=actors)
                times[key].append(time.perf_counter() - t)
                assert summary.classified == n and summary.failed == 0, summary
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    res = {
        "machine": machine("cpu"), "ray": ray.__version__, "songs": n, "song_s": 30.0, "jobs": jobs,
        "load_avg_1min_at_end": os.getloadavg()[0],
        "runs_s": times, "median_s": med, "files_per_s": {k: n / v for k, v in med.items()},
        "ray_cold_over_cli": med["ray_cold"] / med["cli"], "ray_cold_nice0_over_cli": med["ray_cold_nice0"] / med["cli"],
        "ray_warm_over_cli": med["ray_warm"] / med["cli"],
        "second_actor_speedup": med["ray_warm_1actor"] / med["ray_warm"],
    }
    print(f"genre-infer on Ray ({res['machine']}, ray {ray.__version__}), {n} 30-s mp3s, median of {args.repeat}")
    labels = {"cli": f"genre-infer --jobs {jobs}", "ray_cold": f"genre-infer-ray --concurrency {jobs} (starts Ray)",
              "ray_cold_nice0": "  the same, RAY_worker_niceness=0",
              "ray_warm": f"classify_library, Ray up, {jobs} actors", "ray_warm_1actor": "classify_library, Ray up, 1 actor"}
    for k, label in labels.items():
        print(f"  {label:<48} {med[k]:6.1f} s  {n / med[k]:5.1f} files/s  ({med[k] / med['cli']:.2f}x the CLI's time)")
    Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
