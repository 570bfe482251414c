"""Work folders: each records its owner; later runs sweep those of dead runs only."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geofloodsam.files.workdirs import (
    OWNER_FILE,
    UNOWNED_MAX_AGE_S,
    make_workdir,
    sweep_stale,
)


def _dead_pid() -> int:
    """The id of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _folder(parent: Path, name: str, pid: int | None, host: str | None = None) -> Path:
    path = parent / name
    path.mkdir()
    (path / "tiles").mkdir()
    (path / "tiles" / "t0_o1.npy").write_bytes(b"x")
    if pid is not None:
        record = {"pid": pid, "host": host or socket.gethostname(), "started": time.time()}
        (path / OWNER_FILE).write_text(json.dumps(record))
    return path


def test_make_workdir_records_this_process(tmp_path: Path) -> None:
    path = make_workdir(tmp_path, ".scene.geofloodsam-")
    record = json.loads((path / OWNER_FILE).read_text())
    assert path.name.startswith(".scene.geofloodsam-") and record["pid"] == os.getpid()
    assert record["host"] == socket.gethostname()
    assert sweep_stale(tmp_path) == [] and path.is_dir()  # this run is alive
    with pytest.raises(ValueError):
        make_workdir(tmp_path, "visible-")


def test_sweep_removes_only_folders_of_dead_runs_on_this_host(tmp_path: Path) -> None:
    dead = _folder(tmp_path, ".scene.geofloodsam-dead", _dead_pid())
    emb = _folder(tmp_path, ".geofloodsam-embeddings-dead", _dead_pid())
    alive = _folder(tmp_path, ".scene.geofloodsam-alive", os.getppid())
    other_host = _folder(tmp_path, ".scene.geofloodsam-far", _dead_pid(), host="elsewhere")
    unowned_new = _folder(tmp_path, ".scene.geofloodsam-new", None)
    unowned_old = _folder(tmp_path, ".scene.geofloodsam-old", None)
    old = time.time() - UNOWNED_MAX_AGE_S - 60
    os.utime(unowned_old, (old, old))
    user = _folder(tmp_path, ".my-own-hidden-folder", _dead_pid())
    (tmp_path / "scene_mask.tif").write_bytes(b"result")
    removed = sweep_stale(tmp_path)
    assert sorted(removed) == sorted([dead, emb, unowned_old])
    for kept in (alive, other_host, unowned_new, user):
        assert kept.is_dir()
    assert (tmp_path / "scene_mask.tif").read_bytes() == b"result"


def test_sweep_of_a_missing_folder_is_a_no_op(tmp_path: Path) -> None:
    assert sweep_stale(tmp_path / "nope") == []
