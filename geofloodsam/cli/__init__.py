"""The ``geofloodsam`` command line: one module per sub-command, options shared in one place.

Sub-commands live in their own modules (``cli/segment.py``, ...) and are imported lazily;
their options come from :mod:`geofloodsam.cli.options`. Nothing here imports torch, so
``geofloodsam --help`` stays fast and one broken optional extra cannot break the rest.

Every command runs under one guard (:meth:`LazyGroup.invoke`): SIGINT (Ctrl-C) and SIGTERM
(batch schedulers, ``timeout``, ``docker stop``, QGIS's Cancel) alike raise
:class:`~geofloodsam.errors.Interrupted`, so the commands' clean-up runs (work folders
removed, no half-written output, earlier outputs kept) before the process exits with status
130 (SIGINT) or 143 (SIGTERM) and one line; errors of the environment that reach the top
(a full disk, a permission refused, a raster that turns out truncated mid-run) become
``Error: <one line>`` naming the file, never a traceback.

May import: every other subpackage (only inside the commands' bodies for heavy ones).
"""

from __future__ import annotations

import atexit
import errno
import gc
import importlib
import sys

import click

from geofloodsam import __version__
from geofloodsam.errors import GeofloodsamError, Interrupted, catching_stop_signals

__all__ = ["main", "COMMANDS", "LazyGroup", "environment_error"]

#: sub-command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "weights": "geofloodsam.cli.weights:weights",
    "segment": "geofloodsam.cli.segment:segment",
    "flood": "geofloodsam.cli.flood:flood",
    "finetune": "geofloodsam.cli.finetune:finetune",
    "evaluate": "geofloodsam.cli.evaluate:evaluate",
    "evaluate-raster": "geofloodsam.cli.evaluate:evaluate_raster",
    "make-samples": "geofloodsam.cli.samples:make_samples",
    "qgis": "geofloodsam.cli.qgis:qgis",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)

    def invoke(self, ctx: click.Context):
        """Run the command with SIGINT / SIGTERM handled and environment errors made one line."""
        try:
            with catching_stop_signals():
                try:
                    return super().invoke(ctx)
                except (click.ClickException, click.exceptions.Exit, click.Abort):
                    raise
                except Exception as exc:
                    message = environment_error(exc)
                    if message is None:
                        raise
                    raise GeofloodsamError(message) from None
        except Interrupted as stop:
            click.echo(stop.message, err=True)
            sys.exit(stop.code)


#: errno -> what to do about it
_FIXES = {
    errno.ENOSPC: "free some space or choose another output folder",
    errno.EDQUOT: "free some space (disk quota exceeded) or choose another output folder",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.EIO: "the disk or network share failed: check it and run again",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder: give a file",
}


def environment_error(exc: BaseException) -> str | None:
    """The one-line message for an error of the environment (disk, permissions, GDAL I/O).

    ``None`` for anything else (a bug, which keeps its traceback).
    """
    if isinstance(exc, OSError) and exc.errno is not None and exc.errno != errno.EPIPE:
        name = exc.filename if exc.filename is not None else "a file"
        fix = _FIXES.get(exc.errno, "check the file and the folder it is in")
        return f"cannot use {name} ({exc.strerror or errno.errorcode.get(exc.errno)}): {fix}."
    module = type(exc).__module__ or ""
    if module.startswith("rasterio") and type(exc).__name__ in (
        "RasterioIOError", "CPLE_FileIOError", "CPLE_OpenFailedError", "CPLE_AppDefinedError",
        "CPLE_OutOfMemoryError", "CPLE_NoWriteAccessError",
    ):
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        return (
            f"GDAL could not read or write a raster ({reason}): the file may be truncated or "
            "damaged, or the disk full; check it (gdalinfo -checksum) and run again."
        )
    return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geofloodsam")
@click.option("--progress-format", type=click.Choice(["bar", "json"]), default="bar", hidden=True)
def main(progress_format: str) -> None:
    """Map flood water in georeferenced imagery with Segment Anything (SAM)."""
    from geofloodsam.progress import set_format

    set_format(progress_format)
    _fast_exit()  # json: one line per step on stderr (the QGIS plugin reads it)


def _fast_exit() -> None:
    """Skip the interpreter's last garbage collections over torch's objects at exit.

    Freezing the heap as the last exit handler (handlers run last-registered first) leaves
    every other handler and all clean-up of the command untouched; it only spares Python's
    final collections, which walk every object torch's import created (most of a second on
    two cores). Registered once per process.
    """
    if not getattr(_fast_exit, "done", False):
        atexit.register(gc.freeze)
        _fast_exit.done = True  # type: ignore[attr-defined]
