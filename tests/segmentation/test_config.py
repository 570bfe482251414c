"""Options as one value: ``SegmentConfig`` / ``FloodConfig`` / ``EvaluateConfig`` own the
defaults and the parsing, the commands take their defaults from them, the library takes a
config plus keyword overrides, and one ``ModelSpec`` describes the model everywhere."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from geofloodsam.change.config import FloodConfig
from geofloodsam.cli import main
from geofloodsam.cli.evaluate import evaluate as evaluate_command
from geofloodsam.cli.flood import flood as flood_command
from geofloodsam.cli.segment import segment as segment_command
from geofloodsam.errors import GeofloodsamError
from geofloodsam.evaluation.config import EvaluateConfig
from geofloodsam.model.spec import ModelSpec
from geofloodsam.segmentation.config import SegmentConfig
from geofloodsam.segmentation.pipeline import segment


def _defaults(command) -> dict:
    """Each option's default as the command passes it (no default: None)."""
    ctx = click.Context(command)
    values = {p.name: p.get_default(ctx) for p in command.params if p.name}
    return {k: None if type(v).__name__ == "Sentinel" else v for k, v in values.items()}


@pytest.mark.parametrize(
    ("command", "config"),
    [(segment_command, SegmentConfig()), (flood_command, FloodConfig().mapping),
     (evaluate_command, EvaluateConfig())],
    ids=["segment", "flood", "evaluate"],
)
def test_every_option_default_is_the_configs(command, config) -> None:
    fields = {f.name for f in dataclasses.fields(config)}
    shared = {k: v for k, v in _defaults(command).items() if k in fields}
    assert len(shared) >= 10  # the walk found the options
    for name, default in shared.items():
        want = getattr(config, name)
        got = tuple(default) if isinstance(want, tuple) else default
        assert got == want, f"--{name.replace('_', '-')}: {default!r} != {want!r}"


def test_the_flood_command_takes_its_own_defaults_from_flood_config() -> None:
    defaults, config = _defaults(flood_command), FloodConfig()
    for name in ("reference_min", "change", "min_area", "simplify"):
        assert defaults[name] == getattr(config, name)


def test_config_parses_bands_and_stretch_once() -> None:
    config = SegmentConfig(bands="4,3,2", stretch="0,3000", prompts=Path("p.geojson"))
    assert config.bands == [4, 3, 2] and config.stretch == [0.0, 3000.0]
    assert config.stretch_spec == (0.0, 3000.0) and config.prompts == "p.geojson"
    assert SegmentConfig(stretch=(1, 2)).stretch == [1.0, 2.0]
    assert SegmentConfig(stretch="None").stretch == "none"
    assert dataclasses.replace(config, threshold=0.3).bands == [4, 3, 2]  # parsed again


@pytest.mark.parametrize(
    ("options", "message"),
    [({"stretch": "loud"}, "--stretch must be 'auto', 'none' or MIN,MAX"),
     ({"stretch": "3000,0"}, "needs finite MIN < MAX"),
     ({"bands": "1,2"}, "takes 1 band"),
     ({"threshold": 1.0}, "--threshold must be between 0 and 1"),
     ({"min_area": -1}, "--min-area is in m²"),
     ({"simplify": -1}, "--simplify is in metres"),
     ({"threads": 0}, "--threads must be at least 1"),
     ({"method": "magic"}, "--method magic: use one of"),
     ({"sensor": "lidar"}, "lidar")],
)
def test_bad_values_are_one_line_errors(options, message) -> None:
    with pytest.raises(GeofloodsamError) as caught:
        SegmentConfig(**options)
    assert message in caught.value.message and "\n" not in caught.value.message


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--threshold", "1.5"], "--threshold must be between 0 and 1"),
     (["--min-area", "-2"], "--min-area is in m²"),
     (["--stretch", "loud"], "--stretch must be 'auto', 'none' or MIN,MAX")],
)
def test_the_command_gives_the_configs_errors(tmp_path: Path, args, message) -> None:
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "scene.tif"), *args])
    assert result.exit_code == 1, result.output
    assert f"Error: {message}" in result.output and "Traceback" not in result.output
    assert result.output.count("\n") == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_segment_overrides_are_config_fields(tmp_path: Path) -> None:
    with pytest.raises(GeofloodsamError, match="unknown SegmentConfig option.s. tile_sise"):
        segment(tmp_path / "scene.tif", tile_sise=512)
    config = SegmentConfig.with_overrides(SegmentConfig(method="index"), tile_size=512)
    assert (config.method, config.tile_size) == ("index", 512)
    assert SegmentConfig.with_overrides(config) is config


def test_segment_signature_is_a_config_and_overrides() -> None:
    names = list(inspect.signature(segment).parameters)
    assert names == ["scenes", "prompts", "outdir", "config", "sam_model", "overrides"]


def test_run_json_parameters_keep_their_fields_and_order() -> None:
    record = SegmentConfig(model="vit_b", checkpoint=Path("x.pt"), quiet=True).record()
    assert list(record) == [
        "prompts", "prompts_crs", "prompts_layer", "bands", "stretch", "sensor", "method",
        "decoder", "tile_size", "overlap", "threshold", "min_area", "simplify", "save_prob",
        "device", "precision", "runtime", "max_object_tiles", "clicked_only", "scheduler",
        "workers", "threads",
    ]


def test_max_object_tiles_default_is_the_engines() -> None:
    from geofloodsam.tiles.engine import MAX_OBJECT_TILES

    assert SegmentConfig().max_object_tiles == MAX_OBJECT_TILES


def test_flood_overrides_go_to_flood_then_mapping() -> None:
    config = FloodConfig.with_overrides(
        None, min_area=5.0, method="index", quiet=True, reference_water=Path("r.tif")
    )
    assert config.min_area == 5.0 and config.mapping.min_area == 0.0  # the classes' filter
    assert config.mapping.method == "index" and config.mapping.quiet
    assert config.reference_water == "r.tif"
    with pytest.raises(GeofloodsamError, match="unknown flood option.s. colour"):
        FloodConfig.with_overrides(None, colour="red")


def test_evaluate_config_checks_its_choices() -> None:
    assert EvaluateConfig(methods=["index", "sam", "index"]).methods == ("index", "sam")
    with pytest.raises(GeofloodsamError, match="unknown prompt type dot"):
        EvaluateConfig(prompt_types=["dot"])
    with pytest.raises(GeofloodsamError, match="no decoder to evaluate"):
        EvaluateConfig(decoders=())
    assert EvaluateConfig(decoders=(), methods=["index"]).need_sam is False
    with pytest.raises(GeofloodsamError, match="unknown evaluate option.s. decoder\\b"):
        EvaluateConfig.with_overrides(None, decoder="flood")


def test_one_model_spec_for_every_load() -> None:
    from geofloodsam.model.sam import load_model

    load = inspect.signature(load_model).parameters
    spec = ModelSpec()
    for field in dataclasses.fields(ModelSpec):  # load_model's defaults are the spec's
        assert load[field.name].default == getattr(spec, field.name), field.name
    assert (load["precision"].default, load["runtime"].default) == ("auto", "auto")
    config = SegmentConfig(model="vit_t", checkpoint="ck.pt", precision="fp32", device="cpu")
    made = config.model_spec(None)
    assert made == ModelSpec("vit_t", "ck.pt", "flood", "cpu", precision="fp32")
    portable = config.model_spec("rel/d.pt").portable()
    assert Path(portable.checkpoint).is_absolute() and Path(portable.decoder).is_absolute()
    assert EvaluateConfig(model_name="tiny").model_spec() == ModelSpec("tiny")
