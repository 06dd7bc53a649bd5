"""Where results go: files whole or untouched, modes as open() gives, special files in place,
full disks, interruptions, and worker processes that never outlive the command.

The rules under test are docs/output.md's. Full-disk cases run on a small tmpfs where this
machine lets the tests mount one (root on Linux), and skip cleanly elsewhere; /dev/full too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
FORMATS = ["json", "csv", "text", "jsonl"]
LINUX = sys.platform.startswith("linux")


def cli(*args: object, umask: int | None = None, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genre_infer", *map(str, args)], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, cwd=REPO, timeout=120,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def one_error_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("genre-infer: error: "), stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    return lines[0]


def parts_in(*folders: Path) -> list[str]:
    return [p.name for f in folders for p in f.iterdir() if p.name.endswith(".part")]


# --------------------------------------------------------------------------------------------
# Modes: what a plain open() gives
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_output_files_follow_the_umask(toy_model: Path, audio_dir: Path, tmp_path: Path, fmt: str,
                                           umask: int) -> None:
    out = tmp_path / f"out.{fmt}"
    r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", out, umask=umask)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert not parts_in(tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
@pytest.mark.parametrize("fmt", FORMATS)
def test_an_existing_file_keeps_its_mode(toy_model: Path, audio_dir: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    out.write_text("old\n")
    out.chmod(0o640)
    r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", out, umask=0o077)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and "low" in out.read_text()


# --------------------------------------------------------------------------------------------
# Symbolic links and special files
# --------------------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_symlink_is_followed_and_its_target_replaced(toy_model: Path, audio_dir: Path, tmp_path: Path,
                                                      fmt: str) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "results.out"
    target.write_text("old\n")
    target.chmod(0o604)
    link = tmp_path / "links" / "out"
    link.symlink_to(target)
    r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", link)
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "low" in target.read_text() and stat.S_IMODE(target.stat().st_mode) == 0o604
    assert not parts_in(tmp_path / "real", tmp_path / "links")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_fifo_is_written_in_place(toy_model: Path, audio_dir: Path, tmp_path: Path, fmt: str) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", fifo)
    reader.join(30)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and b"low" in got[0]
    assert not parts_in(tmp_path)


@pytest.mark.skipif(not LINUX, reason="device nodes as Linux makes them")
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_device_node_is_written_in_place(toy_model: Path, audio_dir: Path, tmp_path: Path, fmt: str) -> None:
    """A private copy of /dev/null (the real one was replaced by a regular file before the fix)."""
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("cannot make a device node here (needs root)")
    r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", null)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(null.lstat().st_mode) and null.lstat().st_rdev == os.makedev(1, 3)
    assert not parts_in(tmp_path)


@pytest.mark.skipif(not os.path.exists("/dev/stdout"), reason="no /dev/stdout")
@pytest.mark.parametrize("fmt", FORMATS)
def test_dev_stdout_and_stderr_are_the_streams(toy_model: Path, audio_dir: Path, tmp_path: Path, fmt: str) -> None:
    r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", "/dev/stdout")
    assert r.returncode == 0 and "low" in r.stdout, r.stderr
    r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", "/dev/stderr")
    assert r.returncode == 0 and "low" in r.stderr and r.stdout == ""
    log = tmp_path / "log"
    log.write_text("kept\n")
    with open(log, "a") as f:  # `>> log`: what the shell appended to stays
        r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", "/dev/stdout", stdout=f)
    assert r.returncode == 0 and log.read_text().startswith("kept\n") and "low" in log.read_text()
    assert not parts_in(tmp_path)


@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="no writable /dev/shm")
def test_a_regular_file_under_dev_is_replaced_whole(toy_model: Path, audio_dir: Path) -> None:
    out = Path("/dev/shm") / f"genre-infer-test-{os.getpid()}.json"
    out.write_text("old results\n")
    try:
        r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", "json", "-o", out)
        assert r.returncode == 0, r.stderr
        assert json.loads(out.read_text())["results"][0]["genre"] == "low"
    finally:
        out.unlink()


def test_a_missing_folder_is_named_before_any_work(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    for option, name in (("--html", "r.html"), ("-o", "out.json"), ("--plot", "p.png")):
        r = cli(audio_dir / "low.wav", "--model", toy_model, option, tmp_path / "nodir" / name, "-f", "json")
        line = one_error_line(r.stderr)
        assert r.returncode == 2 and r.stdout == "", r.stderr
        assert f"folder {tmp_path / 'nodir'} does not exist" in line and "Errno" not in line, line
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Full disks
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64-KB tmpfs (root on Linux), unmounted afterwards; skips where mounting is not allowed."""
    if not LINUX or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs Linux")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode(errors='replace').strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill the disk, then give back ``leave`` bytes (whole pages)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    size = (disk / "filler").stat().st_size
    os.truncate(disk / "filler", max(0, size - leave))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_keeps_the_previous_file(toy_model: Path, audio_dir: Path, tiny_disk: Path, fmt: str) -> None:
    out = tiny_disk / f"out.{fmt}"
    out.write_text("previous good results\n")
    fill(tiny_disk)
    r = cli(audio_dir, "--model", toy_model, "-f", fmt, "-t", "-o", out, "-q")
    line = one_error_line(r.stderr)
    assert r.returncode == 1 and "no space left on device" in line.lower(), line
    if fmt == "jsonl":  # appended: the previous lines stay, then whole lines only (as many as fitted)
        text = out.read_text()
        assert text.startswith("previous good results\n") and text.endswith("\n")
        assert all(json.loads(x)["genre"] for x in text.splitlines()[1:])
    else:
        assert out.read_text() == "previous good results\n"
    assert parts_in(tiny_disk) == []


def test_jsonl_never_ends_in_half_a_line(toy_model: Path, audio_dir: Path, tiny_disk: Path) -> None:
    out = tiny_disk / "out.jsonl"
    out.write_text('{"previous": 1}\n')
    fill(tiny_disk, leave=8192)  # room for a couple of results, not for all of them
    songs = tiny_disk.parent / "songs"
    songs.mkdir()
    for i in range(40):  # about 3 KB of JSON each
        os.link(audio_dir / "change.wav", songs / f"song{i:02d}.wav")
    r = cli(songs, "--model", toy_model, "-f", "jsonl", "-o", out, "-q")
    assert r.returncode == 1 and "no space left on device" in r.stderr.lower(), r.stderr
    text = out.read_text()
    assert text.startswith('{"previous": 1}\n') and text.endswith("\n")
    lines = [json.loads(x) for x in text.splitlines()]
    assert 1 < len(lines) < 41, len(lines)  # some results fitted; the one that did not is cut off whole
    assert parts_in(tiny_disk) == []


def test_a_full_disk_for_a_report_leaves_nothing(toy_model: Path, audio_dir: Path, tiny_disk: Path) -> None:
    fill(tiny_disk)
    r = cli(audio_dir / "low.wav", "--model", toy_model, "--html", tiny_disk / "r.html", "-f", "json")
    line = one_error_line(r.stderr)
    assert r.returncode == 1 and "no space left" in line.lower() and json.loads(r.stdout)["results"]
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["filler"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("fmt", FORMATS)
def test_dev_full_gives_one_line(toy_model: Path, audio_dir: Path, fmt: str) -> None:
    with open("/dev/full", "w") as full:
        r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, stdout=full)
    line = one_error_line(r.stderr)
    assert r.returncode == 1 and "standard output: no space left on device" in line, line
    r = cli(audio_dir / "low.wav", "--model", toy_model, "-f", fmt, "-o", "/dev/full")
    line = one_error_line(r.stderr)
    assert r.returncode == 1 and "/dev/full: no space left on device" in line, line
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


# --------------------------------------------------------------------------------------------
# Interruptions
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many(audio_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("many")
    for i in range(3000):  # enough that the batch is still running when it is stopped
        os.link(audio_dir / "change.wav", folder / f"song{i:04d}.wav")
    return folder


def start(*args: object, out: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "genre_infer", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def wait_for_lines(path: Path, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {n} lines")


def wait_for_report(folder: Path, timeout: float = 60.0) -> None:
    """The batch is under way once its first report is written (a sign that needs no output file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.is_dir() and any(p.suffix == ".html" for p in folder.iterdir()):
            time.sleep(0.3)
            return
        time.sleep(0.05)
    raise AssertionError(f"no report appeared in {folder}")


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("fmt", ["json", "csv", "text"])
def test_an_interrupted_run_leaves_the_previous_file(toy_model: Path, many: Path, tmp_path: Path, fmt: str,
                                                     sig: int, code: int) -> None:
    out, reports = tmp_path / f"out.{fmt}", tmp_path / "reports"
    out.write_text("previous good results\n")
    proc = start(many, "--model", toy_model, "-f", fmt, "-o", out, "-q", "-j", "1", "--html", reports,
                 "--html-audio", "link")
    wait_for_report(reports)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert out.read_text() == "previous good results\n"
    assert b"left as it was" in err and b"Traceback" not in err
    assert parts_in(tmp_path, reports) == []


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_jsonl_rerun_appends_whole_lines(toy_model: Path, many: Path, tmp_path: Path, sig: int,
                                                        code: int) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"previous": 1}\n{"previous": 2}')  # someone else's file, without its last newline
    proc = start(many, "--model", toy_model, "-f", "jsonl", "-o", out, "-q", "-j", "1")
    wait_for_lines(out, 5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    text = out.read_text()
    assert text.startswith('{"previous": 1}\n{"previous": 2}\n') and text.endswith("\n")
    lines = [json.loads(x) for x in text.splitlines()]
    assert 5 <= len(lines) < 3002 and all(x.get("genre") == "low" or "previous" in x for x in lines)
    assert b"finished results were kept" in err


def test_json_on_stdout_says_it_was_interrupted(toy_model: Path, many: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = start(many, "--model", toy_model, "-f", "json", "-q", "-j", "1", "--html", reports, "--html-audio", "link")
    wait_for_report(reports)
    proc.send_signal(signal.SIGINT)
    outs, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    doc = json.loads(outs)
    assert doc["interrupted"] is True and 0 < len(doc["results"]) < 3000
    r = cli(many / "song0000.wav", "--model", toy_model, "-f", "json")
    assert json.loads(r.stdout)["interrupted"] is False


# --------------------------------------------------------------------------------------------
# Worker processes never outlive the command
# --------------------------------------------------------------------------------------------


def children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not LINUX, reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_end_when_the_command_dies(toy_model: Path, many: Path, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "out.jsonl"
    proc = start(many, "--model", toy_model, "-f", "jsonl", "-o", out, "-q", "-j", "2")
    wait_for_lines(out, 3)
    kids = children(proc.pid)
    assert len(kids) >= 2, kids  # two workers (and the resource tracker)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(alive(k) for k in kids):
        time.sleep(0.1)
    assert not [k for k in kids if alive(k)], "worker processes outlived the command"


# --------------------------------------------------------------------------------------------
# --jobs
# --------------------------------------------------------------------------------------------


def test_jobs_are_capped_at_the_cores_unless_forced(toy_model: Path, audio_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from genre_infer import cli as cli_mod

    monkeypatch.setattr(cli_mod, "_usable_cores", lambda: 2)
    cpu = ["CPUExecutionProvider"]
    assert cli_mod.job_count("32", 1000, cpu) == 2 and cli_mod.job_count("32", 1000, cpu, force=True) == 32
    assert cli_mod.job_count("2", 1000, cpu) == 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    files = [audio_dir / "low.wav", audio_dir / "high.flac"]
    r = cli(*files, "--model", toy_model, "-f", "jsonl", "-j", str(cores + 30))
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 2
    assert f"--jobs {cores + 30} is more than the {cores} usable cores: using {cores}" in r.stderr
    r = cli(*files, "--model", toy_model, "-f", "jsonl", "-j", str(cores + 1), "--force-jobs", "-q")
    assert r.returncode == 0 and r.stderr == ""


# --------------------------------------------------------------------------------------------
# The writer itself
# --------------------------------------------------------------------------------------------


def test_write_file_refuses_with_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    from genre_infer.errors import OutputError
    from genre_infer.outfile import open_sink, write_file

    for path, words in [("", "empty file name"), (tmp_path, "it is a folder"),
                        (tmp_path / "none" / "x.json", "does not exist"),
                        (tmp_path / ("n" * 300), "file name too long")]:
        with pytest.raises(OutputError, match=words) as err:
            write_file(path, "x")
        assert "\n" not in str(err.value) and "Errno" not in str(err.value)
    out = tmp_path / "kept.json"
    out.write_text("previous")
    sink = open_sink(out)
    sink.write("half a docu")
    sink.discard()
    assert out.read_text() == "previous" and sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"]
    write_file(tmp_path / ("m" * 250), "long names get a short temporary name")
    assert (tmp_path / ("m" * 250)).read_text().startswith("long names")


def test_an_output_that_is_an_input_is_refused(toy_model: Path, audio_dir: Path, tmp_path: Path) -> None:
    song = tmp_path / "song.wav"
    shutil.copy(audio_dir / "low.wav", song)
    (tmp_path / "alias.wav").symlink_to(song)
    before = song.read_bytes()
    for option in ("-o", "--html", "--plot"):
        for target in (song, tmp_path / "alias.wav"):
            r = cli(song, "--model", toy_model, option, target)
            line = one_error_line(r.stderr)
            assert r.returncode == 2 and "is one of the inputs" in line, line
    assert song.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["alias.wav", "song.wav"]


def test_the_command_in_a_callers_process_leaves_its_signal_handlers(toy_model: Path, audio_dir: Path) -> None:
    """main() may run inside someone else's process (CliRunner, a thread): SIGTERM/SIGHUP are
    handled while it runs and put back afterwards; outside the main thread none are set."""
    from click.testing import CliRunner

    from genre_infer.cli import main

    before = signal.getsignal(signal.SIGTERM)
    r = CliRunner().invoke(main, [str(audio_dir / "low.wav"), "--model", str(toy_model), "-f", "jsonl"])
    assert r.exit_code == 0 and signal.getsignal(signal.SIGTERM) == before
    got: dict[str, Any] = {}
    t = threading.Thread(target=lambda: got.update(r=CliRunner().invoke(main, [str(audio_dir / "low.wav"),
                                                                             "--model", str(toy_model)])))
    t.start()
    t.join(60)
    assert got["r"].exit_code == 0 and got["r"].exception is None, got["r"].output
