"""Content hashes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from geofloodsam.files.hashing import sha256_file


def test_sha256_file(tmp_path: Path) -> None:
    p = tmp_path / "f.bin"
    data = os.urandom(3 << 20)
    p.write_bytes(data)
    assert sha256_file(p) == hashlib.sha256(data).hexdigest()
