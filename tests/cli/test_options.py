"""Options shared by the commands: every command accepts the same --bands / --stretch / --device
/ --precision / --runtime values, since they are one definition (``geofloodsam.cli.options``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import from_origin

from geofloodsam.cli import main
from geofloodsam.cli.evaluate import evaluate
from geofloodsam.cli.finetune import finetune
from geofloodsam.cli.segment import segment

COMMANDS = {"segment": segment, "evaluate": evaluate, "finetune": finetune}


@pytest.mark.parametrize(
    "name", ["bands", "stretch", "device", "precision", "runtime", "checkpoint", "quiet"]
)
def test_commands_share_one_definition_of_each_option(name: str) -> None:
    options = [next(p for p in cmd.params if p.name == name) for cmd in COMMANDS.values()]
    first = options[0]
    for other in options[1:]:
        assert other.opts == first.opts and other.callback is first.callback
        assert getattr(other, "type", None).__class__ is first.type.__class__


def _chips(root: Path) -> Path:
    """Two 4-band uint16 chips with labels (Sen1Floods11 layout)."""
    rng = np.random.default_rng(0)
    for i in range(2):
        for folder, data in (
            ("S2Hand", rng.integers(100, 3000, (4, 32, 32)).astype(np.uint16)),
            ("LabelHand", np.tile((np.arange(32) < 16).astype(np.int16), (1, 32, 1))),
        ):
            path = root / folder / f"Chip_{i}_{folder}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(
                path, "w", driver="GTiff", width=32, height=32, count=data.shape[0],
                dtype=data.dtype, crs="EPSG:4326", transform=from_origin(10, 50, 1e-4, 1e-4),
            ) as ds:
                ds.write(data)
    return root


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra", [["--stretch", "none"], ["--stretch", "0,3000"], ["--bands", "1"],
              ["--bands", "4,3,2", "--stretch", "auto"]],
)
def test_evaluate_takes_what_segment_and_finetune_take(tmp_path: Path, extra) -> None:
    data = _chips(tmp_path / "chips")
    result = CliRunner().invoke(main, [
        "evaluate", "--model", "tiny", "--device", "cpu", "-q", "--data", str(data),
        "--split", "all", "--decoder", "pretrained", "--prompt", "box", "--examples", "0",
        "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out"), *extra,
    ])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "metrics.csv").is_file()


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    "args, message",
    [(["--stretch", "3000,0"], "needs finite MIN < MAX"), (["--bands", "1,2"], "takes 1 band"),
     (["--stretch", "loud"], "must be 'auto', 'none' or MIN,MAX")],
)
def test_every_command_refuses_the_same_bad_values(command, args, message, tmp_path) -> None:
    needs = {"segment": ["scene.tif"], "evaluate": ["--data", str(tmp_path)],
             "finetune": ["--data", str(tmp_path), "--out", str(tmp_path / "d.pt")]}
    result = CliRunner().invoke(main, [command, *needs[command], *args])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
