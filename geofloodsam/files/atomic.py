"""Atomic file writes: every output appears whole or not at all, with one file mode.

A file is written under a temporary name in its target folder (same file system) and renamed
into place with :func:`os.replace`. Temporary files are made by :func:`tempfile.mkstemp`,
which creates them 0600; they are given :func:`default_file_mode` (0666 less the umask, what
``open()`` would give) before the rename, so results on shared storage stay readable to the
other users and Dask workers that a plain ``open()`` would have let read them.

:func:`replace_all` moves a *set* of finished files into place so that a failure part-way
leaves every earlier file at each target exactly as it was. Every target is checked before
anything moves (a folder in the way, a folder that cannot be written, another user's file in
a sticky folder such as ``/tmp``), and a move that fails all the same is reported as a
:class:`~geofloodsam.errors.GeofloodsamError` once the earlier files are back in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from geofloodsam.errors import GeofloodsamError


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


def check_targets(targets: Sequence[Path]) -> None:
    """One-line error if any of ``targets`` could not be replaced by a renamed file.

    Checked: a folder (or anything but a file or link) in the way, a parent folder that is
    missing or not writable, and in a sticky folder (``/tmp``, shared drop folders) an existing
    file that belongs to another user, which only its owner may replace.
    """
    for dst in targets:
        dst = Path(dst)
        parent = dst.parent
        if dst.is_dir() and not dst.is_symlink():
            raise GeofloodsamError(
                f"cannot write {dst}: a folder of that name is in the way; move or remove it, "
                "or choose another output folder. Nothing was changed."
            )
        if dst.exists() and not dst.is_file() and not dst.is_symlink():
            raise GeofloodsamError(
                f"cannot write {dst}: something that is not a file is in the way; move or "
                "remove it, or choose another output folder. Nothing was changed."
            )
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise GeofloodsamError(
                f"cannot write {dst}: folder {parent} is not writable; fix its permissions or "
                "choose another output folder. Nothing was changed."
            )
        if dst.exists() or dst.is_symlink():
            info, pinfo = dst.lstat(), parent.stat()
            uid = os.geteuid()
            sticky = bool(pinfo.st_mode & 0o1000)
            if sticky and uid != 0 and info.st_uid != uid and pinfo.st_uid != uid:
                raise GeofloodsamError(
                    f"cannot replace {dst}: it belongs to another user and {parent} is a "
                    "sticky (shared) folder; choose another output folder or ask its owner to "
                    "remove it. Nothing was changed."
                )


def replace_all(moves: Sequence[tuple[Path, Path]]) -> None:
    """Move each finished ``(source, target)`` into place, all or nothing.

    Sources must be on the targets' file systems (write them in the target folder). Every
    target is first checked (:func:`check_targets`). An existing target is set aside under a
    hidden name and restored if a later move fails, so a failed set leaves every earlier file
    exactly as it was; the set-aside copies are deleted only once the whole set is in place.
    A move that fails is a :class:`~geofloodsam.errors.GeofloodsamError` naming the target.
    """
    check_targets([Path(dst) for _, dst in moves])
    aside: list[tuple[Path, Path]] = []  # (target, its set-aside copy)
    placed: list[Path] = []
    current: Path | None = None
    try:
        for src, dst in moves:
            current = Path(dst)
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
    except BaseException as exc:
        for dst in placed:
            with contextlib.suppress(OSError):
                dst.unlink()
        for dst, backup in reversed(aside):
            with contextlib.suppress(OSError):
                os.replace(backup, dst)
        if isinstance(exc, OSError):
            raise GeofloodsamError(
                f"cannot write {current} ({exc.strerror or type(exc).__name__}): the previous "
                "outputs were left as they were; free space or fix the folder, then run again."
            ) from None
        raise
    for _, backup in aside:
        with contextlib.suppress(OSError):
            backup.unlink()
