"""Options shared by several commands, defined once so that every command accepts the same
values (like rasterio's ``rio/options.py``). Nothing here imports torch: ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import click

from geofloodsam.model.choices import DEVICE_CHOICES, PRECISION_CHOICES, RUNTIME_CHOICES
from geofloodsam.raster.radar_units import SensorWarning
from geofloodsam.raster.sensors import SAR_UNITS, SENSORS, sensor_spec
from geofloodsam.segmentation.config import SegmentConfig
from geofloodsam.water.methods import METHOD_CHOICES


def _bands(ctx: click.Context, param: click.Parameter, value: str | None):
    from geofloodsam.raster.scene import parse_bands

    return parse_bands(value)


def _stretch(ctx: click.Context, param: click.Parameter, value: str | None):
    from geofloodsam.raster.scene import parse_stretch

    return parse_stretch(value)


bands_option = click.option(
    "--bands",
    default=None,
    callback=_bands,
    help="1 band (repeated to RGB) or 3 bands R,G,B, 1-based, e.g. 4,3,2 "
    "[default: 1,2,3, or 1 for single-band rasters].",
)
stretch_option = click.option(
    "--stretch",
    default="auto",
    show_default=True,
    callback=_stretch,
    help="To 8-bit: 'auto' (2-98 percentiles of the scene; 8-bit data as is), 'none' "
    "(values used as 0-255) or MIN,MAX.",
)
def _s2_offset(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from geofloodsam.errors import GeofloodsamError

    if value != "auto":
        try:
            float(value)
        except ValueError:
            raise GeofloodsamError(
                f"--s2-offset {value}: give a number of DN (e.g. -1000, the L2A "
                "BOA_ADD_OFFSET from processing baseline 04.00) or auto."
            ) from None
    return value


class SensorChoice(click.Choice):
    """``--sensor``'s choices, read from the sensor registry when asked (so a sensor
    registered after this module was imported is a choice too)."""

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        return SENSORS.choices()

    @choices.setter
    def choices(self, value) -> None:  # click sets it in __init__: the registry decides
        pass


class SensorOption(click.Option):
    """``--sensor``, whose help lists the registered sensors (:meth:`SensorRegistry.help`)."""

    @property
    def help(self) -> str:
        return (f"{SENSORS.help()}; auto: from band count, type, descriptions and values. "
                "Satellite sensors get a fixed physical composite, the same for every tile "
                "and scene.")

    @help.setter
    def help(self, value) -> None:
        pass


_SENSOR_OPTIONS = (
    click.option(
        "--sensor",
        cls=SensorOption,
        type=SensorChoice(),
        default="auto",
        show_default=True,
    ),
    click.option(
        "--sar-units",
        type=click.Choice(SAR_UNITS),
        default="auto",
        show_default=True,
        help="Radar units: db, power (linear), amplitude (DN: relative, split per scene); "
        "auto: from the band metadata, then the values.",
    ),
    click.option(
        "--s2-offset",
        default="auto",
        show_default=True,
        callback=_s2_offset,
        help="Sentinel-2 L2A BOA_ADD_OFFSET in DN (e.g. -1000 from baseline 04.00); auto: "
        "from the metadata, else none.",
    ),
)


def _one_line_sensor_warnings(show):
    """A ``warnings.showwarning`` printing :class:`SensorWarning` as one ``Warning:`` line."""

    def one_line(message, category, *args, **kwargs):
        if issubclass(category, SensorWarning):
            click.echo(f"Warning: {message}", err=True)
        else:
            show(message, category, *args, **kwargs)

    return one_line


def sensor_option(f):
    """``--sensor``, ``--sar-units`` and ``--s2-offset``, folded into one ``sensor`` spec
    (:func:`geofloodsam.raster.sensors.sensor_spec`): the command gets ``sensor`` only."""

    @functools.wraps(f)
    def command(*args, **kwargs):
        kwargs["sensor"] = sensor_spec(
            kwargs["sensor"], kwargs.pop("sar_units"), kwargs.pop("s2_offset")
        )
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_sensor_warnings(warnings.showwarning)
            return f(*args, **kwargs)

    for option in reversed(_SENSOR_OPTIONS):
        command = option(command)
    return command
_METHOD_HELP = (
    "sam: SAM alone; index: the water index alone (NDWI, radar split), no SAM; fused: "
    "the index where it is sure, SAM elsewhere where SAM agrees with it. auto: index for "
    "promptless s1/sar/s2/naip (cross-validated: SAM did not add), sam otherwise."
)
method_option = click.option(
    "--method",
    type=click.Choice(METHOD_CHOICES),
    default="auto",
    show_default=True,
    help=_METHOD_HELP,
)
#: ``--method`` repeatable (``evaluate`` scores several), the same choices as ``method_option``
methods_option = click.option(
    "--method",
    "methods",
    type=click.Choice(METHOD_CHOICES),
    multiple=True,
    default=("sam",),
    show_default=True,
    help="Repeatable. " + _METHOD_HELP + " In evaluate: sam = every --decoder x --prompt; "
    "index = one row; fused and auto = one promptless row per --decoder.",
)
device_option = click.option(
    "--device",
    type=click.Choice(DEVICE_CHOICES),
    default="auto",
    show_default=True,
    help="auto: CUDA when available (batched encoding, mixed precision), else the CPU.",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(PRECISION_CHOICES),
    default="auto",
    show_default=True,
    help="Image encoder precision. auto: fp32 on the CPU (bf16 and int8 moved masks beyond "
    "IoU 0.98 of fp32), bf16 autocast on CUDA; fp32 + torch: the reference path; bf16: "
    "faster where the CPU has bf16 units, masks less exact; int8: int8 weights on OpenVINO "
    "(pip install geofloodsam[int8]), faster on AVX-512 VNNI CPUs, masks less exact.",
)
runtime_option = click.option(
    "--runtime",
    type=click.Choice(RUNTIME_CHOICES),
    default="auto",
    show_default=True,
    help="Image encoder runtime. auto: OpenVINO on the CPU when installed "
    "(pip install geofloodsam[openvino]), else torch.",
)
checkpoint_option = click.option(
    "--checkpoint",
    default=None,
    type=click.Path(path_type=Path),
    help="Base model checkpoint [default: the registry's, fetched and verified].",
)


prompts_layer_option = click.option(
    "--prompts-layer",
    metavar="NAME",
    help="The layer of a prompts file with several (a GeoPackage); the error lists them.",
)


clicked_only_option = click.option(
    "--clicked-only",
    is_flag=True,
    help="Map only the water bodies the clicks point at. By default a click on an RGB scene "
    "also maps the scene's other water of the clicked colours (SAM's promptless water).",
)


def model_option(name: str = "model"):
    """``--model``, stored under ``name``."""
    return click.option(
        "--model",
        name,
        default="vit_t",
        show_default=True,
        help="Base SAM model: vit_t (MobileSAM), vit_b, vit_l, vit_h.",
    )


def quiet_option(help: str = "No progress bars.") -> click.decorators.FC:
    """``--quiet`` / ``-q``."""
    return click.option("--quiet", "-q", is_flag=True, help=help)


#: ``segment``'s (and ``flood``'s mapping) defaults: the options below take theirs from it
SEGMENT_DEFAULTS = SegmentConfig()


def mapping_options(polygons: str = "polygons"):
    """``--tile-size``, ``--overlap``, ``--threshold``, ``--min-area`` and ``--simplify``,
    their defaults from :class:`~geofloodsam.segmentation.config.SegmentConfig`."""
    d = SEGMENT_DEFAULTS
    options = (
        click.option("--tile-size", default=d.tile_size, show_default=True, type=int,
                     help="Tile side (px)."),
        click.option("--overlap", default=d.overlap, show_default=True, type=int,
                     help="Tile overlap (px)."),
        click.option("--threshold", default=d.threshold, show_default=True, type=float,
                     help="Water probability cut."),
        click.option("--min-area", default=d.min_area, show_default=True, type=float,
                     help=f"Drop {polygons} below (m²)."),
        click.option("--simplify", default=d.simplify, show_default=True, type=float,
                     help=f"Simplify {polygons} (metres)."),
    )

    def decorate(f):
        for option in reversed(options):
            f = option(f)
        return f

    return decorate
