"""Atomic writes: whole files or none, one file mode, and all-or-nothing sets of renames."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from geofloodsam.files.atomic import (
    atomic_open,
    atomic_write,
    atomic_write_text,
    default_file_mode,
    replace_all,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_get_the_mode_open_would_give(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write(tmp_path / "b.bin", lambda p: p.write_bytes(b"y"))
        with open(tmp_path / "plain", "w"):
            pass
        assert default_file_mode() == 0o644
        assert _mode(tmp_path / "a.txt") == _mode(tmp_path / "b.bin") == _mode(tmp_path / "plain")
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")

    def boom(path: Path) -> None:
        path.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    with pytest.raises(ZeroDivisionError), atomic_open(target) as f:
        f.write("half")
        1 / 0  # noqa: B018
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_replace_all_puts_every_file_in_place(tmp_path: Path) -> None:
    moves = []
    for name in ("a", "b"):
        (tmp_path / f".{name}.new").write_text(f"new {name}")
        moves.append((tmp_path / f".{name}.new", tmp_path / name))
    (tmp_path / "a").write_text("old a")
    replace_all(moves)
    assert (tmp_path / "a").read_text() == "new a" and (tmp_path / "b").read_text() == "new b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_replace_all_failing_part_way_keeps_every_earlier_file(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).write_text(f"old {name}")
        (tmp_path / f".{name}.new").write_text(f"new {name}")
    (tmp_path / "c").mkdir()  # a folder in the way of the last target
    (tmp_path / "c" / "keep").write_text("x")
    (tmp_path / ".c.new").write_text("new c")
    moves = [(tmp_path / f".{n}.new", tmp_path / n) for n in ("a", "b", "c")]
    with pytest.raises(OSError):
        replace_all(moves)
    assert (tmp_path / "a").read_text() == "old a" and (tmp_path / "b").read_text() == "old b"
    assert (tmp_path / "c" / "keep").read_text() == "x"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert {"a", "b", "c"} <= set(left)
    assert not [name for name in left if name.endswith(".old")]  # nothing set aside is left
