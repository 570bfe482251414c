"""Files of tensors (checkpoints, decoder files, resume states) read with ``torch.load``, or
one line saying which file is bad and what to do about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from geofloodsam.errors import GeofloodsamError


def load_torch_file(path: str | Path, what: str, fix: str, mmap: bool = False) -> Any:
    """``torch.load`` of ``path`` (weights only, onto the CPU), or a one-line error.

    The error reads ``cannot read <what> <path> (<exception type>): <fix>``. With ``mmap``
    the file is memory-mapped, except an old (not zip) file, which cannot be: it is read.
    """
    import torch  # here: importing this module stays light

    try:
        if mmap:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # an old (not zip) file cannot be mapped: read it
                pass
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise GeofloodsamError(f"cannot read {what} {path} ({type(exc).__name__}): {fix}") from None
