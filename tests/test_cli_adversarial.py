"""Cases an adversarial pass found after issues 17 and 18: names that hold control characters,
closed standard streams, folders a scan cannot read or reaches through links, outputs of one
run that name the same file, and names that are empty or end in a slash.

Every case drives the real command in a subprocess: one line per problem on stderr, no
traceback, nothing lost or overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
PREFIX = "genre-infer: error: "
SR = 16000


def run(*args: object, preexec: Callable[[], None] | None = None, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "genre_infer", *map(os.fsencode, map(str, args))],
                          capture_output=kw.pop("capture_output", True), cwd=REPO, timeout=kw.pop("timeout", 120),
                          preexec_fn=preexec, **kw)


def lines(raw: bytes) -> list[str]:
    return raw.decode("utf-8", "replace").splitlines()


def tone(seconds: float = 2.0, freq: float = 110.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(SR * seconds)) / SR)).astype(np.float32)


def good(path: Path) -> Path:
    sf.write(path, tone(), SR)
    return path


def header_only(path: Path) -> Path:
    """A WAV with its header and no samples: that file's error, whatever its name."""
    sf.write(path, tone(), SR)
    path.write_bytes(path.read_bytes()[:44])
    return path


def no_traceback(stderr: bytes) -> None:
    text = stderr.decode("utf-8", "replace")
    assert "Traceback" not in text and "Exception ignored" not in text, text


# --------------------------------------------------------------------------------------------
# Control characters in names: one line per file, nothing the terminal acts on
# --------------------------------------------------------------------------------------------

CONTROL_NAMES = ["new\nline", "tab\there", "esc\x1b[2J\x1b[31mred", "bidi\u202egnp.exe", "c1\x85next"]


def test_control_characters_in_names_stay_on_one_line(toy_model: Path, tmp_path: Path) -> None:
    for i, name in enumerate(CONTROL_NAMES):
        good(tmp_path / f"{i}-ok-{name}.wav")
        header_only(tmp_path / f"{i}-bad-{name}.wav")
    r = run(tmp_path, "--model", toy_model, "-j", "1")
    no_traceback(r.stderr)
    assert r.returncode == 1
    err, out = lines(r.stderr), r.stdout.decode()
    assert all(x.startswith("genre-infer: ") for x in err), err  # no line is the tail of a name
    assert sum(x.startswith(PREFIX) for x in err) == len(CONTROL_NAMES), err
    for stream in (r.stdout.decode(), r.stderr.decode()):
        assert not any(c in stream for c in "\x1b\t\u202e\x85"), repr(stream)
    assert "new\\nline" in out and "esc\\x1b[2J" in out and "bidi\\u202egnp" in out
    heads = [x for x in out.splitlines() if x and not x.startswith(" ")]  # one head line per song
    assert len(heads) == len(CONTROL_NAMES), heads
    # the formats for programs keep the names exactly (JSON and CSV quote them themselves)
    r = run(tmp_path, "--model", toy_model, "-f", "jsonl", "-j", "1")
    files = {Path(json.loads(x)["file"]).name for x in r.stdout.decode().splitlines()}
    assert files == {p.name for p in tmp_path.iterdir()}


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
def test_a_decoder_message_is_not_cut_by_a_line_break_in_the_name(toy_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "cut\nhere.ogg"
    sf.write(tmp_path / "whole.ogg", tone(), SR)
    bad.write_bytes((tmp_path / "whole.ogg").read_bytes()[:300])
    r = run(bad, "--model", toy_model)
    no_traceback(r.stderr)
    (line,) = lines(r.stderr)
    assert r.returncode == 1 and line.startswith(f"{PREFIX}{tmp_path}/cut\\nhere.ogg: cannot decode audio"), line
    assert line.count("here.ogg") == 1, line  # ffmpeg's copy of the name (cut at the line break) is not kept


# --------------------------------------------------------------------------------------------
# Closed standard streams
# --------------------------------------------------------------------------------------------


def test_closed_standard_output_is_said_and_a_file_output_still_works(toy_model: Path, tmp_path: Path) -> None:
    song = good(tmp_path / "song.wav")
    close_stdout = lambda: os.close(1)  # noqa: E731
    for args in ([song], ["--list-genres"], ["--version"]):
        r = run(*args, "--model", toy_model, preexec=close_stdout, capture_output=False, stderr=subprocess.PIPE)
        no_traceback(r.stderr)
        assert r.returncode == 2 and lines(r.stderr) == [
            f"{PREFIX}standard output is closed: nothing could be written (give -o FILE, or leave it open)"], r.stderr
    out = tmp_path / "r.json"
    r = run(song, "--model", toy_model, "-o", out, preexec=close_stdout, capture_output=False, stderr=subprocess.PIPE)
    no_traceback(r.stderr)
    assert r.returncode == 0 and json.loads(out.read_text())["results"][0]["genre"] == "low"


def test_closed_standard_input_is_said(toy_model: Path, tmp_path: Path) -> None:
    good(tmp_path / "song.wav")
    r = run("-", "--model", toy_model, preexec=lambda: os.close(0))
    no_traceback(r.stderr)
    assert r.returncode == 2 and lines(r.stderr) == [f"{PREFIX}- reads audio from standard input, which is closed"]


# --------------------------------------------------------------------------------------------
# Folder scans: unreadable folders are reported, linked folders are searched once
# --------------------------------------------------------------------------------------------


#: The command with os.scandir refusing one folder with EACCES, as a folder of mode 0 does for
#: anyone but root (and as NFS with root squash does even for root).
REFUSING_SCANDIR = """
import os, sys
locked, real = sys.argv.pop(1), os.scandir
def scandir(path="."):
    if os.path.abspath(os.fsdecode(path)) == locked:
        raise PermissionError(13, "Permission denied", path)
    return real(path)
os.scandir = scandir
from genre_infer.cli import main
main(prog_name="genre-infer")
"""


@pytest.mark.parametrize("how", ["mode-0", "refused"])
def test_an_unreadable_folder_in_a_scan_is_that_folders_error(toy_model: Path, tmp_path: Path, how: str) -> None:
    music, locked = tmp_path / "music", tmp_path / "music" / "locked"
    (music / "open").mkdir(parents=True)
    locked.mkdir()
    good(music / "open" / "a.wav")
    good(locked / "b.wav")
    if how == "mode-0":
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            pytest.skip("root reads a folder of mode 0 (the 'refused' case stands in)")
        locked.chmod(0)
        command = [sys.executable, "-m", "genre_infer"]
    else:
        command = [sys.executable, "-c", REFUSING_SCANDIR, str(locked)]
    try:
        r, alone = (subprocess.run([*command, str(target), "--model", str(toy_model), "-f", "jsonl"],
                                   capture_output=True, cwd=REPO, timeout=120) for target in (music, locked))
    finally:
        locked.chmod(0o755)
    no_traceback(r.stderr)
    assert r.returncode == 1, r.stderr
    err = lines(r.stderr)
    assert err[0] == f"{PREFIX}{locked}: cannot read this folder (permission denied)", err
    assert err[-1] == "genre-infer: classified 1 of 2 files; 1 failed"
    docs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert [d.get("genre") for d in docs] == [None, "low"] and docs[0]["error"].startswith("cannot read this folder")
    assert alone.returncode == 1 and lines(alone.stderr) == [
        f"{PREFIX}{locked}: cannot read this folder (permission denied)"]


def test_linked_folders_are_searched_once_and_loops_end(toy_model: Path, tmp_path: Path) -> None:
    music, elsewhere = tmp_path / "music", tmp_path / "elsewhere"
    (music / "album").mkdir(parents=True)
    elsewhere.mkdir()
    good(music / "album" / "a.wav")
    good(elsewhere / "linked.wav")
    (music / "from-another-disk").symlink_to(elsewhere)  # followed: part of the library
    (music / "album" / "again").symlink_to(music / "album")  # a loop
    (music / "up").symlink_to(tmp_path)  # reaches music itself again
    r = run(music, "--model", toy_model, "-f", "jsonl")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    names = [Path(json.loads(x)["file"]).name for x in r.stdout.decode().splitlines()]
    assert sorted(names) == ["a.wav", "linked.wav"], names


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_pipes_and_devices_found_in_a_folder_are_not_read(toy_model: Path, tmp_path: Path, jobs: str) -> None:
    music = tmp_path / "music"
    music.mkdir()
    good(music / "a.wav")
    good(music / "b.wav")
    os.mkfifo(music / "fifo.wav")  # reading it blocks for ever: nobody writes
    (music / "zero.wav").symlink_to("/dev/zero")  # reading it fills the temporary folder's disk
    r = run(music, "--model", toy_model, "-f", "jsonl", "-j", jobs, "--force-jobs", timeout=60)
    no_traceback(r.stderr)
    assert r.returncode == 1, r.stderr
    docs = {Path(d["file"]).name: d for d in map(json.loads, r.stdout.decode().splitlines())}
    assert list(docs) == ["a.wav", "b.wav", "fifo.wav", "zero.wav"]
    assert docs["a.wav"]["genre"] == docs["b.wav"]["genre"] == "low"
    assert docs["fifo.wav"]["error"].startswith("a named pipe (FIFO), found in a folder: not read")
    assert docs["zero.wav"]["error"].startswith("a device, found in a folder: not read")
    assert sum(x.startswith(PREFIX) for x in lines(r.stderr)) == 2


# --------------------------------------------------------------------------------------------
# Outputs: names of one run that collide, are empty, or end in a slash
# --------------------------------------------------------------------------------------------


def test_a_song_called_index_keeps_its_report(toy_model: Path, tmp_path: Path) -> None:
    good(tmp_path / "index.wav")
    good(tmp_path / "other.wav")
    out = tmp_path / "reports"
    r = run(tmp_path / "index.wav", tmp_path / "other.wav", "--model", toy_model, "--html", f"{out}/", "-q")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["index-2.html", "index.html", "other.html"]
    index = (out / "index.html").read_text()
    assert 'href="index-2.html"' in index and 'href="other.html"' in index
    assert "index.wav" in (out / "index-2.html").read_text()


def test_output_options_that_name_the_same_file_are_refused(toy_model: Path, tmp_path: Path) -> None:
    song = good(tmp_path / "song.wav")
    (tmp_path / "alias.html").symlink_to(tmp_path / "page.html")
    for args in (["-o", tmp_path / "page.html", "--html", tmp_path / "page.html"],
                 ["-o", tmp_path / "alias.html", "--html", tmp_path / "page.html"],
                 ["--plot", tmp_path / "page.png", "-o", tmp_path / "./page.png"]):
        r = run(song, "--model", toy_model, *args)
        no_traceback(r.stderr)
        (line,) = lines(r.stderr)
        assert r.returncode == 2 and line.startswith(PREFIX) and "name the same file" in line, line
        assert r.stdout == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.html", "song.wav"]


def test_empty_names_are_refused(toy_model: Path, tmp_path: Path) -> None:
    from genre_infer import classify
    from genre_infer.errors import MissingFileError

    song = good(tmp_path / "song.wav")
    for option in ("--plot", "--html"):
        r = run(song, "--model", toy_model, option, "")
        assert r.returncode == 2 and lines(r.stderr) == [f"{PREFIX}{option} needs a file or folder name, got ''"]
    r = run("", song, "--model", toy_model, "-f", "jsonl")
    no_traceback(r.stderr)
    assert r.returncode == 1 and lines(r.stderr)[0] == f"{PREFIX}'': empty file name", r.stderr
    with pytest.raises(MissingFileError, match="^empty file name$"):
        classify("", model=str(toy_model))


def test_an_output_name_ending_in_a_slash_is_not_made_a_file(toy_model: Path, tmp_path: Path) -> None:
    song = good(tmp_path / "song.wav")
    for fmt in ("json", "jsonl", "text"):
        r = run(song, "--model", toy_model, "-f", fmt, "-o", f"{tmp_path}/results/")
        no_traceback(r.stderr)
        assert r.returncode == 2 and lines(r.stderr) == [
            f"{PREFIX}cannot write {tmp_path}/results/: the name ends in /, so it names a folder"], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.wav"]


def test_reports_never_write_over_an_input_through_a_link(toy_model: Path, tmp_path: Path) -> None:
    album = tmp_path / "album"
    album.mkdir()
    song, other = good(album / "song.wav"), good(album / "other.wav")
    before = {p: p.read_bytes() for p in (song, other)}
    (album / "song.html").symlink_to("song.wav")  # planted by whoever named the folder
    (album / "index.html").symlink_to("other.wav")
    r = run(album, "--model", toy_model, "--html", f"{album}/", "-f", "jsonl", "-q")
    no_traceback(r.stderr)
    assert {p: p.read_bytes() for p in (song, other)} == before
    assert r.returncode == 1 and lines(r.stderr) == [
        f"{PREFIX}{song}: cannot write {album}/song.html: it is one of the inputs ({song}) and would be overwritten",
        f"{PREFIX}cannot write {album}/index.html: it is one of the inputs ({other}) and would be overwritten; "
        "stopped after 2 of 2 files"]
    assert (album / "other.html").is_file() and len(r.stdout.decode().splitlines()) == 2
    pytest.importorskip("matplotlib")
    (album / "other.png").symlink_to("other.wav")
    r = run(song, other, "--model", toy_model, "--plot", f"{album}/", "-q")
    no_traceback(r.stderr)
    assert {p: p.read_bytes() for p in (song, other)} == before
    assert r.returncode == 1 and lines(r.stderr) == [
        f"{PREFIX}{other}: cannot write {album}/other.png: it is one of the inputs ({other}) and would be overwritten"]
    assert (album / "song.png").read_bytes().startswith(b"\x89PNG")


# --------------------------------------------------------------------------------------------
# Names the system refuses, and model paths that are not files
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option,value", [
    ("--model", "{long}.onnx"), ("--plot", "{long}.png"), ("--plot", "{long}/"), ("--html", "{long}.html"),
    ("--html", "{long}/"), ("-o", "{long}.json"), ("--html", "{file}/sub/"),
], ids=["model", "plot-file", "plot-folder", "html-file", "html-folder", "output", "html-under-a-file"])
def test_names_the_system_refuses_are_one_line(toy_model: Path, tmp_path: Path, option: str, value: str) -> None:
    if option == "--plot":
        pytest.importorskip("matplotlib")
    song = good(tmp_path / "song.wav")
    (tmp_path / "file").write_text("x")
    value = value.format(long=tmp_path / ("a" * 300), file=tmp_path / "file")  # over NAME_MAX (255)
    args = [song, option, value] if option == "--model" else [song, "--model", toy_model, option, value]
    r = run(*args)
    no_traceback(r.stderr)
    (line,) = [x for x in lines(r.stderr) if x.startswith("genre-infer:")]
    assert r.returncode in (1, 2) and line.startswith(PREFIX), r.stderr
    assert "Errno" not in line and ("too long" in line or "not a directory" in line or "no model file" in line), line


def test_model_paths_that_are_not_files_say_what_they_are(tmp_path: Path) -> None:
    song = good(tmp_path / "song.wav")
    (tmp_path / "loop.onnx").symlink_to("loop.onnx")
    (tmp_path / "broken.onnx").symlink_to("gone.onnx")
    for model, said in ((tmp_path / "loop.onnx", "is a broken symbolic link (or a loop of them)"),
                        (tmp_path / "broken.onnx", "is a broken symbolic link (or a loop of them)"),
                        ("/dev/null", "is not a regular file (a pipe or device): give the .onnx file")):
        r = run(song, "--model", model)
        no_traceback(r.stderr)
        assert r.returncode == 2 and lines(r.stderr) == [f"{PREFIX}model {str(model)!r} {said}"], r.stderr


def test_a_plot_of_a_name_the_font_lacks_prints_nothing(toy_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    songs = [good(tmp_path / "日本語の曲 🎵.wav"), good(tmp_path / "tab\there.wav")]
    r = run(*songs, "--model", toy_model, "--plot", tmp_path / "plots", "-q")
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()  # no "Glyph ... missing" warnings
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["tab\there.png", "日本語の曲 🎵.png"]


def test_output_dash_is_standard_output(toy_model: Path, tmp_path: Path) -> None:
    song = good(tmp_path / "song.wav")
    r = subprocess.run(  # in tmp_path: a file named "-" would appear there
        [sys.executable, "-m", "genre_infer", str(song), "--model", str(toy_model), "-f", "json", "-o", "-"],
        capture_output=True, cwd=tmp_path, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"][0]["genre"] == "low"
    assert not (tmp_path / "-").exists()


def test_absurd_thread_counts_are_refused_at_once(toy_model: Path, tmp_path: Path) -> None:
    from genre_infer import load_model
    from genre_infer.errors import GenreInferError

    song = good(tmp_path / "song.wav")
    r = run(song, "--model", toy_model, "--threads", 10**9, timeout=60)  # was "not a loadable ONNX model"
    no_traceback(r.stderr)
    assert r.returncode == 2 and "Invalid value for '--threads'" in r.stderr.decode(), r.stderr
    for threads in (10**9, 2.5, "2", True, 0):
        with pytest.raises(GenreInferError, match="^threads must be a whole number from 1 to 256"):
            load_model(toy_model, threads=threads)  # type: ignore[arg-type]
    assert load_model(toy_model, threads=np.int64(2)).classify(song).genre == "low"
