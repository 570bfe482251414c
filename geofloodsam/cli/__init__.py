"""The ``geofloodsam`` command line: one module per sub-command, options shared in one place.

Sub-commands live in their own modules (``cli/segment.py``, ...) and are imported lazily;
their options come from :mod:`geofloodsam.cli.options`. Nothing here imports torch, so
``geofloodsam --help`` stays fast and one broken optional extra cannot break the rest.

May import: every other subpackage (only inside the commands' bodies for heavy ones).
"""

from __future__ import annotations

import importlib

import click

from geofloodsam import __version__

#: sub-command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "weights": "geofloodsam.cli.weights:weights",
    "segment": "geofloodsam.cli.segment:segment",
    "finetune": "geofloodsam.cli.finetune:finetune",
    "evaluate": "geofloodsam.cli.evaluate:evaluate",
    "evaluate-raster": "geofloodsam.cli.evaluate:evaluate_raster",
    "make-samples": "geofloodsam.cli.samples:make_samples",
    "qgis": "geofloodsam.cli.qgis:qgis",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._load(name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # command not built yet
                return None
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geofloodsam")
@click.option("--progress-format", type=click.Choice(["bar", "json"]), default="bar", hidden=True)
def main(progress_format: str) -> None:
    """Map flood water in georeferenced imagery with Segment Anything (SAM)."""
    from geofloodsam.progress import set_format

    set_format(progress_format)  # json: one line per step on stderr (the QGIS plugin reads it)
