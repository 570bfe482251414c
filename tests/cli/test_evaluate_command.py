"""``geofloodsam evaluate --method / --sensor / --split`` on the command line: the options'
one definition, the rows printed, and one-line errors for input that does not fit."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from geofloodsam.cli import main
from geofloodsam.cli.evaluate import evaluate
from geofloodsam.cli.options import method_option, methods_option, sensor_option
from geofloodsam.raster.sensors import SENSORS
from geofloodsam.water.methods import METHOD_CHOICES


def _param(decorator) -> click.Option:
    return decorator(click.command()(lambda **kw: None)).params[0]


def test_method_and_sensor_have_one_definition_of_their_choices() -> None:
    method = next(p for p in evaluate.params if p.name == "methods")
    sensor = next(p for p in evaluate.params if p.name == "sensor")
    assert method.multiple and tuple(method.type.choices) == METHOD_CHOICES
    assert tuple(method.type.choices) == tuple(_param(method_option).type.choices)
    assert method.opts == _param(methods_option).opts == _param(method_option).opts
    options = {p.name: p for p in click.command()(sensor_option(lambda **kw: None)).params}
    assert (tuple(sensor.type.choices) == SENSORS.choices()
            == tuple(options["sensor"].type.choices))
    assert {"sar_units", "s2_offset"} <= {p.name for p in evaluate.params}
    assert method.default == ("sam",)  # evaluate scores SAM alone unless told


def _run(*args: str):
    return CliRunner().invoke(main, ["evaluate", "--model", "tiny", "--device", "cpu", "-q",
                                     "--examples", "0", *args])


def test_rows_printed_with_mean_and_pooled_iou(tmp_path, write_chip_set) -> None:
    root = write_chip_set(tmp_path / "chips", ("s1", "s2"))
    out = tmp_path / "out"
    res = _run("--data", str(root), "--sensor", "s1", "--method", "index", "--method", "fused",
               "--decoder", "pretrained", "--cache-dir", str(tmp_path / "c"), "-o", str(out))
    assert res.exit_code == 0, res.output
    lines = [x for x in res.output.splitlines() if "IoU" in x]
    assert [x.split()[0] for x in lines] == ["index", "fused/pretrained"]
    assert all("(pooled " in x and "(2 images)" in x for x in lines)
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["method"]) == ["index", "fused"]


@pytest.mark.slow
def test_explicit_bands_on_chips_read_them_as_before(tmp_path, write_chip_set) -> None:
    root = write_chip_set(tmp_path / "chips", ("s1",))
    res = _run("--data", str(root / "S1Hand"), "--bands", "2", "--stretch", "-30,0",
               "--method", "sam", "--method", "index", "--decoder", "pretrained", "--prompt",
               "box", "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "out"))
    assert res.exit_code == 0, res.output
    text = (tmp_path / "out" / "report.md").read_text()
    assert "--bands (2,) / --stretch (-30.0, 0.0), per chip" in text


@pytest.mark.parametrize(
    ("where", "args", "message"),
    [
        ("s1", ["--sensor", "s2"], "--sensor s2 needs 12-13 Sentinel-2 bands"),
        ("s1", ["--sensor", "naip"], "--sensor naip needs 4 bands R, G, B, NIR"),
        ("both", [], "holds both S1Hand/ and S2Hand/ chips: choose one with --sensor s1 or s2"),
        ("photos", ["--method", "index"], "--method index needs a water index, and no image"),
        ("photos", ["--method", "fused"], "--method fused needs a water index"),
        ("photos", ["--sensor", "s1"], "--sensor s1 needs GeoTIFF chips"),
        ("s1", ["--method", "magic"], "Invalid value for '--method'"),
    ],
)
def test_input_that_does_not_fit_is_one_line(
    where, args, message, tmp_path, write_chip_set, write_photo_set
) -> None:
    if where == "photos":
        data = write_photo_set(tmp_path / "ds", ["test", "test"])
    else:
        data = write_chip_set(tmp_path / "chips", ("s1", "s2") if where == "both" else ("s1",))
    out = tmp_path / "out"
    res = _run("--data", str(data), "--decoder", "pretrained", "-o", str(out),
               "--cache-dir", str(tmp_path / "c"), *args)
    assert res.exit_code != 0
    lines = [x for x in res.output.strip().splitlines() if x.startswith("Error")]
    assert len(lines) == 1 and message in lines[0], res.output
    assert "Traceback" not in res.output
    assert not out.exists()


def test_sub_folder_of_a_chip_set_finds_its_labels(tmp_path: Path, write_chip_set) -> None:
    root = write_chip_set(tmp_path / "chips", ("s1", "s2"))
    res = _run("--data", str(root / "S2Hand"), "--method", "index", "-o", str(tmp_path / "o"))
    assert res.exit_code == 0, res.output
    per = pd.read_csv(tmp_path / "o" / "per_image.csv")
    assert set(per["sensor"]) == {"s2"} and sorted(per["id"]) == ["Alpha_1", "Beta_2"]
