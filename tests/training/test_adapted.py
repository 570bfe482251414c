"""Encoder training (--train adapter|full): crops, the window decoder, files, resume, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geofloodsam.training.adapted import cut_window, decode_window, sam_resized, window_truth
from geofloodsam.training.prompt_sampling import lowres_truth, sample_prompts


@pytest.mark.parametrize("shape", [(300, 200), (1024, 700), (1500, 2100)])
def test_resized_images_preprocess_exactly_like_the_originals(tiny_model, shape):
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    resized = sam_resized(image, tiny_model.image_size)
    assert max(resized.shape[:2]) == 1024
    a, size_a = tiny_model.preprocess(image)
    b, size_b = tiny_model.preprocess(resized)
    assert size_a == size_b and torch.equal(a, b)


def test_the_whole_frame_as_window_is_the_ordinary_decoder(tiny_model):
    """decode_window on all tokens at (0, 0) is model.decode_lowres: same positions, prompts."""
    torch.manual_seed(0)
    feats = torch.randn(1, 32, 64, 64)
    prompts = tiny_model.prompt_tensors(
        (600, 800), np.array([[[100.0, 200.0], [300.0, 50.0]]]), np.array([[1, 0]]),
        np.array([[10.0, 20.0, 500.0, 400.0]]),
    )
    with torch.no_grad():
        want = tiny_model.decode_lowres(feats, prompts, multimask=True)
        got = decode_window(tiny_model, feats, prompts, (0, 0), multimask=True)
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


def test_window_positions_are_those_of_the_full_frame(tiny_model):
    """A window's tokens get the positional encoding of their place in the full frame (the
    slice of the dense encoding at the window's token offset)."""
    pe = tiny_model.dense_pe()
    seen = {}

    def spy(decoder, feats, image_pe, sparse, dense, multimask):
        seen["pe"] = image_pe
        return torch.zeros(1, 1, 4, 4), torch.zeros(1, 1)

    import geofloodsam.training.adapted as adapted

    original = adapted.predict_masks
    adapted.predict_masks = spy
    try:
        prompts = tiny_model.prompt_tensors((1024, 1024), boxes=np.array([[0, 0, 10, 10.0]]))
        decode_window(tiny_model, torch.zeros(1, 32, 8, 8), prompts, (5, 12), False)
    finally:
        adapted.predict_masks = original
    assert torch.equal(seen["pe"], pe[..., 5:13, 12:20])


def test_window_truth_keeps_prompts_and_targets_inside(tiny_model):
    water = np.zeros((800, 1000), bool)
    water[100:300, 100:900] = True  # a long lake
    valid = np.ones_like(water)
    truth = lowres_truth(water, valid, 1024)
    top, left, side = 0, 512, 256  # model-frame pixels
    win = window_truth(truth, top, left, side)
    rng = np.random.default_rng(0)
    for kind in ("box", "point", "points", "region"):
        batch = sample_prompts(win, kind, 2, rng)
        xy = batch.points.reshape(-1, 2) if batch.points is not None else batch.boxes.reshape(-1, 2)
        if batch.points is not None:
            xy = xy[batch.labels.reshape(-1) == 1]
        model_xy = xy * 1024 / 1000  # the image is 1000 wide: model frame = pixels * 1.024
        slack = 8 if batch.points is not None else 40  # box edges are jittered (<= 40 px)
        assert (model_xy[:, 0] >= left - slack).all()
        assert (model_xy[:, 0] <= left + side + slack).all()
        assert (model_xy[:, 1] <= top + side + slack).all()
        assert batch.targets[:, :, : left // 4].sum() == 0  # no water outside the window
    whole = sample_prompts(win, "none", 1, rng)
    assert whole.boxes.tolist() == [[0.0, 0.0, 1000.0, 800.0]]  # still the whole image
    cut = cut_window(truth.water, top // 4, left // 4, side // 4, 0.0)
    assert cut.shape == (64, 64) and cut.sum() > 0
    edge = cut_window(truth.valid, 240, 240, 64, False)  # past the image: padded invalid
    assert edge.shape == (64, 64) and not edge[-20:].any()


# ---------------------------------------------------------------------------- training runs
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from geofloodsam.cli import main  # noqa: E402
from geofloodsam.model.decoders import read_checkpoint  # noqa: E402
from geofloodsam.model.sam import load_model  # noqa: E402
from geofloodsam.training.finetune import finetune  # noqa: E402
from tests.conftest import FP32_TORCH  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_finetune import SPLITS, _segment_with, write_set  # noqa: E402

#: small and fast: 4 train images, 2 val, 128-pixel crops of the tiny model
OPTS = dict(
    model="tiny", epochs=2, batch_size=2, prompts_per_image=2, augment="flip", device="cpu",
    progress=False, patience=5, train="adapter", rank=2, crop=128,
)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = write_set(tmp_path_factory.mktemp("data") / "flood", SPLITS)
    (root / "images" / "6.png").write_bytes(b"the test image is never read")
    return root


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "finetune", "--data", str(data), "--out", str(out), "--model", "tiny", "--device", "cpu",
        "--epochs", "1", "--batch-size", "2", "--augment", "none", "--crop", "128", "--quiet",
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("train", ["adapter", "full"])
def test_encoder_training_through_the_command(dataset, tmp_path, train):
    out = tmp_path / "run" / "adapted.pt"
    result = CliRunner().invoke(main, _args(dataset, out, "--train", train, "--rank", "3"))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    found = read_checkpoint(out)
    meta = found.meta
    assert found.encoder_kind == ("lora" if train == "adapter" else "full")
    assert meta["train"] == train and meta["rank"] == 3 and meta["crop"] == 128
    assert meta["command"].startswith("geofloodsam ") and len(meta["encoder_sha256"]) == 64
    assert 0 <= meta["metrics"]["val_iou_box"] <= 1 and meta["epochs_run"] == 1
    if train == "adapter":  # adapters and decoder only: the file grows by the adapters
        assert all(k.endswith(("lora_a", "lora_b")) for k in found.encoder_state)
    model = load_model("tiny", device="cpu", decoder=out, **FP32_TORCH)
    assert model.encoder_sha256 == meta["encoder_sha256"]
    assert not (out.parent / "adapted.pt.resume.pt").exists()
    _segment_with(out, tmp_path)


def test_adapters_learn(dataset, tmp_path):
    """The adapters move away from zero and the encoder's output with them."""
    out = tmp_path / "a" / "adapted.pt"
    finetune(dataset, out, **{**OPTS, "epochs": 1, "lr": 1e-2})
    found = read_checkpoint(out)
    assert any(v.abs().sum() > 0 for k, v in found.encoder_state.items() if k.endswith("lora_b"))
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    base = load_model("tiny", device="cpu", **FP32_TORCH).encode(image).features
    adapted = load_model("tiny", device="cpu", decoder=out, **FP32_TORCH).encode(image).features
    assert not torch.allclose(base, adapted, atol=1e-5)


@pytest.mark.slow
def test_ctrl_c_mid_epoch_then_resume_continues_exactly(dataset, tmp_path, monkeypatch):
    """A Ctrl-C after a step of epoch 2 leaves the state of that step and no output; the
    resumed run ends with the weights and curves of an uninterrupted run."""
    from geofloodsam.training import adapted

    whole = finetune(dataset, tmp_path / "a" / "m.pt", **OPTS)
    original_init = adapted.EncoderTrainer.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)

        def stop(epoch, step):
            if (epoch, step) == (1, 1):
                raise KeyboardInterrupt

        self.on_step = stop

    out = tmp_path / "c" / "m.pt"
    monkeypatch.setattr(adapted.EncoderTrainer, "__init__", init)
    with pytest.raises(KeyboardInterrupt):
        finetune(dataset, out, **OPTS)
    monkeypatch.setattr(adapted.EncoderTrainer, "__init__", original_init)
    state = torch.load(out.parent / "m.pt.resume.pt", weights_only=True)
    assert state["epoch"] == 1 and state["partial"]["step"] == 1
    assert not out.exists() and not (out.parent / "curves.csv").exists()
    resumed = finetune(dataset, out, resume=True, **OPTS)
    assert resumed.curves == whole.curves
    a, c = read_checkpoint(tmp_path / "a" / "m.pt"), read_checkpoint(out)
    assert all(torch.equal(a.decoder[k], c.decoder[k]) for k in a.decoder)
    assert all(torch.equal(a.encoder_state[k], c.encoder_state[k]) for k in a.encoder_state)
    assert not (out.parent / "m.pt.resume.pt").exists()


def test_continue_from_an_adapted_model(dataset, tmp_path):
    """--init-decoder ADAPTED with --train adapter starts from its adapters (a vanishing rate
    ends where it started); --train decoder from it is a one-line error."""
    first = tmp_path / "first" / "m.pt"
    assert CliRunner().invoke(main, _args(dataset, first, "--train", "adapter", "--rank", "2",
                                          "--lr", "0.01")).exit_code == 0
    again = tmp_path / "again" / "m.pt"
    result = CliRunner().invoke(main, _args(dataset, again, "--train", "adapter", "--rank", "2",
                                            "--lr", "1e-12", "--init-decoder", str(first)))
    assert result.exit_code == 0, result.output
    a, b = read_checkpoint(first), read_checkpoint(again)
    assert all(torch.equal(a.encoder_state[k], b.encoder_state[k]) for k in a.encoder_state)
    bad = tmp_path / "bad" / "m.pt"
    _fails(_args(dataset, bad, "--init-decoder", str(first)), "is an adapted model", bad)


def _fails(args: list[str], needle: str, out: Path) -> None:
    result = CliRunner().invoke(main, args)
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: ") and needle in lines[0], lines
    assert not out.exists() and not out.parent.joinpath("curves.csv").exists()


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--train", "adapter", "--model", "vit_b"], "TinyViT image encoder only, not the vit_b"),
        (["--train", "full", "--model", "vit_h"], "--train full knows MobileSAM's TinyViT"),
        (["--train", "adapter", "--rank", "0"], "--rank must be at least 1"),
        (["--train", "adapter", "--crop", "100"], "--crop 100: give a multiple of 16"),
        (["--train", "adapter", "--encoder-lr", "-1"], "--encoder-lr must be positive"),
    ],
)
def test_bad_encoder_training_options(dataset, tmp_path, extra, needle, monkeypatch):
    def no_model(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("geofloodsam.training.finetune.load_model", no_model)
    args = _args(dataset, tmp_path / "o" / "m.pt", *extra)  # the last --model given wins
    _fails(args, needle, tmp_path / "o" / "m.pt")
