"""A full disk as one line: which folder ran out of space, how much was free and needed.

Writers fail in many ways when a file system fills up: ``OSError`` with ``ENOSPC`` (Python,
``torch.save``), a short write without an error number (``numpy.save``: "N requested and M
written"), GDAL's "Write failed" (rasterio), SQLite's "database or disk is full" (the
GeoPackage driver), torch's "unexpected pos". :func:`reporting_full_disk` wraps the writing
part of a run: any such failure, in any of the folders the run writes to, becomes one
:class:`~geofloodsam.errors.GeofloodsamError` naming the folder, the space free there and
the space the run needs there; the caller's clean-up then runs as on any error.
:func:`holding_native_stderr` keeps what native libraries print straight to the terminal
(libtiff's "_tiffWriteProc: No space left on device.") off the screen when the block fails.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from geofloodsam.errors import GeofloodsamError

#: a folder with less free space than this, right after a failed write, is taken as full
LOW_SPACE_BYTES = 1 << 20
#: messages of writers that ran out of space
_SPACE_TEXT = re.compile(
    r"no space left|disk space|disk is full|quota|requested and \d+ written|unexpected pos|"
    r"file write failed|write failed|short write",
    re.IGNORECASE,
)
#: modules whose exceptions can be a failed write (besides OSError)
_WRITER_MODULES = ("rasterio", "pyogrio", "fiona", "sqlite3", "torch", "numpy")


def free_bytes(folder: Path) -> int | None:
    """Bytes free for this user in ``folder``'s file system (its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def folder_bytes(folder: Path) -> int:
    """Bytes in the files under ``folder``."""
    total = 0
    for path in Path(folder).rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _is_writer_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, RuntimeError)):  # RuntimeError: torch.save, OpenVINO's I/O
        return True
    module = type(exc).__module__ or ""
    return module.split(".")[0] in _WRITER_MODULES


def _message_chain(exc: BaseException) -> str:
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " ".join(parts)


def _inside(path: str | os.PathLike | None, folder: Path) -> bool:
    if path is None:
        return False
    try:
        return Path(os.fspath(path)).absolute().is_relative_to(folder.absolute())
    except (TypeError, ValueError):
        return False


def full_folder(exc: BaseException, folders: Sequence[Path]) -> Path | None:
    """The folder of ``folders`` that ``exc`` says is on a full file system, or None.

    Out of space: ``ENOSPC`` / ``EDQUOT``; a writer's error (OSError, RuntimeError, rasterio,
    pyogrio, SQLite, torch) whose message says so; or any error after which a folder has
    under :data:`LOW_SPACE_BYTES` free (GDAL, for one, may only fail later, on reading back
    a file it could not write). The folder named is the one holding the file that failed,
    else the one with the least space free.
    """
    folders = [Path(f) for f in dict.fromkeys(folders)]
    if not folders:
        return None
    code = getattr(exc, "errno", None)
    space_error = code in (errno.ENOSPC, errno.EDQUOT) or (
        _is_writer_error(exc) and bool(_SPACE_TEXT.search(_message_chain(exc)))
    )
    free = {f: free_bytes(f) for f in folders}
    low = [f for f in folders if free[f] is not None and free[f] < LOW_SPACE_BYTES]
    named = [f for f in folders if _inside(getattr(exc, "filename", None), f)]
    if named:
        candidates = named if space_error or set(named) & set(low) else []
    else:
        candidates = folders if space_error else low
    if not candidates:
        return None
    return min(candidates, key=lambda f: free[f] if free[f] is not None else 0)


#: what to do about a full output folder
OUTPUT_FIX = "free some space or choose another output folder, then run again"


def full_disk_message(
    folder: Path, exc: BaseException, needed: int | None, what: str, fix: str = OUTPUT_FIX,
    written: int | None = None,
) -> str:
    """The one line for a full file system under ``folder``: ``needed`` is an upper bound of
    what the run needs there; else ``written``, what it had written when the disk filled."""
    reason = getattr(exc, "strerror", None) or "disk full"
    free = free_bytes(folder)
    left = "" if free is None else f"; {human_bytes(free)} left free there"
    need = ""
    if needed is not None:
        need = f", and this run needs up to about {human_bytes(needed)} there ({what})"
    elif written is not None:
        need = f", and this run needs more than the {human_bytes(written)} of {what} it wrote"
    return (
        f"not enough space in {folder} ({reason}{left}){need}: {fix}. Nothing was written "
        "there and earlier outputs were left as they were."
    )


@contextlib.contextmanager
def reporting_full_disk(
    needs: Mapping[Path, int | None], what: str = "work files and outputs", fix: str = OUTPUT_FIX,
    work: Path | None = None,
) -> Iterator[None]:
    """Turn a write that failed on a full file system into one line (see :func:`full_folder`).

    ``needs``: each folder the block writes to -> the bytes the run needs there (None:
    unknown), for the message; ``work``: a folder whose size at the failure tells what was
    written (when the need is unknown). Place it inside the clean-up (``try``/``finally``)
    so that the space is looked at before the partial files are removed.
    """
    try:
        yield
    except (GeofloodsamError, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        folder = full_folder(exc, list(needs))
        if folder is None:
            raise
        written = None if work is None else folder_bytes(work)
        message = full_disk_message(folder, exc, needs.get(folder), what, fix, written)
        raise GeofloodsamError(message) from None


@contextlib.contextmanager
def holding_native_stderr() -> Iterator[None]:
    """Hold what native code writes to file descriptor 2 inside the block; write it out when
    the block succeeds and drop it when it fails (the failure is then reported as one line).

    A no-op where descriptor 2 cannot be redirected.
    """
    try:
        held = tempfile.TemporaryFile()
        saved = os.dup(2)
    except OSError:
        yield
        return
    ok = False
    try:
        sys.stderr.flush()
        os.dup2(held.fileno(), 2)
        try:
            yield
            ok = True
        finally:
            try:  # a stop signal during the flush must not leave descriptor 2 redirected
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
        if ok:
            held.seek(0)
            text = held.read()
            if text:
                os.write(2, text)
    finally:
        os.close(saved)
        held.close()
