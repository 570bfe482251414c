"""``GEOFLOODSAM_HOME``: the cache root, and a temporary stand-in when it cannot be written.

The cache root is ``$GEOFLOODSAM_HOME`` or else the user cache folder
(``platformdirs.user_cache_dir("geofloodsam")``). Commands keep re-usable files under it
(``weights/``, ``embeddings/``, ``splits/``, ``openvino/``). When the root cannot be written
(a read-only folder, a path under a regular file, a full disk), :func:`usable_home_folder`
gives a temporary folder instead, removed when the process ends, and warns once per root with a
line naming ``GEOFLOODSAM_HOME``; the run goes on.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import click

#: the environment variable naming the cache root
ENV_HOME = "GEOFLOODSAM_HOME"

#: cache root -> the temporary folder standing in for it in this process
_FALLBACKS: dict[Path, Path] = {}


def home_root() -> Path:
    """``$GEOFLOODSAM_HOME`` or else ``platformdirs.user_cache_dir("geofloodsam")``."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("geofloodsam"))


def writable_reason(directory: Path) -> str | None:
    """None if ``directory`` can be created and a file written in it, else the reason."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def usable_home_folder(name: str, what: str) -> Path:
    """``<cache root>/<name>``, or, when it cannot be written, ``<temporary folder>/<name>``.

    The temporary folder serves every ``name`` of this process and is removed at exit; the
    first fallback per cache root prints one ``Warning:`` line naming ``what`` (e.g.
    ``embedding cache``), the reason and ``GEOFLOODSAM_HOME``.
    """
    home = home_root()
    default = home / name
    reason = writable_reason(default)
    if reason is None:
        return default
    fallback = _FALLBACKS.get(home)
    if fallback is None:
        fallback = Path(tempfile.mkdtemp(prefix="geofloodsam-home-"))
        atexit.register(shutil.rmtree, fallback, True)
        _FALLBACKS[home] = fallback
        source = (f"{ENV_HOME}={home}" if os.environ.get(ENV_HOME)
                  else f"the user cache folder {home} ({ENV_HOME} is not set)")
        click.echo(
            f"Warning: cannot use the {what} {default} ({reason}): {source} is not a writable "
            f"folder, so this run keeps its cache files in {fallback} and removes them when it "
            f"ends; set {ENV_HOME} to a writable folder to keep them.",
            err=True,
        )
    folder = fallback / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
