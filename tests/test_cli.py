"""The genre-infer command: formats, schemas, exit codes and error lines."""

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from genre_infer import __version__
from genre_infer.cli import main

REPO = Path(__file__).resolve().parents[1]


def run(*args: str) -> "object":
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_text_output(toy_model: Path, audio_dir: Path) -> None:
    r = run(audio_dir / "change.wav", "--model", toy_model)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(str(audio_dir / "change.wav")) and "0:20" in lines[0]
    assert lines[1].startswith("  genre:    ") and {"low", "high"} <= set(lines[1].split())
    assert lines[2].startswith("  sections: 0:00–0:10 low 1.00 · 0:10–0:20 high 1.00")
    assert r.stderr == ""


def test_text_timeline_has_a_row_per_second(toy_model: Path, audio_dir: Path) -> None:
    r = run(audio_dir / "change.wav", "--model", toy_model, "--timeline")
    rows = [line for line in r.stdout.splitlines() if line.startswith("    ") and "–" in line]
    assert len(rows) == 20 and rows[0].split()[:2] == ["0:00–0:01", "low"]
    assert rows[-1].split()[:2] == ["0:19–0:20", "high"]


def test_json_schema(toy_model: Path, audio_dir: Path) -> None:
    r = run(audio_dir / "low.wav", audio_dir / "high.flac", "--model", toy_model, "-f", "json", "-k", "2")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["schema_version"] == 1 and doc["model"] == {"name": "toy", "version": "1.0"}
    assert doc["errors"] == []
    assert [x["genre"] for x in doc["results"]] == ["low", "high"]
    res = doc["results"][0]
    assert res["file"] == str(audio_dir / "low.wav") and res["duration"] == pytest.approx(6.0, abs=0.01)
    assert len(res["top"]) == 2 and set(res["probabilities"]) == {"low", "high"}
    assert len(res["timeline"]) == 6 and set(res["timeline"][0]["probabilities"]) == {"low", "high"}


def test_jsonl_one_line_per_input_with_errors(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    r = run(audio_dir / "low.wav", tmp_path / "missing.mp3", audio_dir / "high.mp3", "--model", toy_model,
            "-f", "jsonl")
    assert r.exit_code == 1
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x.get("genre") or x.get("error") for x in lines] == ["low", "no such file", "high"]
    assert lines[1] == {"schema_version": 1, "file": str(tmp_path / "missing.mp3"), "error": "no such file"}
    err = r.stderr.strip().splitlines()
    assert err[0] == f"genre-infer: error: {tmp_path / 'missing.mp3'}: no such file"
    assert err[-1] == "genre-infer: classified 2 of 3 files; 1 failed"


def test_csv_schema(toy_model: Path, audio_dir: Path) -> None:
    r = run(audio_dir / "change.wav", "--model", toy_model, "-f", "csv")
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["file", "row", "start", "end", "genre", "confidence", "low", "high"]
    assert rows[1][1] == "song" and float(rows[1][3]) == pytest.approx(20.0)
    seconds = [row for row in rows[1:] if row[1] == "second"]
    assert len(seconds) == 20 and seconds[0][4] == "low" and seconds[-1][4] == "high"
    assert all(abs(float(x[6]) + float(x[7]) - 1) < 1e-3 for x in seconds)


@pytest.mark.parametrize("fmt", ["json", "csv", "text", "jsonl"])
def test_output_file(toy_model: Path, audio_dir: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    r = run(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", out)
    assert r.exit_code == 0 and r.stdout == ""
    text = out.read_text()
    assert "low" in text
    assert not list(tmp_path.glob("*.part"))


def test_folder_is_searched_for_audio_only(toy_model: Path, audio_dir: Path) -> None:
    r = run(audio_dir, "--model", toy_model, "-f", "jsonl", "-q")
    files = [Path(json.loads(x)["file"]).name for x in r.stdout.splitlines()]
    assert "notes.txt" not in files and "low.opus" in files and len(files) == 8
    assert r.exit_code == 0 and r.stderr == ""


def test_same_file_twice_is_classified_once(toy_model: Path, audio_dir: Path) -> None:
    r = run(audio_dir / "low.wav", audio_dir / "low.wav", "--model", toy_model, "-f", "jsonl")
    assert len(r.stdout.splitlines()) == 1


def test_bad_inputs_do_not_stop_the_batch(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "junk.mp3").write_bytes(b"\x00\x01garbage" * 100)
    (tmp_path / "empty.wav").write_bytes(b"")
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "tiny.wav", np.full(100, 0.5, np.float32), 16000)
    sf.write(tmp_path / "quiet.wav", np.zeros(16000 * 3, np.float32), 16000)
    r = run(tmp_path / "junk.mp3", tmp_path / "empty.wav", tmp_path / "tiny.wav", tmp_path / "quiet.wav",
            audio_dir / "low.wav", "--model", toy_model, "-f", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert [x["genre"] for x in doc["results"]] == ["low"]
    assert len(doc["errors"]) == 4
    err = r.stderr.splitlines()
    assert any("junk.mp3: cannot decode audio" in line for line in err)
    assert any("empty.wav: empty file" in line for line in err)
    assert any("tiny.wav: too short" in line for line in err)
    assert any("quiet.wav: silent" in line for line in err)
    assert "Traceback" not in r.stderr


def test_bad_model_is_a_usage_error(audio_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("nope")
    r = run(audio_dir / "low.wav", "--model", bad)
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and "not a loadable ONNX model" in r.stderr


def test_usage_errors_exit_2() -> None:
    assert run().exit_code == 2
    assert run("x.wav", "--format", "xml").exit_code == 2
    assert run("x.wav", "--top-k", "0").exit_code == 2


def test_list_genres_version_and_model_info(toy_model: Path) -> None:
    r = run("--list-genres", "--model", toy_model)
    assert r.exit_code == 0 and r.stdout.split() == ["low", "high"]
    r = run("--version")
    assert r.exit_code == 0 and r.stdout.startswith(f"genre-infer {__version__}")
    r = run("--model-info", "--model", toy_model)
    info = json.loads(r.stdout)
    assert info["name"] == "toy" and info["features"]["sr"] == 16000


def test_python_dash_m_and_help() -> None:
    r = subprocess.run([sys.executable, "-m", "genre_infer", "--help"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0 and "--timeline" in r.stdout and "--format" in r.stdout


def test_default_model_from_the_command_line(audio_dir: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "genre_infer", str(audio_dir / "song.wav"), "-f", "json"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["results"][0]["probabilities"]) == 10


def test_jobs_give_the_same_output_in_input_order(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    files = [audio_dir / "low.wav", tmp_path / "bad.wav", audio_dir / "high.mp3", audio_dir / "change.wav"]
    one = run(*files, "--model", toy_model, "-f", "jsonl", "-j", "1")
    two = run(*files, "--model", toy_model, "-f", "jsonl", "-j", "2")
    assert one.exit_code == two.exit_code == 1
    assert one.stdout == two.stdout and len(two.stdout.splitlines()) == 4


def test_hostile_files_give_one_line_each(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    import os

    import numpy as np

    mp3 = (audio_dir / "high.mp3").read_bytes()
    rng = np.random.default_rng(0)
    corrupt = bytearray(mp3)
    for i in rng.integers(len(mp3) // 4, len(mp3), 200):
        corrupt[i] = int(rng.integers(0, 256))
    (tmp_path / "corrupt.mp3").write_bytes(bytes(corrupt))
    (tmp_path / "random.mp3").write_bytes(rng.bytes(5000))
    (tmp_path / "cut.flac").write_bytes((audio_dir / "high.flac").read_bytes()[:3000])
    odd = os.fsencode(tmp_path) + b"/caf\xe9\xff.wav"  # not UTF-8
    with open(odd, "wb") as f:
        f.write((audio_dir / "low.wav").read_bytes())
    os.symlink(tmp_path / "gone.wav", tmp_path / "broken.wav")
    r = subprocess.run([sys.executable, "-m", "genre_infer", os.fsdecode(tmp_path), "--model", str(toy_model),
                        "-f", "jsonl"], capture_output=True, cwd=REPO)
    assert r.returncode == 1
    err = r.stderr.decode("utf-8", "replace").splitlines()
    assert err and all(line.startswith("genre-infer: ") for line in err), err
    assert sum("error:" in line for line in err) == 3  # random.mp3, cut.flac, broken.wav
    out = [json.loads(x) for x in r.stdout.decode().splitlines()]
    ok = {Path(x["file"]).name: x["genre"] for x in out if "genre" in x}
    assert ok.get("caf\\xe9\\xff.wav") == "low" and "corrupt.mp3" in ok


def test_worker_pool_is_shut_down_before_main_returns(toy_model: Path, audio_dir: Path) -> None:
    """A pool still alive at exit raced the interpreter's exit handlers (an occasional
    'Bad file descriptor' traceback from concurrent.futures after a clean batch)."""
    import concurrent.futures.process as cfp
    import gc

    files = [audio_dir / "low.wav", audio_dir / "high.mp3", audio_dir / "change.wav", audio_dir / "low.wav"]
    r = run(*files, "--model", toy_model, "-f", "jsonl", "-j", "2")
    assert r.exit_code == 0, r.output
    gc.collect()
    assert not [t for t in cfp._threads_wakeups if t.is_alive()], "a worker pool outlived the command"


def test_jobs_auto_is_one_per_core_for_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from genre_infer import cli

    monkeypatch.setattr(cli, "_usable_cores", lambda: 4)
    cpu = ["CPUExecutionProvider"]
    per = cli.FILES_PER_AUTO_JOB
    assert cli.job_count("auto", 1000, cpu) == 4
    assert cli.job_count("auto", 2 * per, cpu) == 2  # each worker pays for its start: a few files each at least
    assert cli.job_count("auto", per - 1, cpu) == cli.job_count("auto", 1, cpu) == 1
    assert cli.job_count("auto", 1000, cpu, threads=2) == 2  # workers x threads stay within the cores
    cuda = ["CUDAExecutionProvider", *cpu]
    assert cli.job_count("auto", 1000, cuda) == min(4, cli.MAX_CUDA_AUTO_JOBS)  # workers share the GPU
    assert cli.job_count("auto", per - 1, cuda) == 1
    assert cli.job_count("3", 1, cpu) == 3
    monkeypatch.setattr(cli, "_usable_cores", lambda: 64)
    assert cli.job_count("auto", 1000, cpu) == cli.MAX_AUTO_JOBS
    assert cli.job_count("auto", 1000, cuda) == cli.MAX_CUDA_AUTO_JOBS


def test_a_worker_that_dies_fails_its_file_and_the_batch_goes_on() -> None:
    from genre_infer import cli
    from signals import die_on

    files = ["a", "b", "die", "c", "d", "e"]
    got = list(cli._pool_results(files, 2, (None, "cpu", 1), work=die_on))
    assert got == [("ok", "a"), ("ok", "b"), ("error", cli.WORKER_DIED), ("ok", "c"), ("ok", "d"), ("ok", "e")]
    got = list(cli._pool_results(["die1", "die2", "die3", "x"], 2, (None, "cpu", 1), work=die_on))
    assert got[0] == ("error", cli.WORKER_DIED) and got[-1][0] == "error"  # gives up rather than loop forever


def test_jobs_must_be_a_count_or_auto(toy_model: Path, audio_dir: Path) -> None:
    for bad in ("0", "two", "-1", "\u00b2"):
        r = run(audio_dir / "low.wav", "--model", toy_model, "-j", bad)
        assert r.exit_code == 2 and "jobs" in r.output


@pytest.mark.parametrize(("jobs", "presses"), [("1", 1), ("2", 1), ("2", 2)])
def test_ctrl_c_keeps_finished_results_and_exits_130(toy_model: Path, audio_dir: Path, tmp_path: Path,
                                                    jobs: str, presses: int) -> None:
    """Ctrl-C as a terminal sends it: to the whole process group (workers included), once or twice."""
    import os
    import signal
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    n = 3000  # enough that the batch is still running when it is interrupted (one file takes ~10 ms)
    for i in range(n):
        os.link(audio_dir / "change.wav", folder / f"song{i:04d}.wav")
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "genre_infer", str(folder), "--model", str(toy_model),
                             "-f", "jsonl", "-o", str(out), "-q", "-j", jobs], cwd=REPO, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 3):
        time.sleep(0.05)
    for _ in range(presses):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.05)
    t0 = time.time()
    _, err = proc.communicate(timeout=60)
    assert time.time() - t0 < 10, "the interrupted batch took its time to stop"
    assert proc.returncode == 130, err
    lines = out.read_text().splitlines()
    assert 3 <= len(lines) < n
    assert all(json.loads(line)["genre"] in ("low", "high") for line in lines)  # every line complete
    assert b"interrupted after" in err and b"Traceback" not in err
    left = subprocess.run(["ps", "-o", "stat=", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert all(state.startswith("Z") for state in left), f"workers left running: {left}"  # zombies wait for init
