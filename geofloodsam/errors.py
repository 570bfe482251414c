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


def distinct_choices(values, choices, what: str) -> list[str]:
    """``values`` without repeats, in their order; a one-line error for an unknown one, or
    for none at all (``what``: e.g. ``prompt type``, named in the message)."""
    values = list(dict.fromkeys(values))
    bad = [v for v in values if v not in choices]
    if bad or not values:
        raise GeofloodsamError(
            f"unknown {what} {bad[0] if bad else '(none given)'}: use one or more of "
            f"{', '.join(choices)}."
        )
    return values
