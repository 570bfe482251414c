"""Whether two scenes may be compared: a water mask means the same from sensors of one kind.

Optical sensors (``s2``, ``naip``, ``rgb``) see water by colour and infrared, radar (``s1``,
``sar``: the registered sensor classes whose ``radar`` attribute is set) by a smooth, dark
surface: different errors at the edges, on wet soil, under wind. Two optical
sensors are compared with a warning; radar against optical is an error unless allowed.
"""

from __future__ import annotations

import click

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.sensors import SENSORS


def kind(sensor: str) -> str:
    """``radar`` or ``optical``: how the registered sensor ``sensor`` sees water."""
    return "radar" if sensor in SENSORS.names() and SENSORS[sensor].radar else "optical"


def check_pair(after: str, before: str, allow_mixed: bool = False) -> str | None:
    """Check the sensors of AFTER and BEFORE; return the warning given (None: same sensor)."""
    if after == before:
        return None
    kinds = kind(after), kind(before)
    if kinds[0] != kinds[1] and not allow_mixed:
        raise GeofloodsamError(
            f"AFTER is {after} ({kinds[0]}) but BEFORE is {before} ({kinds[1]}): their water "
            "masks are not comparable; give a BEFORE of the same sensor kind, or "
            "--allow-mixed-sensors to compare them anyway."
        )
    warning = (
        f"Warning: AFTER is {after} and BEFORE is {before}: the masks come from different "
        "sensors, so part of the change may be the sensors' difference, not the water's."
    )
    click.echo(warning, err=True)
    return warning
