"""Hidden work folders beside the outputs, sweeping those that killed runs left behind, and
the check that an output folder can be made and written (:func:`check_output_dir`).

A run works in hidden folders in its output folder (``.<stem>.geofloodsam-XXXX``,
``.geofloodsam-embeddings-XXXX``, ...) and removes them when it ends, also on errors and
SIGTERM. A run killed outright (SIGKILL, a power cut) cannot, so every work folder records
who made it (:data:`OWNER_FILE`: process id, host, start time) and later runs sweep the
folders whose process no longer runs on this host (:func:`sweep_stale`). Folders of another
host, or of a process that still runs, are never touched; a folder without an owner record
(left by a version before this one) is swept once it is older than :data:`UNOWNED_MAX_AGE_S`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

from geofloodsam.errors import GeofloodsamError

#: the owner record inside every work folder
OWNER_FILE = ".owner.json"
#: every work folder's name has this in it (after a leading dot)
MARK = "geofloodsam-"
#: a work folder without an owner record is stale after this long (seconds)
UNOWNED_MAX_AGE_S = 24 * 3600


def make_workdir(parent: str | Path, prefix: str) -> Path:
    """A new hidden work folder ``parent/<prefix>XXXX`` with its owner record.

    ``prefix`` must start with a dot and contain :data:`MARK` (so that it can be swept).
    """
    if not prefix.startswith(".") or MARK not in prefix:
        raise ValueError(f"work folder prefix {prefix!r} must start with '.' and hold {MARK!r}")
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    try:
        (path / OWNER_FILE).write_text(json.dumps(record) + "\n", encoding="utf-8")
    except BaseException:  # a full disk, a signal: no empty work folder left behind
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True


def is_stale(path: Path, now: float | None = None) -> bool:
    """Whether work folder ``path`` belongs to a run that is surely dead."""
    now = time.time() if now is None else now
    try:
        record = json.loads((path / OWNER_FILE).read_text(encoding="utf-8"))
        pid, host = int(record["pid"]), str(record["host"])
    except FileNotFoundError:
        try:
            return now - path.stat().st_mtime > UNOWNED_MAX_AGE_S
        except OSError:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False  # unreadable or being written: leave it
    if host != socket.gethostname():
        return False
    return pid != os.getpid() and not _alive(pid)


def sweep_stale(parent: str | Path) -> list[Path]:
    """Remove the work folders in ``parent`` that dead runs left; return those removed."""
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(".") and MARK in name):
            continue
        with contextlib.suppress(OSError):
            if not entry.is_dir(follow_symlinks=False):
                continue
            path = Path(entry.path)
            if is_stale(path):
                shutil.rmtree(path, ignore_errors=True)
                if not path.exists():
                    removed.append(path)
    return removed


def check_output_dir(out_dir: str | Path) -> Path:
    """One-line error unless ``out_dir`` could be created (if missing) and written.

    Called before any long work (evaluation, training), so that a bad ``-o`` is found first;
    creates nothing. A path through a file, a file at ``out_dir`` and a folder that cannot
    be written to (read-only, permissions) are refused.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise GeofloodsamError(
            f"output folder {out_dir} is a file: choose another with -o/--out, or move the file."
        )
    existing = out_dir.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise GeofloodsamError(
            f"cannot create output folder {out_dir}: {existing} is a file; choose another "
            "with -o/--out."
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
        if existing == out_dir.absolute() and out_dir.parent.exists():
            with tempfile.TemporaryFile(dir=out_dir.parent):  # the work folder goes beside it
                pass
    except OSError as exc:
        raise GeofloodsamError(
            f"cannot write to output folder {out_dir} ({exc.strerror or type(exc).__name__}): "
            "choose another with -o/--out or fix its permissions."
        ) from None
    return out_dir
