"""The command on a terminal (a pseudo-terminal): the progress bar never glues itself to a line."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from terminal import run_on_pty, screen

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def batch(audio_dir: Path, tmp_path: Path) -> Path:
    """Eight songs and two broken files, so that results and error lines come between bar updates."""
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(4):
        shutil.copy(audio_dir / "low.wav", folder / f"a{i}-low.wav")
        shutil.copy(audio_dir / "high.flac", folder / f"b{i}-high.flac")
    (folder / "c-broken.mp3").write_bytes(b"\x00\x01garbage" * 100)
    (folder / "c-empty.wav").write_bytes(b"")
    return folder


def _genre_infer(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "genre_infer", *map(str, args)]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_results_and_errors_start_their_own_lines_under_the_bar(toy_model: Path, batch: Path, jobs: str) -> None:
    rc, raw = run_on_pty(_genre_infer(batch, "--model", toy_model, "-j", jobs), cwd=REPO, columns=100)
    assert rc == 1, raw
    assert "classifying" in raw, "no progress bar was drawn: the test does not test it"
    lines = [line.rstrip() for line in screen(raw)]
    shown = [line for line in lines if line]
    headers = [line for line in shown if not line.startswith(" ") and "(0:0" in line]
    errors = [line for line in shown if "error:" in line]
    assert len(headers) == 8 and all(line.startswith(str(batch)) for line in headers), shown
    assert len(errors) == 2 and all(line.startswith("genre-infer: error: ") for line in errors), shown
    assert not any("classifying" in line for line in shown), f"the bar was left on screen: {shown}"
    assert shown[-1] == "genre-infer: classified 8 of 10 files; 2 failed"


def test_the_bar_fits_a_narrow_terminal(toy_model: Path, batch: Path) -> None:
    """A bar wider than the terminal wraps, and ``\\r`` cannot wipe the line above."""
    rc, raw = run_on_pty(_genre_infer(batch, "--model", toy_model, "-j", "1"), cwd=REPO, columns=40)
    assert rc == 1
    drawn = [part.split("\x1b[K")[-1] for part in raw.split("\r") if "classifying" in part]
    assert drawn and max(len(d.rstrip("\n")) for d in drawn) < 40, drawn


def test_results_to_a_file_leave_only_the_bar_on_the_terminal(toy_model: Path, batch: Path, tmp_path: Path) -> None:
    out = tmp_path / "stdout.txt"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        rc, raw = run_on_pty(_genre_infer(batch, "--model", toy_model, "-j", "1"), cwd=REPO, stdout=fd)
    finally:
        os.close(fd)
    assert rc == 1
    text = out.read_text()
    assert "\x1b" not in text and "\r" not in text and text.count("  genre:    ") == 8
    shown = [line.rstrip() for line in screen(raw) if line.strip()]
    assert [line.split(":")[1].strip() for line in shown[:2]] == ["error", "error"], shown
    assert shown[-1].startswith("genre-infer: classified 8 of 10")


def test_quiet_or_one_file_draws_no_bar(toy_model: Path, batch: Path, audio_dir: Path) -> None:
    _, raw = run_on_pty(_genre_infer(batch, "--model", toy_model, "-q"), cwd=REPO)
    assert "classifying" not in raw and "\x1b[" not in raw
    _, raw = run_on_pty(_genre_infer(audio_dir / "low.wav", "--model", toy_model), cwd=REPO)
    assert "classifying" not in raw and "\x1b[" not in raw
    _, raw = run_on_pty(_genre_infer(batch, "--model", toy_model), cwd=REPO, env={"TERM": "dumb"})
    assert "\x1b[" not in raw  # a terminal that cannot erase a line gets no bar


def test_the_bar_line_is_shorter_than_any_terminal_width() -> None:
    import io

    from genre_infer.progress import ProgressBar

    for total, done in ((3, 1), (12345, 6789), (10, 10)):
        bar = ProgressBar(total, io.StringIO())
        bar.done = done
        for columns in range(1, 200):
            line = bar.line(columns)
            assert len(line) < columns or line == "", (columns, line)
        assert f"{done}/{total}" in bar.line(100) and "[" in bar.line(100)
