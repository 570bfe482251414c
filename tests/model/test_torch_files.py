"""Files of tensors read with torch.load, or one line naming the file and the fix."""

from __future__ import annotations

import pytest
import torch

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.torch_files import load_torch_file


@pytest.mark.parametrize("mmap", [False, True])
def test_a_good_file_is_read_mapped_or_not(tmp_path, mmap: bool) -> None:
    path = tmp_path / "state.pt"
    torch.save({"w": torch.arange(4.0)}, path)
    assert load_torch_file(path, "checkpoint", "fix it.", mmap=mmap)["w"].tolist() == [0, 1, 2, 3]


def test_an_old_file_that_cannot_be_mapped_is_read(tmp_path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    assert load_torch_file(path, "checkpoint", "fix it.", mmap=True)["w"].tolist() == [1, 1]


@pytest.mark.parametrize("mmap", [False, True])
def test_a_bad_file_is_one_line_with_the_fix(tmp_path, mmap: bool) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a torch file")
    with pytest.raises(GeofloodsamError) as err:
        load_torch_file(path, "resume state", "delete it and start again.", mmap=mmap)
    message = str(err.value)
    assert message.startswith(f"cannot read resume state {path} (")
    assert message.endswith("): delete it and start again.") and "\n" not in message
