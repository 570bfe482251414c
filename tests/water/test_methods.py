"""``--method`` resolution: the per-sensor defaults and the one-line refusals."""

from __future__ import annotations

import pytest

from geofloodsam.errors import GeofloodsamError
from geofloodsam.raster.sensors import SENSORS
from geofloodsam.water.methods import choose


@pytest.mark.parametrize(
    "sensor,prompted,method,decoder",
    [
        ("s1", False, "index", None),
        ("sar", False, "index", None),
        ("s2", False, "index", None),
        ("naip", False, "index", None),
        ("rgb", False, "sam", "satellite"),
        ("rgb", True, "sam", "satellite"),
        ("s2", True, "sam", "satellite"),
        ("naip", True, "sam", "satellite"),
        ("s1", True, "sam", "satellite-decoder-only"),  # adapters trained on optical scenes
        ("sar", True, "sam", "satellite-decoder-only"),
    ],
)
def test_auto(sensor, prompted, method, decoder):
    choice = choose(sensor, "auto", None, prompted)
    assert (choice.method, choice.decoder) == (method, decoder)
    assert choice.reason and choice.to_dict()["method"] == method


def test_given_decoder_and_index():
    assert choose("s1", "sam", "pretrained").decoder == "pretrained"
    index = choose("s2", "index", "flood")
    assert index.method == "index" and index.decoder is None
    assert set(SENSORS.names()) == {"s1", "sar", "s2", "naip", "rgb"}


@pytest.mark.parametrize(
    "sensor,method,prompted,message",
    [
        ("rgb", "index", False, "--method index needs a water index"),
        ("rgb", "fused", False, "--method fused needs a water index"),
        ("s1", "index", True, "takes no prompts"),
        ("s2", "fused", True, "takes no prompts"),
        ("s2", "best", False, "--method best: use one of auto, sam, index, fused"),
    ],
)
def test_refusals(sensor, method, prompted, message):
    with pytest.raises(GeofloodsamError, match=message) as err:
        choose(sensor, method, None, prompted)
    assert "\n" not in str(err.value)
