"""Atomic file writes: every output appears whole or not at all, with one file mode.

A file is written under a temporary name in its target folder (same file system) and renamed
into place with :func:`os.replace`. Temporary files are made by :func:`tempfile.mkstemp`,
which creates them 0600; they are given :func:`default_file_mode` (0666 less the umask, what
``open()`` would give) before the rename, so results on shared storage stay readable to the
other users and Dask workers that a plain ``open()`` would have let read them.

:func:`replace_all` moves a *set* of finished files into place so that a failure part-way
leaves every earlier file at each target exactly as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any


def default_file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (0666 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temporary_path(path: str | Path, suffix: str = ".tmp") -> Path:
    """A new, empty hidden file beside ``path`` (``.NAME.XXXX.tmp``), for writing into."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def atomic_write(path: str | Path, write: Callable[[Path], Any], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)``, then rename the finished file onto ``path``.

    The parent folder is created if needed. On any error the temporary file is removed and
    ``path`` is left as it was. ``suffix`` is the temporary file's (some writers pick the
    format from it, e.g. ``.png``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path, suffix)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open()`` for writing that lands on ``path`` only if the ``with`` block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def replace_all(moves: Sequence[tuple[Path, Path]]) -> None:
    """Move each finished ``(source, target)`` into place, all or nothing.

    Sources must be on the targets' file systems (write them in the target folder). An
    existing target is first set aside under a hidden name and restored if a later move
    fails, so a failed set leaves every earlier file exactly as it was; the set-aside copies
    are deleted only once the whole set is in place.
    """
    aside: list[tuple[Path, Path]] = []  # (target, its set-aside copy)
    placed: list[Path] = []
    try:
        for src, dst in moves:
            if dst.exists() or dst.is_symlink():
                backup = temporary_path(dst, ".old")
                try:
                    os.replace(dst, backup)
                except BaseException:
                    backup.unlink(missing_ok=True)
                    raise
                aside.append((dst, backup))
            os.replace(src, dst)
            placed.append(dst)
    except BaseException:
        for dst in placed:
            with contextlib.suppress(OSError):
                dst.unlink()
        for dst, backup in reversed(aside):
            with contextlib.suppress(OSError):
                os.replace(backup, dst)
        raise
    for _, backup in aside:
        with contextlib.suppress(OSError):
            backup.unlink()
