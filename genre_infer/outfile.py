"""Put output into a path safely: a whole document or nothing, with the mode ``open()`` gives.

The rules (docs/output.md states them for users):

- A regular file, or a path that does not exist yet, is written to a temporary file
  ``.NAME.XXXXXXXX.part`` in its folder (for a symbolic link, in the folder of the file it
  points to, which is the file replaced) and renamed over it in one step by
  :meth:`Sink.commit`. Until then the previous file is untouched; when writing fails (no
  space left, ...) or the run stops first, :meth:`Sink.discard` removes the temporary file
  and the previous file stays as it was.
- The new file gets the mode a plain ``open()`` would give it: an existing file keeps its
  mode (and, for root, its owner); a new one gets ``0666`` less the umask.
- Anything that is not a regular file (``/dev/null``, a FIFO, a socket, a terminal), and
  every path that names one of the process's descriptors (``/dev/stdout``, ``/dev/fd/1``,
  ``/proc/self/fd/1``), is written in place, as a shell redirection would (appending to a
  regular file behind a descriptor, as the shell opened it): it is never replaced.
- Appending (:func:`open_sink` with ``append=True``; JSONL): each piece goes in with one
  write; a piece that cannot be written whole is cut off again, so the file never ends in
  half a line, and what was there before stays.

Every failure is an :class:`~genre_infer.errors.OutputError` whose message names the path
and what is wrong; no temporary file is left behind.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import sys

from .errors import OutputError

__all__ = ["Sink", "open_sink", "write_file", "write_bytes", "os_reason"]

#: Paths that name one of this process's descriptors: written in place, whatever they lead to.
DESCRIPTOR_PATHS = re.compile(r"/dev/(stdout|stderr|fd/\d+)|/proc/(self|thread-self|\d+)(/task/\d+)?/fd/\d+")


def os_reason(exc: BaseException) -> str:
    """A short, lower-case reason for an ``OSError`` (``"no space left on device"``)."""
    if isinstance(exc, OSError):
        text = exc.strerror or (errno.errorcode.get(exc.errno or 0) if exc.errno else None) or str(exc)
    else:
        text = str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _shown(path: str | os.PathLike[str]) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _in_place(path: str) -> bool:
    if sys.platform != "win32" and DESCRIPTOR_PATHS.fullmatch(os.path.abspath(path)):
        return True
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return False  # does not exist (or cannot be looked at): the checks below say why
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


class Sink:
    """Text going to one path; made by :func:`open_sink`.

    Call :meth:`write` for each piece, then :meth:`commit` (the document is complete) or
    :meth:`discard` (it is not: the previous file stays as it was).
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        self.path = os.fspath(path)
        self.shown = _shown(self.path)
        self._tmp: str | None = None
        self._target = self.path
        self._regular = True
        self._mode: int | None = None
        self._owner: tuple[int, int] | None = None
        self._fd = -1
        if not self.path:
            raise OutputError("cannot write to an empty file name")
        if os.path.isdir(self.path):
            raise OutputError(f"cannot write {self.shown}: it is a folder")
        if self.path.endswith(("/", os.sep)):  # not made a file named like the folder meant
            raise OutputError(f"cannot write {self.shown}: the name ends in {os.sep}, so it names a folder")
        if append or _in_place(self.path):
            self._open_in_place(append)
        else:
            self._open_temporary()
        #: Written as it comes (appended, or a device, FIFO or descriptor), not replaced at the end.
        self.in_place = self._tmp is None

    # -- opening -------------------------------------------------------------------------

    def _fail(self, exc: BaseException, folder: str | None = None) -> OutputError:
        folder = folder if folder is not None else (os.path.dirname(os.path.abspath(self._target)) or os.sep)
        missing = isinstance(exc, FileNotFoundError) or (isinstance(exc, OSError) and exc.errno == errno.ENOENT)
        if missing and not os.path.isdir(folder):
            return OutputError(f"cannot write {self.shown}: folder {_shown(folder)} does not exist")
        if isinstance(exc, NotADirectoryError):
            return OutputError(f"cannot write {self.shown}: a part of {_shown(folder)} is not a folder")
        if isinstance(exc, PermissionError):
            return OutputError(f"cannot write {self.shown}: permission denied")
        if isinstance(exc, ValueError):
            return OutputError(f"cannot write {self.shown}: not a usable file name ({exc})")
        return OutputError(f"cannot write {self.shown}: {os_reason(exc)}")

    def _open_in_place(self, append: bool) -> None:
        # O_APPEND: a shell's `>>` file behind /dev/stdout keeps its lines; devices ignore it
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
        try:
            self._fd = os.open(self.path, flags, 0o666)
            self._regular = stat.S_ISREG(os.fstat(self._fd).st_mode)
        except (OSError, ValueError) as exc:
            raise self._fail(exc) from None
        if append and self._regular:
            self._end_last_line()

    def _end_last_line(self) -> None:
        """A file that ends in half a line (someone else's) gets its newline first."""
        try:
            size = os.fstat(self._fd).st_size
            if size == 0:
                return
            with open(self.path, "rb") as f:
                f.seek(size - 1)
                last = f.read(1)
        except OSError:
            return  # not readable: appended as it is
        if last not in (b"\n", b""):
            self.write("\n")

    def _open_temporary(self) -> None:
        self._target = os.path.realpath(self.path)  # a symlink's target is what gets replaced
        folder = os.path.dirname(self._target) or os.curdir
        try:
            st = os.stat(self._target)
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            raise self._fail(exc, folder) from None
        else:
            self._mode, self._owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
        name = os.path.basename(self._target)
        if len(os.fsencode(name)) > 200:  # leave room for the prefix and suffix within NAME_MAX
            name = name[:40]
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        for _ in range(100):
            tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.part")
            try:
                # 0o666 through the umask (and a default ACL), exactly as open() would create it
                self._fd = os.open(tmp, flags, 0o666)
            except FileExistsError:
                continue
            except (OSError, ValueError) as exc:
                raise self._fail(exc, folder) from None
            self._tmp = tmp
            break
        else:  # pragma: no cover - a hundred collisions of 32 random bits
            raise OutputError(f"cannot write {self.shown}: cannot create a temporary file")
        try:
            if self._owner is not None and hasattr(os, "fchown") and os.geteuid() == 0:
                os.fchown(self._fd, *self._owner)
            if self._mode is not None and hasattr(os, "fchmod"):
                os.fchmod(self._fd, self._mode)
        except OSError:
            pass  # the file is still ours to write; its mode is the best we could do

    # -- writing -------------------------------------------------------------------------

    def write(self, text: str) -> None:
        """Add ``text`` (UTF-8); raise :class:`OutputError`, with the piece cut off again, when it fails."""
        self.write_bytes(text.encode("utf-8", "backslashreplace"))

    def write_bytes(self, raw: bytes) -> None:
        """Add ``raw`` as it is (see :meth:`write`)."""
        data = memoryview(raw)
        if self._fd < 0:
            raise OutputError(f"cannot write {self.shown}: already closed")
        size = None
        if self._regular and self._tmp is None:
            try:
                size = os.fstat(self._fd).st_size
            except OSError:
                size = None
        try:
            while data:
                n = os.write(self._fd, data)
                data = data[n:]
        except OSError as exc:
            if size is not None:  # appending: never leave half a line
                try:
                    os.ftruncate(self._fd, size)
                except OSError:
                    pass
            self.discard()
            raise self._fail(exc) from None

    def commit(self) -> None:
        """The document is complete: move it into place (or just close a file written in place)."""
        if self._fd < 0:
            return
        try:
            if self._tmp is not None:
                os.fsync(self._fd)  # the rename must not reach the disk before the data
            os.close(self._fd)
        except OSError as exc:
            self._fd = -1
            self.discard()
            raise self._fail(exc) from None
        self._fd = -1
        if self._tmp is not None:
            try:
                os.replace(self._tmp, self._target)
            except OSError as exc:
                self.discard()
                raise self._fail(exc) from None
            self._tmp = None

    def discard(self) -> None:
        """Drop an unfinished document: the temporary file goes, the previous file stays. Never raises."""
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1
        if self._tmp is not None:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
            self._tmp = None


def open_sink(path: str | os.PathLike[str], *, append: bool = False) -> Sink:
    """A :class:`Sink` for ``path``: replaced whole at :meth:`Sink.commit`, or appended to.

    Raises
    ------
    OutputError
        The path cannot be written (missing folder, permission denied, a folder, ...).
    """
    return Sink(path, append=append)


def write_file(path: str | os.PathLike[str], text: str) -> None:
    """Write a whole document to ``path`` by the rules above (all or nothing).

    Raises
    ------
    OutputError
        It cannot be written; the previous file is unchanged and nothing is left behind.
    """
    write_bytes(path, text.encode("utf-8", "backslashreplace"))  # as Sink.write encodes


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """:func:`write_file` for bytes (a PNG, a PDF)."""
    sink = open_sink(path)
    try:
        sink.write_bytes(data)
        sink.commit()
    except BaseException:
        sink.discard()
        raise
