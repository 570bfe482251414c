"""Decoder fine-tuning: the loss, a tiny training through the command, resume, bad input."""

from __future__ import annotations

import copy
import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from PIL import Image
from rasterio.transform import from_origin

from geofloodsam.cli import main
from geofloodsam.datasets.reading import SPLIT_COLUMNS
from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.decoders import read_decoder
from geofloodsam.model.sam import load_model
from geofloodsam.training.finetune import (
    FinetuneConfig,
    _swapped_decoder,
    finetune,
    mask_loss,
    prompt_loss,
)
from geofloodsam.training.prompt_sampling import lowres_truth, sample_prompts
from tests.conftest import FP32_TORCH

SIZE = (40, 56)


def _scene(i: int) -> tuple[np.ndarray, np.ndarray]:
    """A grassy image with a blue flooded rectangle whose place varies with ``i``."""
    rng = np.random.default_rng(i)
    h, w = SIZE
    image = np.empty((h, w, 3), dtype=np.uint8)
    image[:] = (70, 120, 50)
    image = np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), dtype=np.uint8)
    r0, c0 = 4 + 3 * (i % 4), 6 + 5 * (i % 3)
    mask[r0 : r0 + 18, c0 : c0 + 26] = 255
    image[mask > 0] = (40, 70, 160)
    return image, mask


def write_set(root: Path, splits: list[str]) -> Path:
    """images/ + masks/ + splits.csv of synthetic flood scenes."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    with open(root / "splits.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SPLIT_COLUMNS)
        for i, split in enumerate(splits):
            image, mask = _scene(i)
            Image.fromarray(image).save(root / "images" / f"{i}.png")
            Image.fromarray(mask).save(root / "masks" / f"{i}.png")
            w.writerow([i, f"images/{i}.png", f"masks/{i}.png", split])
    return root


SPLITS = ["train"] * 4 + ["val"] * 2 + ["test"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """4 train, 2 val and 1 test image; the test image is garbage (never read by training)."""
    root = write_set(tmp_path_factory.mktemp("data") / "flood", SPLITS)
    (root / "images" / "6.png").write_bytes(b"this is not read")
    return root


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("emb")


def _args(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "finetune", "--data", str(data), "--out", str(out), "--model", "tiny",
        "--cache-dir", str(cache), "--device", "cpu", "--epochs", "1", "--batch-size", "2",
        "--prompts-per-image", "2", "--augment", "none", "--quiet", *extra,
    ]  # fmt: skip


def _state(path: Path) -> dict[str, torch.Tensor]:
    return read_decoder(path)[0]


# ---------------------------------------------------------------------------- loss
def test_mask_loss_ignores_nodata_and_rewards_the_truth():
    target = torch.zeros(1, 8, 8)
    target[:, :, :4] = 1
    valid = torch.ones(1, 8, 8, dtype=torch.bool)
    valid[:, 0] = False
    good = (target * 20 - 10)[:, None]
    bad = -good
    assert mask_loss(good, target, valid)[0, 0] < 0.01 < mask_loss(bad, target, valid)[0, 0]
    scribbled = good.clone()
    scribbled[:, :, 0] = 10.0  # wrong, but only in the nodata row
    assert torch.allclose(mask_loss(scribbled, target, valid), mask_loss(good, target, valid))


def test_best_of_three_masks_for_single_points(tiny_model):
    truth = lowres_truth(_scene(0)[1] > 127, np.ones(SIZE, bool))
    batch = sample_prompts(truth, "point", 2, np.random.default_rng(0))
    h, w = truth.water.shape
    t = torch.as_tensor(truth.water)
    low = torch.full((2, 3, 256, 256), -10.0)
    low[:, 1, :h, :w] = t * 20 - 10  # mask 1 is perfect, 0 and 2 empty
    iou = torch.zeros(2, 3)
    best, _ = prompt_loss(low, iou, batch, truth, FinetuneConfig(data="", iou_weight=0))
    mean, _ = prompt_loss(
        low, iou, batch, truth, FinetuneConfig(data="", multimask="all", iou_weight=0)
    )
    assert best < 0.05 and mean > 0.5


@pytest.mark.slow
def test_loss_goes_down_on_a_fixed_batch(tiny_model):
    """A few AdamW steps on fixed prompts and one embedding lower the loss."""
    image, mask = _scene(1)
    emb = tiny_model.encode(image)
    truth = lowres_truth(mask > 127, np.ones(SIZE, bool))
    batch = sample_prompts(truth, "box", 3, np.random.default_rng(0))
    cfg = FinetuneConfig(data="")
    torch.manual_seed(0)
    decoder = copy.deepcopy(tiny_model.sam.mask_decoder)
    for p in decoder.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(decoder.parameters(), lr=1e-2)
    losses = []
    with _swapped_decoder(tiny_model, decoder):
        prompts = tiny_model.prompt_tensors(emb.original_size, boxes=batch.boxes)
        for _ in range(12):
            opt.zero_grad()
            low, iou = tiny_model.decode_lowres(emb.features, prompts)
            loss, _ = prompt_loss(low, iou, batch, truth, cfg)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    assert losses[-1] < 0.75 * losses[0]
    assert tiny_model.sam.mask_decoder is not decoder  # the shared model is left as it was


# ---------------------------------------------------------------------------- the command
@pytest.mark.slow
def test_tiny_training_through_the_command(dataset, cache_dir, tmp_path):
    out = tmp_path / "run" / "decoder.pt"
    result = CliRunner().invoke(main, _args(dataset, out, cache_dir))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "val IoU box" in result.output
    state, meta = read_decoder(out)
    tiny = load_model("tiny", device="cpu", **FP32_TORCH)
    assert set(state) == set(tiny.sam.mask_decoder.state_dict())
    assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert meta["base_model"] == "tiny" and meta["base_sha256"] == "tiny-seed-0"
    assert meta["split"] == "train" and meta["prompt_mode"] == "mixed"
    assert meta["n_train"] == 4 and meta["n_val"] == 2 and meta["epochs_run"] == 1
    assert 0 <= meta["metrics"]["val_iou_box"] <= 1
    with open(out.parent / "curves.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and {"train_loss", "val_loss", "val_iou_box"} <= set(rows[0])
    assert (out.parent / "curves.png").stat().st_size > 1000
    assert not (out.parent / "decoder.pt.resume.pt").exists()
    # the decoder loads into the model layer and into segment
    model = load_model("tiny", device="cpu", decoder=out, **FP32_TORCH)
    assert model.decoder_name == str(out) and model.decoder_meta["seed"] == 0
    torch.testing.assert_close(
        model.sam.mask_decoder.state_dict()["iou_token.weight"], state["iou_token.weight"].float()
    )
    _segment_with(out, tmp_path)


def _segment_with(decoder: Path, tmp_path: Path) -> None:
    from geofloodsam.segmentation.pipeline import segment

    image, _ = _scene(0)
    scene = tmp_path / "scene.tif"
    profile = dict(
        driver="GTiff", width=SIZE[1], height=SIZE[0], count=3, dtype="uint8",
        crs="EPSG:32633", transform=from_origin(500000, 4000000, 10, 10),
    )  # fmt: skip
    with rasterio.open(scene, "w", **profile) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    result = segment(
        scene, outdir=tmp_path / "seg", model="tiny", decoder=decoder, device="cpu", quiet=True
    )
    with rasterio.open(result.mask_path) as ds:
        assert ds.read(1).shape == SIZE
    assert result.record["model"]["decoder"] == str(decoder)


@pytest.mark.slow
def test_deterministic_and_resume_continues_exactly(dataset, cache_dir, tmp_path):
    """An interrupted run, resumed, ends with the same curves and weights as one run.

    The interrupted run recomputes epoch 1 on its own, so equal curves also show that a run
    is deterministic for its seed.
    """
    opts = dict(
        model="tiny", epochs=2, batch_size=2, prompts_per_image=2, augment="flip",
        cache_dir=str(cache_dir), device="cpu", progress=False, patience=5,
    )  # fmt: skip
    full = finetune(dataset, tmp_path / "a" / "dec.pt", **opts)

    class Interrupt(Exception):
        pass

    def stop_after_one(epoch, row):
        raise Interrupt

    out = tmp_path / "c" / "dec.pt"
    with pytest.raises(Interrupt):
        finetune(dataset, out, on_epoch_end=stop_after_one, **opts)
    assert not out.exists() and (out.parent / "dec.pt.resume.pt").exists()
    resumed = finetune(dataset, out, resume=True, **opts)
    assert len(full.curves) == 2 and resumed.curves == full.curves
    a, c = _state(tmp_path / "a" / "dec.pt"), _state(out)
    assert all(torch.equal(a[k], c[k]) for k in a)
    assert not (out.parent / "dec.pt.resume.pt").exists()


@pytest.mark.slow
def test_real_vit_t_on_three_small_images(shared, vit_t, mobile_sam_path, tmp_path):
    source = shared("data/flood-area-segmentation")
    root = tmp_path / "small"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows = [("1037", "train"), ("2043", "train"), ("1042", "val")]  # small photos
    for sid, _ in rows:
        shutil.copy(source / "images" / f"{sid}.jpg", root / "images")
        shutil.copy(source / "masks" / f"{sid}.png", root / "masks")
    with open(root / "splits.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SPLIT_COLUMNS)
        w.writerows([(s, f"images/{s}.jpg", f"masks/{s}.png", sp) for s, sp in rows])
    out = tmp_path / "vit_t" / "dec.pt"
    before = {k: v.clone() for k, v in vit_t.sam.mask_decoder.state_dict().items()}
    result = finetune(
        root, out, sam_model=vit_t, epochs=1, batch_size=2, prompts_per_image=1,
        augment="none", cache_dir=str(tmp_path / "emb"), progress=False,
    )  # fmt: skip
    assert result.epochs_run == 1 and 0 <= result.val["iou_box"] <= 1
    after = vit_t.sam.mask_decoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # fixture untouched
    model = load_model("vit_t", checkpoint=mobile_sam_path, device="cpu", decoder=out, **FP32_TORCH)
    assert model.decoder_meta["base_sha256"] == vit_t.checkpoint_sha256


# ---------------------------------------------------------------------------- bad input
def _fails(args: list[str], match: str, out_dir: Path) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert match in lines[0], lines[0]
    assert not out_dir.exists() or not any(out_dir.iterdir())


@pytest.fixture
def bad_set(tmp_path) -> Path:
    return write_set(tmp_path / "bad", ["train", "train", "val"])


def test_missing_split_file(tmp_path, cache_dir):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "o" / "d.pt"
    _fails(_args(tmp_path / "empty", out, cache_dir), "is not a data set", out.parent)


def test_missing_split_columns(bad_set, cache_dir, tmp_path):
    (bad_set / "splits.csv").write_text("id,image,split\n0,images/0.png,train\n")
    out = tmp_path / "o" / "d.pt"
    _fails(_args(bad_set, out, cache_dir), "lacks column(s) mask", out.parent)


def test_image_mask_size_mismatch(bad_set, cache_dir, tmp_path):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(bad_set / "masks" / "1.png")
    out = tmp_path / "o" / "d.pt"
    _fails(_args(bad_set, out, cache_dir), "masks must have their image's size", out.parent)


def test_unreadable_image(bad_set, cache_dir, tmp_path):
    (bad_set / "images" / "0.png").write_bytes(b"\x89PNG garbage")
    out = tmp_path / "o" / "d.pt"
    _fails(_args(bad_set, out, cache_dir), "cannot read image", out.parent)


def test_truncated_image(bad_set, cache_dir, tmp_path):
    path = bad_set / "images" / "0.png"
    path.write_bytes(path.read_bytes()[:200])  # header fine, pixels missing
    out = tmp_path / "o" / "d.pt"
    _fails(_args(bad_set, out, cache_dir), "cannot read image", out.parent)


def test_empty_mask_set(bad_set, cache_dir, tmp_path):
    for i in (0, 1):
        Image.fromarray(np.zeros(SIZE, np.uint8)).save(bad_set / "masks" / f"{i}.png")
    out = tmp_path / "o" / "d.pt"
    _fails(_args(bad_set, out, cache_dir), "contain no water", out.parent)


def test_no_pairs(bad_set, cache_dir, tmp_path):
    (bad_set / "splits.csv").unlink()
    shutil.rmtree(bad_set / "masks")
    (bad_set / "masks").mkdir()
    out = tmp_path / "o" / "d.pt"
    _fails(_args(bad_set, out, cache_dir), "no image/mask pairs", out.parent)


def test_resume_without_state(dataset, cache_dir, tmp_path):
    out = tmp_path / "o" / "d.pt"
    _fails(_args(dataset, out, cache_dir, "--resume"), "nothing to resume", out.parent)


@pytest.fixture(scope="module")
def interrupted(dataset, cache_dir, tmp_path_factory) -> Path:
    """The output path of a run interrupted after its first epoch (its resume state kept)."""
    out = tmp_path_factory.mktemp("interrupted") / "o" / "d.pt"

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        finetune(
            dataset, out, model="tiny", epochs=2, batch_size=2, prompts_per_image=1,
            augment="none", cache_dir=str(cache_dir), device="cpu", progress=False,
            on_epoch_end=stop,
        )  # fmt: skip
    return out


def test_resume_with_another_base_model(dataset, cache_dir, interrupted):
    out = interrupted
    args = _args(dataset, out, cache_dir, "--resume")
    args[args.index("tiny")] = "vit_t"
    args[args.index("--epochs") + 1] = "2"
    args[args.index("--prompts-per-image") + 1] = "1"
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "base model tiny, not vit_t" in result.output
    # same name, other checkpoint: refused through the checkpoint hash
    with pytest.raises(GeofloodsamError, match="checkpoint SHA-256"):
        finetune(
            dataset, out, resume=True,
            sam_model=load_model("tiny", device="cpu", seed=5, **FP32_TORCH),
            epochs=2, batch_size=2, prompts_per_image=1, augment="none",
            cache_dir=str(cache_dir), progress=False,
        )  # fmt: skip
    assert not out.exists()


def test_resume_with_other_settings(dataset, cache_dir, interrupted):
    out = interrupted
    args = _args(dataset, out, cache_dir, "--resume", "--lr", "0.01")
    args[args.index("--epochs") + 1] = "2"
    args[args.index("--prompts-per-image") + 1] = "1"
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "other settings than the interrupted run (lr)" in result.output
    assert not out.exists()


@pytest.mark.parametrize("where", ["through a file", "folder at curves.csv"])
def test_an_unwritable_out_is_found_before_training(bad_set, cache_dir, tmp_path, monkeypatch,
                                                    where) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = blocker / "o" / "d.pt"
    if where == "folder at curves.csv":
        out = tmp_path / "o" / "d.pt"
        (out.parent / "curves.csv").mkdir(parents=True)

    def no_training(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("geofloodsam.training.finetune.load_model", no_training)
    result = CliRunner().invoke(main, _args(bad_set, out, cache_dir))
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "a_file is a file" in lines[0] or "in the way" in lines[0], lines[0]
    assert blocker.read_text() == "x" and not out.exists()


def test_images_without_masks_stop_finetune(tmp_path, cache_dir, write_photo_set) -> None:
    root = tmp_path / "plain"
    write_photo_set(root, ["train"] * 4)
    (root / "splits.csv").unlink()
    (root / "masks" / "1.png").unlink()
    out = tmp_path / "o" / "d.pt"
    _fails(_args(root, out, cache_dir), "1 image(s)", out.parent)


def test_training_starts_from_init_decoder(dataset, cache_dir, tmp_path):
    """--init-decoder FILE: a run with a vanishing learning rate ends where FILE started."""
    first = tmp_path / "first" / "decoder.pt"
    assert CliRunner().invoke(main, _args(dataset, first, cache_dir, "--lr", "0.01")).exit_code == 0
    again = tmp_path / "again" / "decoder.pt"
    result = CliRunner().invoke(
        main, _args(dataset, again, cache_dir, "--lr", "1e-12", "--init-decoder", str(first))
    )
    assert result.exit_code == 0, result.output
    start, end = _state(first), _state(again)
    pretrained = load_model("tiny", device="cpu", **FP32_TORCH).sam.mask_decoder.state_dict()
    assert all(torch.equal(start[k], end[k]) for k in start)
    assert any(not torch.equal(start[k].float(), pretrained[k].float()) for k in start)
    meta = read_decoder(again)[1]
    assert meta["init_decoder"] == str(first) and len(meta["init_decoder_sha256"]) == 64


def test_init_decoder_not_found(dataset, cache_dir, tmp_path):
    result = CliRunner().invoke(
        main, _args(dataset, tmp_path / "d.pt", cache_dir, "--init-decoder", "nowhere.pt")
    )
    assert result.exit_code != 0
    assert "nowhere.pt" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d.pt").exists() and not list(tmp_path.glob("curves.*"))


def test_chips_of_two_sensors_need_sensor(tmp_path, cache_dir, write_chip_set):
    root = write_chip_set(tmp_path / "chips", sensors=("s1", "s2"))
    out = tmp_path / "run" / "decoder.pt"
    result = CliRunner().invoke(main, _args(root, out, cache_dir))
    assert result.exit_code != 0 and "--sensor" in result.output, result.output
    assert "Traceback" not in result.output
    assert not out.exists() and not (out.parent / "curves.csv").exists()
    first = result.output
    result = CliRunner().invoke(main, _args(root, out, cache_dir, "--sensor", "s1"))
    # the sensor is chosen: what is left is that 2 chips give no val split
    assert "--sensor" not in result.output and "split 'val'" in result.output, first
