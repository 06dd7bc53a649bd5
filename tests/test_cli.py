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
    assert lines[2].startswith("  sections: 0:00–0:10 low 100% · 0:10–0:20 high 100%")
    assert r.stderr == ""


def test_text_timeline_has_a_row_per_second(toy_model: Path, audio_dir: Path) -> None:
    r = run(audio_dir / "change.wav", "--model", toy_model, "--timeline")
    rows = [line for line in r.stdout.splitlines() if line.startswith("    ") and "–" in line]
    assert len(rows) == 20 and rows[0].split()[:2] == ["0:00–0:01", "low"]
    assert rows[-1].split()[:2] == ["0:19–0:20", "high"]


def test_text_uses_one_notation_and_no_empty_span(toy_model: Path, tmp_path: Path) -> None:
    """Confidences read as percentages everywhere (not 88% in one place and 0.88 in the next),
    and a song's last 14 ms get no ``0:20–0:20`` row of their own."""
    import re

    import numpy as np
    import soundfile as sf
    from signals import noise, tone

    from conftest import SR

    y = np.concatenate([tone(SR, 10.0, 110.0), noise(SR, 10.0 + 0.014)])
    sf.write(tmp_path / "tail.wav", y, SR)
    r = run(tmp_path / "tail.wav", "--model", toy_model, "--timeline")
    assert r.exit_code == 0, r.output
    assert not re.search(r"\b[01]\.\d\d\b", r.stdout), r.stdout  # no 0.88-style confidence
    assert re.search(r"genre: +(low|high) \d+%", r.stdout) and "low 100%" in r.stdout
    spans = re.findall(r"(\d+:\d\d)–(\d+:\d\d)", r.stdout)
    assert spans and all(a != b for a, b in spans), spans
    rows = [line for line in r.stdout.splitlines() if line.startswith("    ")]
    assert len(rows) == 20 and rows[-1].split()[0] == "0:19–0:20"
    doc = json.loads(run(tmp_path / "tail.wav", "--model", toy_model, "-f", "json").stdout)
    assert len(doc["results"][0]["timeline"]) == 21  # the machine-readable forms keep the tail


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
    assert len(doc["results"][0]["probabilities"]) == 11  # GTZAN's ten genres and electronic


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
    # the workers were told to stop; a loaded machine may take a moment to run their exit, so
    # wait (within a bound) until the group holds nothing but zombies (which wait for init)
    deadline, left = time.time() + 15, ["?"]
    while time.time() < deadline:
        ps = subprocess.run(["ps", "-o", "stat=", "-g", str(proc.pid)], capture_output=True, text=True)
        left = ps.stdout.split()
        if all(state.startswith("Z") for state in left):
            break
        time.sleep(0.1)
    assert all(state.startswith("Z") for state in left), f"workers still running 15 s after the parent exited: {left}"


def _cli(*args: object, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genre_infer", *map(str, args)], capture_output=True, cwd=REPO,
                          **kw)  # type: ignore[call-overload]


def test_version_names_the_default_model_from_its_metadata() -> None:
    onnx = pytest.importorskip("onnx")
    from genre_infer.constants import METADATA_KEY

    props = {p.key: p.value for p in onnx.load(str(REPO / "exported" / "default.onnx")).metadata_props}
    meta = json.loads(props[METADATA_KEY])
    r = _cli("--version", text=True)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"genre-infer {__version__}"
    assert lines[1] == f"default model: {meta['name']} {meta['version']}"
    assert lines[2].startswith("onnxruntime ") and f"python {sys.version.split()[0]}" in lines[2]


@pytest.mark.parametrize(("ext", "fmt"), [(".json", "json"), (".jsonl", "jsonl"), (".csv", "csv"), (".txt", "text"),
                                          (".out", "text")])
def test_output_extension_picks_the_format(toy_model: Path, audio_dir: Path, tmp_path: Path, ext: str,
                                           fmt: str) -> None:
    out = tmp_path / f"result{ext}"
    r = _cli(audio_dir / "low.wav", "--model", toy_model, "-o", out, text=True)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    if fmt == "json":
        assert json.loads(text)["results"][0]["genre"] == "low"
    elif fmt == "jsonl":
        assert json.loads(text.splitlines()[0])["genre"] == "low"
    elif fmt == "csv":
        assert next(csv.reader(io.StringIO(text)))[:2] == ["file", "row"]
    else:
        assert "  genre:    low" in text


def test_explicit_format_wins_and_a_conflict_is_a_usage_error(toy_model: Path, audio_dir: Path,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "result.data"
    r = _cli(audio_dir / "low.wav", "--model", toy_model, "-f", "json", "-o", out, text=True)
    assert r.returncode == 0 and json.loads(out.read_text())["results"][0]["genre"] == "low"
    r = _cli(tmp_path / "missing.wav", "--model", toy_model, "-f", "csv", "-o", tmp_path / "result.json", text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "--format csv" in r.stderr and "json" in r.stderr and "missing.wav" not in r.stderr  # before any work
    assert not (tmp_path / "result.json").exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("option", ["--plot", "--html"])
def test_one_picture_file_for_several_inputs_is_a_usage_error(toy_model: Path, audio_dir: Path, tmp_path: Path,
                                                             option: str) -> None:
    name = tmp_path / ("two.png" if option == "--plot" else "r.html")
    r = _cli(audio_dir / "low.wav", tmp_path / "missing.wav", "--model", toy_model, option, name, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "give a folder" in r.stderr and "missing.wav: " not in r.stderr
    assert not name.exists()
    folder = tmp_path / "pictures"
    r = _cli(audio_dir / "low.wav", audio_dir / "high.flac", "--model", toy_model, option, folder, text=True)
    assert r.returncode == 0, r.stderr
    ext = ".png" if option == "--plot" else ".html"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"low{ext}", f"high{ext}"] + (["index.html"] if option == "--html" else []))


def test_unknown_plot_type_is_a_usage_error_before_any_work(toy_model: Path, audio_dir: Path,
                                                           tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    r = _cli(tmp_path / "missing.wav", "--model", toy_model, "--plot", tmp_path / "plot.docx", text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "'.docx'" in r.stderr and ".png" in r.stderr
    assert "missing.wav: " not in r.stderr
    r = _cli(audio_dir / "low.wav", "--model", toy_model, "--plot", tmp_path / "plot.svg", text=True)
    assert r.returncode == 0 and (tmp_path / "plot.svg").read_text().lstrip().startswith("<?xml")


def test_audio_from_standard_input_and_pipes(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    import os
    import threading

    data = (audio_dir / "high.mp3").read_bytes()
    r = _cli("-", "--model", toy_model, "-f", "jsonl", input=data)  # a pipe
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["file"] == "-" and doc["genre"] == "high"
    with open(audio_dir / "low.wav", "rb") as f:  # a redirected file
        r = _cli("-", "--model", toy_model, "-f", "jsonl", stdin=f)
    assert r.returncode == 0 and json.loads(r.stdout)["genre"] == "low"
    r = _cli("/dev/stdin", "--model", toy_model, "-f", "jsonl", input=data)  # said "empty file (0 bytes)"
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["file"] == "/dev/stdin"
    fifo = tmp_path / "song.fifo"  # what <(cat song.mp3) gives
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as w:
            w.write((audio_dir / "low.wav").read_bytes())

    writer = threading.Thread(target=feed)
    writer.start()
    r = _cli(fifo, audio_dir / "high.flac", "--model", toy_model, "-f", "jsonl", "--plot", tmp_path / "plots", timeout=120)
    writer.join(10)
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["genre"] for x in r.stdout.splitlines()] == ["low", "high"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["high.png", "song.png"]
    r = _cli("-", "--model", toy_model, input=b"")
    assert r.returncode == 1 and b"-: empty file (0 bytes)" in r.stderr


def test_stdin_problems_are_said_up_front(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    from terminal import run_on_pty

    rc, raw = run_on_pty([sys.executable, "-m", "genre_infer", "-", "--model", str(toy_model)], cwd=REPO)
    assert rc == 2 and "standard input, which is a terminal" in raw
    r = _cli("-", "--model", toy_model, "--html", tmp_path / "r.html", "--html-audio", "link",
             input=(audio_dir / "low.wav").read_bytes())
    assert r.returncode == 2 and b"--html-audio embed" in r.stderr and not (tmp_path / "r.html").exists()


def test_errors_name_what_is_wrong(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    """Without ffmpeg: a text file is not audio (not "needs ffmpeg"), an image is an image,
    an .m4a needs ffmpeg, a URL is not a path."""
    import shutil

    shutil.copy(REPO / "docs" / "timeline.png", tmp_path / "cover.png")
    shutil.copy(REPO / "docs" / "timeline.png", tmp_path / "cover.mp3")
    (tmp_path / "lyrics.txt").write_text("la la la\nla la la\n")
    (tmp_path / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + bytes(200))
    (tmp_path / "bin").mkdir()
    files = ["cover.png", "cover.mp3", "lyrics.txt", "song.m4a", "https://example.com/song.mp3"]
    r = _cli(*[tmp_path / f if "//" not in f else f for f in files], audio_dir / "low.wav", "--model", toy_model,
             "-f", "jsonl", text=True, env={"PATH": str(tmp_path / "bin")})  # no ffmpeg on PATH
    errors = {Path(x["file"]).name if "//" not in x["file"] else x["file"]: x.get("error")
              for x in map(json.loads, r.stdout.splitlines())}
    assert errors == {
        "cover.png": "not an audio file (a PNG image)", "cover.mp3": "not an audio file (a PNG image)",
        "lyrics.txt": "not an audio file (text)", "low.wav": None,
        "song.m4a": errors["song.m4a"], "https://example.com/song.mp3": "URLs are not supported; download the file first",
    }, errors
    assert errors["song.m4a"].startswith("decoding MP4/M4A audio needs ffmpeg, which is not installed")
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_errors_name_what_is_wrong_with_ffmpeg(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    import shutil

    from genre_infer.audio import ffmpeg_available

    if not ffmpeg_available():
        pytest.skip("ffmpeg is not installed")
    shutil.copy(REPO / "docs" / "timeline.png", tmp_path / "cover.png")
    (tmp_path / "lyrics.txt").write_text("la la la\n")
    video = tmp_path / "silent-film.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=d=1:s=64x64", str(video)], check=True)
    r = _cli(tmp_path / "cover.png", tmp_path / "lyrics.txt", video, "--model", toy_model, "-f", "jsonl", text=True)
    errors = [json.loads(x)["error"] for x in r.stdout.splitlines()]
    assert errors == ["not an audio file (a PNG image)", "not an audio file (text)", "no audio stream in this file"]
    assert "trailing '?'" not in r.stderr
