"""Which scene pairs ``flood`` compares: sensor kinds come from the sensor registry."""

from __future__ import annotations

import pytest

from geofloodsam.change.sensors import check_pair, kind
from geofloodsam.errors import GeofloodsamError


@pytest.mark.parametrize(
    ("sensor", "expected"),
    [("s1", "radar"), ("sar", "radar"), ("s2", "optical"), ("naip", "optical"), ("rgb", "optical")],
)
def test_kind_comes_from_the_registered_sensor(sensor: str, expected: str) -> None:
    assert kind(sensor) == expected


def test_same_sensor_passes_silently() -> None:
    assert check_pair("s1", "s1") is None


def test_two_radars_compare_with_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    assert "different sensors" in check_pair("sar", "s1")
    assert "Warning:" in capsys.readouterr().err


@pytest.mark.parametrize(("after", "before"), [("sar", "s2"), ("s2", "sar"), ("s1", "rgb")])
def test_radar_against_optical_is_refused_unless_allowed(after: str, before: str) -> None:
    with pytest.raises(GeofloodsamError, match="--allow-mixed-sensors"):
        check_pair(after, before)
    assert check_pair(after, before, allow_mixed=True) is not None
