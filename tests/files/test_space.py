"""Telling a full disk from other failures, and holding back what native code prints."""

from __future__ import annotations

import errno
import os

import pytest

from geofloodsam.errors import GeofloodsamError
from geofloodsam.files import space
from geofloodsam.files.space import (
    full_folder,
    holding_native_stderr,
    human_bytes,
    reporting_full_disk,
)


def test_enospc_names_the_folder_of_the_file_that_failed(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    exc = OSError(errno.ENOSPC, "No space left on device", str(b / "x.npy"))
    assert full_folder(exc, [a, b]) == b


@pytest.mark.parametrize("text", [
    "65536 requested and 28608 written",  # numpy.save's short write, no errno
    "sqlite3_exec(...) failed: database or disk is full",  # the GeoPackage driver
    "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534",  # torch.save
])
def test_writer_messages_of_a_full_disk_are_recognised(tmp_path, text) -> None:
    assert full_folder(OSError(text), [tmp_path]) == tmp_path
    assert full_folder(RuntimeError(text), [tmp_path]) == tmp_path


def test_other_errors_on_a_roomy_disk_are_not_a_full_disk(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(space, "free_bytes", lambda folder: 10 << 30)
    assert full_folder(ValueError("a bug"), [tmp_path]) is None
    assert full_folder(OSError(errno.EACCES, "Permission denied"), [tmp_path]) is None
    assert full_folder(TypeError("'x.tif' not recognized as a supported format"), [tmp_path]) \
        is None


def test_any_error_on_an_all_but_full_disk_is_a_full_disk(tmp_path, monkeypatch) -> None:
    """GDAL may fail only when it reads back a file it could not write (a TypeError)."""
    monkeypatch.setattr(space, "free_bytes", lambda folder: 4096)
    exc = TypeError("'mask_plain.tif' not recognized as being in a supported file format.")
    assert full_folder(exc, [tmp_path]) == tmp_path


def test_the_line_names_folder_space_left_and_needed(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(space, "free_bytes", lambda folder: 28608)
    with pytest.raises(GeofloodsamError) as caught, reporting_full_disk(
        {tmp_path: 3 << 20}, "tile store and outputs"
    ):
        raise OSError("65536 requested and 28608 written")
    assert caught.value.message == (
        f"not enough space in {tmp_path} (disk full; 27.9 KiB left free there), and this run "
        "needs up to about 3.0 MiB there (tile store and outputs): free some space or choose "
        "another output folder, then run again. Nothing was written there and earlier outputs "
        "were left as they were."
    )


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1536, 5 << 20)] == [
        "0 bytes", "1023 bytes", "1.5 KiB", "5.0 MiB"]


def test_native_stderr_is_dropped_on_failure_and_kept_on_success(capfd) -> None:
    with pytest.raises(OSError), holding_native_stderr():
        os.write(2, b"_tiffWriteProc: No space left on device.\n")
        raise OSError(errno.ENOSPC, "No space left on device")
    with holding_native_stderr():
        os.write(2, b"a native note\n")
    assert capfd.readouterr().err == "a native note\n"
