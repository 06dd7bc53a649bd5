"""Run a command on a pseudo-terminal and read what a person would see on the screen."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

_CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def run_on_pty(cmd: list[str], *, cwd: Path, columns: int = 100, timeout: float = 120.0,
               stdout: int | None = None, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``cmd`` with its standard streams on a pty ``columns`` wide (``stdout``: another file
    descriptor for standard output instead); return its exit code and everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    full_env = {**os.environ, "TERM": "xterm", "COLUMNS": str(columns), **(env or {})}
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=slave, stdout=slave if stdout is None else stdout, stderr=slave,
                            env=full_env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise TimeoutError(f"{cmd} ran past {timeout} s")
        rc = proc.wait(timeout=30)
    finally:
        os.close(master)
    return rc, b"".join(chunks).decode("utf-8", "replace")


def screen(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw``: ``\\r`` returns to column 0, ``\\n`` starts a new
    line, ``ESC [ K`` erases to the end of the line (``ESC [ 2K`` the whole line); other
    escape sequences (cursor visibility) draw nothing."""
    lines, col, i = [""], 0, 0
    while i < len(raw):
        m = _CSI.match(raw, i)
        if m:
            if m.group(2) == "K":
                lines[-1] = "" if m.group(1) == "2" else lines[-1][:col]
            i = m.end()
            continue
        c = raw[i]
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append("")
            col = 0
        else:
            line = lines[-1].ljust(col)
            lines[-1] = line[:col] + c + line[col + 1:]
            col += 1
        i += 1
    return lines
