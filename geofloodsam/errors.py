"""User-facing errors: one line naming the problem and the fix, never a traceback.

``GeofloodsamError`` subclasses :class:`click.ClickException`, so the CLI prints
``Error: <message>`` and exits with status 1 without a traceback, while library
callers get an ordinary exception.
"""

from __future__ import annotations

import click


class GeofloodsamError(click.ClickException):
    """A problem with the user's input or environment, with a hint on how to fix it."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
