"""Progress bars for people (tqdm) or for programs (one JSON line per step on stderr).

The commands' progress goes through :func:`tqdm` (and :func:`tqdm_auto`), which return an
ordinary tqdm bar unless the run was started with the hidden ``geofloodsam --progress-format
json``: then every step prints one line to stderr that a caller such as the QGIS plugin can
parse without screen-scraping a bar::

    {"event": "progress", "desc": "segment", "n": 3, "total": 12}

``total`` may grow while a run goes on (``segment`` adds tiles wave by wave) and is ``null``
when unknown. Lines that do not start with ``{"event":`` are ordinary messages.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import tqdm as _tqdm
import tqdm.auto as _tqdm_auto

FORMATS = ("bar", "json")
_format = "bar"


def set_format(fmt: str) -> None:
    """Choose how progress is shown for the rest of the process: ``bar`` or ``json``."""
    global _format
    if fmt not in FORMATS:
        raise ValueError(f"progress format must be one of {FORMATS}, got {fmt!r}")
    _format = fmt


def get_format() -> str:
    """The current progress format."""
    return _format


def progress_line(desc: str | None, n: int | float, total: int | float | None) -> str:
    """The JSON line of one progress step."""
    return json.dumps({"event": "progress", "desc": desc or "", "n": n, "total": total})


class JsonTqdm(_tqdm.tqdm):
    """A tqdm that prints a JSON line (:func:`progress_line`) to stderr at every refresh."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(mininterval=0, miniters=1, file=sys.stderr, leave=True)  # no "\r" clear
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        """Print the current count instead of drawing a bar."""
        total = self.total
        self.fp.write(progress_line(self.desc.rstrip(": "), self.n, total) + "\n")
        self.fp.flush()
        return True


def tqdm(*args: Any, **kwargs: Any) -> _tqdm.tqdm:
    """``tqdm.tqdm(...)``, or a :class:`JsonTqdm` under ``--progress-format json``."""
    if _format == "json":
        return JsonTqdm(*args, **kwargs)
    return _tqdm.tqdm(*args, **kwargs)


def tqdm_auto(*args: Any, **kwargs: Any) -> _tqdm.tqdm:
    """``tqdm.auto.tqdm(...)``, or a :class:`JsonTqdm` under ``--progress-format json``."""
    if _format == "json":
        return JsonTqdm(*args, **kwargs)
    return _tqdm_auto.tqdm(*args, **kwargs)
