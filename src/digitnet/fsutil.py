"""Writing files so that a fault of the machine never leaves half a file.

Every file digitnet writes goes through :func:`atomic_write` (or
:func:`atomic_path` for writers that want a path, such as matplotlib's
``savefig``): the bytes go to a temporary file in the target's folder, are
flushed to disk (``fsync``), and the temporary file is renamed over the
target. A rename within one folder is atomic, so a reader sees the old file
or the new one, never a mix; when anything fails the temporary file is
removed and the old file, if any, is untouched. A character device or pipe (``/dev/null``,
``/dev/full``, ``/dev/stdout``) is written into, not replaced; other special
files (a block device, a socket) are refused.

An ``OSError`` (read-only file system, full disk, a parent that is missing
or is a file, no permission) becomes a :class:`DigitnetError` whose one line
says which path could not be written and why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import DigitnetError

# Plain-words reasons for the errors a user can fix; others fall back to strerror.
_REASONS = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a parent of it is a file, not a folder",
    errno.ENOENT: "its folder does not exist",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def describe(exc: OSError) -> str:
    """A short reason for ``exc`` ("the file system is read-only", ...)."""
    return _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def write_error(path, exc: OSError, what: str = "") -> DigitnetError:
    """The one-line error for failing to write ``path``."""
    label = f"{what} {path}" if what else str(path)
    return DigitnetError(f"cannot write {label}: {describe(exc)}")


def make_dirs(path, what: str = "") -> Path:
    """``mkdir -p path`` with a one-line error instead of an ``OSError``."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    if path.exists() and not path.is_dir():
        raise DigitnetError(f"cannot write into {label}: it is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc, what) from None
    return path


@contextlib.contextmanager
def atomic_path(path, what: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends, it replaces ``path``.

    The writer inside the block writes the whole file to the yielded path. On
    any exception the temporary file is removed and ``path`` is left as it
    was; an ``OSError`` is raised again as a :class:`DigitnetError`.

    ``what`` names the file in errors (``"--show"``, ``"model"``).
    """
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    if path.is_dir():
        raise DigitnetError(f"cannot write {label}: it is a folder; give a file name")
    if path.parent.exists() and not path.parent.is_dir():
        raise DigitnetError(f"cannot write {label}: {path.parent} is a file, not a folder")
    if is_stream(path):
        # /dev/null, /dev/full, a terminal, a pipe (/dev/stdout): renaming a file over one would
        # replace the device itself (as root, /dev/null would become a plain file), so the writer
        # writes into it, as a shell redirection does
        try:
            yield path
        except OSError as exc:
            raise write_error(path, exc, what) from None
        return
    if path.exists() and not path.is_file():
        raise DigitnetError(f"cannot write {label}: it is not a regular file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc, what) from None
    try:
        # the temporary name ends with the target's suffix: writers that pick the format from it
        # (matplotlib, Pillow) write the right one
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    except OSError as exc:
        raise write_error(path, exc, what) from None
    tmp = Path(tmp_name)
    try:
        try:
            # mkstemp makes the file private (0600); give it the permissions a plain open() would
            os.fchmod(fd, 0o666 & ~_umask())
        finally:
            os.close(fd)
        yield tmp
        with open(tmp, "rb+") as f:  # the writer may have closed its handle without syncing
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise write_error(path, exc, what) from None
        raise


def open_regular(path):
    """``open(path, "rb")`` for a regular file only.

    A pipe or a device given as a file (a FIFO, ``/dev/zero``) would block
    the reader or never end: it is refused with a one-line error. The file is
    opened without blocking, so opening a pipe cannot hang, and checked on the
    open descriptor, so it cannot be swapped in between. A folder raises
    ``IsADirectoryError``, as ``open`` does, for the caller's own message.
    """
    nonblock = getattr(os, "O_NONBLOCK", 0)  # POSIX; elsewhere opening does not wait for a writer
    fd = os.open(path, os.O_RDONLY | nonblock | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise DigitnetError(f"{path}: not a regular file (a pipe or a device?)")
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_stream(path) -> bool:
    """Whether ``path`` is a character device or a pipe (``/dev/null``, ``/dev/stdout``): written into, not replaced."""
    path = Path(path)
    return path.is_char_device() or path.is_fifo()


def check_writable(path, what: str = "") -> None:
    """Fail now, with the reason, if ``path`` could not be written later (before hours of training).

    Creates the folder if needed and a temporary file in it, then removes the file.
    """
    try:
        with atomic_path(path, what):
            raise _Probe
    except _Probe:
        pass


class _Probe(Exception):
    """Ends :func:`check_writable`'s block: the temporary file was made, so writing works."""


def _umask() -> int:
    """The process's umask, read without setting it where the system allows (setting it races with threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, data: bytes | str, what: str = "") -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns the path."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path, what) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


__all__ = ["atomic_path", "atomic_write", "check_writable", "describe", "is_stream", "make_dirs", "write_error"]
