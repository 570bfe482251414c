"""The sensor registry: one class per sensor, and everything that differs by sensor asks it.

A toy sensor (5 bands described ``TOY1``..``TOY5``, NDWI from bands 2 and 5) registered by a
fixture is detected, offered by ``--sensor`` (choices, help, the QGIS plugin's menu),
resolved by ``--method auto`` and mapped by its water index end to end, then unregistered.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from geofloodsam.cli import main
from geofloodsam.cli.qgis import choices
from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.decoders import SHIPPED
from geofloodsam.raster.sensor_registry import Sensor, SensorRegistry
from geofloodsam.raster.sensors import SENSORS, Probe, SensorInfo, detect_sensor
from geofloodsam.water.index import INDEX_ROLES
from geofloodsam.water.methods import METHODS, choose
from geofloodsam.water.scene_prior import scene_prior

BUILT_IN = ("s2", "s1", "sar", "naip", "rgb")


class Toy(Sensor):
    """A 5-band sensor recognised by its band descriptions."""

    name = "toy"
    title = "Toy"
    help = "toy (5 bands TOY1..TOY5)"
    needs = "5 bands described TOY1..TOY5"
    water_index = "ndwi"
    auto_method = "index"

    @classmethod
    def detect(cls, ds, probe: Probe, forced: bool) -> SensorInfo | None:
        if ds.count != 5 or not all((d or "").startswith("TOY") for d in ds.descriptions):
            return None
        return SensorInfo(sensor=cls.name, reason=f"{cls.title}: {probe.found}",
                          composite_bands=(1, 2, 3), composite_ranges=((0.0, 255.0),) * 3,
                          index_bands={"green": 2, "nir": 5})


@pytest.fixture
def toy():
    """The toy sensor, registered for one test."""
    SENSORS.register(Toy)
    try:
        yield Toy
    finally:
        SENSORS.unregister(Toy.name)


def _write(path: Path, descriptions: tuple[str, ...]) -> Path:
    """5 uint8 bands: a lake (left third, bright in band 2, dark in band 5), dry land."""
    data = np.full((5, 64, 64), 90, np.uint8)
    data[1, :, :20], data[4, :, :20] = 120, 10  # water: green > NIR
    data[1, :, 20:], data[4, :, 20:] = 60, 150  # land: NIR > green
    profile = dict(driver="GTiff", width=64, height=64, count=5, dtype="uint8",
                   crs="EPSG:32633", transform=Affine(10.0, 0, 500000.0, 0, -10.0, 5e6))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions, start=1):
            dst.set_band_description(i, d)
    return path


@pytest.fixture
def toy_raster(tmp_path) -> Path:
    return _write(tmp_path / "toy.tif", tuple(f"TOY{i}" for i in range(1, 6)))


def test_built_in_sensors_in_detection_order_and_choices() -> None:
    assert SENSORS.names() == BUILT_IN
    assert SENSORS.choices() == ("auto", *BUILT_IN)
    assert SENSORS["s1"].radar and SENSORS["s2"].fixed_composite and not SENSORS["naip"].radar


def test_every_sensor_names_what_the_layers_above_resolve() -> None:
    """raster/ may not import water/ or model/: the names it declares must resolve there."""
    for kind in SENSORS:
        assert kind.water_index is None or kind.water_index in INDEX_ROLES, kind.name
        assert kind.auto_method in METHODS, kind.name
        assert {kind.auto_decoder, kind.prompted_decoder} - {None} <= set(SHIPPED), kind.name
        assert (kind.water_index is None) == (kind.auto_method == "sam"), kind.name


def test_toy_sensor_is_detected_before_the_catch_all(toy, toy_raster, tmp_path) -> None:
    assert SENSORS.names() == ("s2", "s1", "sar", "naip", "toy", "rgb")
    with rasterio.open(toy_raster) as ds:
        assert detect_sensor(ds).sensor == "toy"
        assert detect_sensor(ds, "toy").reason.startswith("Toy: 5 bands uint8")
    other = _write(tmp_path / "plain.tif", ("a", "b", "c", "d", "e"))
    with rasterio.open(other) as ds:
        assert detect_sensor(ds).sensor == "rgb"  # the toy rule does not take it
        with pytest.raises(GeofloodsamError, match=r"--sensor toy needs 5 bands described "
                           r"TOY1..TOY5; .*plain.tif has 5 bands uint8"):
            detect_sensor(ds, "toy")


def test_toy_sensor_is_a_cli_and_qgis_choice(toy) -> None:
    result = CliRunner().invoke(main, ["segment", "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "[auto|s2|s1|sar|naip|toy|rgb]" in result.output
    assert "toy (5 bands TOY1..TOY5)" in result.output
    assert choices()["sensor"] == ["auto", "s2", "s1", "sar", "naip", "toy", "rgb"]
    printed = CliRunner().invoke(main, ["qgis", "choices"])
    assert json.loads(printed.output)["sensor"][-2:] == ["toy", "rgb"]


def test_toy_sensor_method_resolution(toy) -> None:
    auto = choose("toy", "auto")
    assert (auto.method, auto.decoder) == ("index", None)
    assert "promptless toy: index" in auto.reason
    assert choose("toy", "auto", prompted=True).decoder == "satellite"
    assert choose("toy", "fused").decoder == "satellite"


def test_toy_sensor_prior_and_segment_end_to_end(toy, toy_raster, tmp_path) -> None:
    with rasterio.open(toy_raster) as ds:
        prior = scene_prior(ds, detect_sensor(ds))
    assert prior is not None and prior.method == "ndwi"
    assert prior.water()[:, :20].all() and not prior.water()[:, 20:].any()
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["segment", str(toy_raster), "--sensor", "toy", "-o",
                                       str(out), "-q"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "toy_run.json").read_text())
    assert run["sensor"]["sensor"] == "toy"
    assert run["method"]["method"] == "index"
    with rasterio.open(out / "toy_mask.tif") as mask:
        water = mask.read(1)
    assert (water[:, :20] == 1).all() and (water[:, 20:] == 0).all()


def test_unregistered_toy_is_gone(tmp_path) -> None:
    assert "toy" not in SENSORS
    result = CliRunner().invoke(main, ["segment", "x.tif", "--sensor", "toy", "-o",
                                       str(tmp_path)])
    assert result.exit_code != 0 and "'toy' is not one of" in result.output


def test_registry_refuses_taken_names_and_keeps_catch_alls_last() -> None:
    registry = SensorRegistry()
    rgb = type("Plain", (Sensor,), {"name": "plain", "help": "plain", "catch_all": True})
    one = type("One", (Sensor,), {"name": "one", "help": "one (1 band)"})
    registry.register(rgb)
    registry.register(one)
    assert registry.names() == ("one", "plain")
    assert registry.help() == "one (1 band) or plain"
    for bad in (one, type("Auto", (Sensor,), {"name": "auto"})):
        with pytest.raises(ValueError, match="taken or reserved"):
            registry.register(bad)
    with pytest.raises(GeofloodsamError, match=r"^unknown sensor 'x': use one of one, plain\.$"):
        registry["x"]
    assert registry.unregister("one") is one and registry.names() == ("plain",)
