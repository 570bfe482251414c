"""Atomic writes: whole files or none, one file mode, and all-or-nothing sets of renames."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from geofloodsam.errors import GeofloodsamError
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


def _old_and_new(tmp_path: Path, names=("a", "b", "c")) -> list[tuple[Path, Path]]:
    for name in names:
        (tmp_path / name).write_text(f"old {name}")
        (tmp_path / f".{name}.new").write_text(f"new {name}")
    return [(tmp_path / f".{n}.new", tmp_path / n) for n in names]


def test_a_folder_in_the_way_is_a_one_line_error_before_anything_moves(tmp_path: Path) -> None:
    moves = _old_and_new(tmp_path, ("a", "b"))
    (tmp_path / "c").mkdir()  # a folder in the way of the last target
    (tmp_path / "c" / "keep").write_text("x")
    (tmp_path / ".c.new").write_text("new c")
    moves.append((tmp_path / ".c.new", tmp_path / "c"))
    with pytest.raises(GeofloodsamError, match="folder of that name is in the way") as err:
        replace_all(moves)
    assert "\n" not in str(err.value) and str(tmp_path / "c") in str(err.value)
    assert (tmp_path / "a").read_text() == "old a" and (tmp_path / "b").read_text() == "old b"
    assert (tmp_path / "c" / "keep").read_text() == "x"
    assert all(src.exists() for src, _ in moves)  # nothing moved
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".old")]


def test_another_users_file_in_a_sticky_folder_is_refused(tmp_path: Path, monkeypatch) -> None:
    shared = tmp_path / "drop"
    shared.mkdir()
    shared.chmod(0o1777)
    moves = _old_and_new(shared, ("a", "b"))
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 4242)  # the files are "another user's"
    with pytest.raises(GeofloodsamError, match="belongs to another user"):
        replace_all(moves)
    assert (shared / "a").read_text() == "old a" and (shared / "b").read_text() == "old b"


def test_a_move_failing_part_way_restores_every_earlier_file(tmp_path: Path, monkeypatch) -> None:
    moves = _old_and_new(tmp_path)
    real = os.replace

    def replace(src, dst):
        if Path(src) == tmp_path / ".c.new":
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(GeofloodsamError, match="No space left on device") as err:
        replace_all(moves)
    assert "previous outputs were left" in str(err.value)
    monkeypatch.setattr(os, "replace", real)
    for name in ("a", "b", "c"):
        assert (tmp_path / name).read_text() == f"old {name}"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not [name for name in left if name.endswith(".old")]  # nothing set aside is left
