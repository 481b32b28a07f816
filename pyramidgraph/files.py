"""Reading the files a user points at: specs, converter configs and checkpoints.

Every read goes through :func:`read_regular_file`, which refuses at once what is not a regular
file (a FIFO would block the process forever, ``/dev/zero`` or ``/dev/urandom`` would never
end) and never reads more than a limit, whatever the file claims its size is (``/proc`` files
report 0). The file is opened without blocking and checked on the open descriptor, so a FIFO is
not waited on and a file swapped between the check and the read is still the one checked.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["FileRefused", "read_regular_file", "looks_like_file", "shorten"]


MAX_CONFIG_BYTES = 16 << 20
"""Largest converter config (JSON) read; a config is a few kilobytes."""
MAX_CHECKPOINT_BYTES = 4 << 30
"""Largest checkpoint read by ``pyramidgraph convert`` (a neck's weights are megabytes)."""


class FileRefused(OSError):
    """A path that is not a regular file, or a file larger than the limit (``too_large``);
    ``str()`` says which."""

    def __init__(self, message: str, too_large: bool = False):
        super().__init__(message)
        self.too_large = too_large


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def read_regular_file(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of ``path`` (links followed), at most ``limit`` of them.

    Raises :class:`FileRefused` for anything but a regular file, or for more than ``limit``
    bytes, and ``OSError`` (with ``strerror``) for a file that cannot be opened."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise FileRefused(f"{kind}, not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileRefused(f"larger than {limit} bytes", too_large=True)
        return b"".join(chunks)
    finally:
        os.close(fd)


def shorten(name: str, limit: int = 80) -> str:
    """``name`` for a message: as is up to ``limit`` characters, else its start and its length
    (a spec string pasted where a path goes must not fill the screen)."""
    return name if len(name) <= limit else f"{name[:60]}... ({len(name)} characters)"


def looks_like_file(text: str) -> bool:
    """Whether ``text`` names something on disk; False (not an exception) for text no file
    can be named by: longer than a file name may be, or holding a NUL byte."""
    if "\n" in text or "\0" in text:
        return False
    try:
        return Path(text).exists()
    except (OSError, ValueError):
        return False
