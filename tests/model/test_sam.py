"""The model layer: real MobileSAM weights, the tiny random SAM, decoders, bad input."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from geofloodsam.errors import GeofloodsamError
from geofloodsam.evaluation.metrics import scores
from geofloodsam.model.decoders import read_decoder, save_decoder
from geofloodsam.model.sam import Prediction, PromptableModel, load_model
from tests.conftest import FP32_TORCH


def lake_tile(size: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dark textured elliptical lake on textured land, and the lake's exact mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    lake = ((xx - 0.55 * size) / (0.28 * size)) ** 2 + (
        (yy - 0.45 * size) / (0.18 * size)
    ) ** 2 <= 1
    # land: mottled green/brown fields with fine noise
    fields = np.sin(xx / 23.0) * np.cos(yy / 31.0) + 0.5 * np.sin((xx + yy) / 11.0)
    noise = rng.normal(0, 12, (size, size, 3))
    land = np.stack([120 + 25 * fields, 140 + 20 * fields, 80 + 15 * fields], axis=-1) + noise
    water = np.stack([30 + 0 * xx, 55 + 0 * xx, 75 + 0 * xx], axis=-1) + rng.normal(
        0, 4, (size, size, 3)
    )
    image = np.where(lake[..., None], water, land)
    return np.clip(image, 0, 255).astype(np.uint8), lake


def test_tiny_model_follows_the_protocol(tiny_model) -> None:
    assert isinstance(tiny_model, PromptableModel)
    assert tiny_model.image_size == 1024


@pytest.mark.parametrize("shape", [(300, 500), (500, 300), (64, 64), (1024, 1024)])
def test_tiny_decode_returns_logits_at_input_size(tiny_model, shape: tuple[int, int]) -> None:
    image = np.random.default_rng(1).integers(0, 255, (*shape, 3), dtype=np.uint8)
    emb = tiny_model.encode(image)
    assert emb.original_size == shape
    pred = tiny_model.decode(
        emb,
        points=np.array([[[10.5, 20.5]], [[5.5, 5.5]]]),
        point_labels=np.array([[1], [1]]),
        multimask=True,
    )
    assert isinstance(pred, Prediction)
    assert pred.logits.shape == (2, 3, *shape)
    assert pred.iou.shape == (2, 3)
    assert pred.best_logits().shape == (2, *shape)
    assert pred.best_low_res().shape == (2, 1, 256, 256)
    # only the best masks upscaled: exactly those masks of the full upscaled logits
    lazy = tiny_model.decode(
        emb, points=np.array([[[10.5, 20.5]], [[5.5, 5.5]]]), point_labels=np.array([[1], [1]]),
        multimask=True,
    ).best_logits()
    np.testing.assert_array_equal(lazy, pred.logits[[0, 1], pred.best_index()])


def test_one_embedding_serves_many_prompts(tiny_model) -> None:
    image = np.random.default_rng(2).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    emb = tiny_model.encode(image)
    boxes = np.array([[0, 0, 100, 100], [50, 50, 250, 150], [10, 20, 30, 40]], dtype=float)
    together = tiny_model.decode(emb, boxes=boxes)
    alone = [tiny_model.decode(emb, boxes=b[None]).logits[0] for b in boxes]
    np.testing.assert_allclose(together.logits[:, 0], np.stack(alone)[:, 0], atol=1e-4)


def test_batched_encoding_equals_single(tiny_model) -> None:
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, s + (3,), dtype=np.uint8) for s in [(100, 150), (256, 256)]]
    tiny_model.batch_size = 2
    try:
        batched = tiny_model.encode_batch(images)
    finally:
        tiny_model.batch_size = 1
    for image, emb in zip(images, batched, strict=True):
        torch.testing.assert_close(
            emb.features, tiny_model.encode(image).features, atol=1e-4, rtol=0
        )


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 4), dtype=np.uint8),
        np.zeros((10, 10, 3), dtype=np.float32),
        [[1, 2, 3]],
    ],
    ids=["gray", "rgba", "float", "list"],
)
def test_non_rgb_image_is_a_one_line_error(tiny_model, bad) -> None:
    with pytest.raises(GeofloodsamError) as err:
        tiny_model.encode(bad)
    assert "\n" not in err.value.message
    assert "RGB" in err.value.message


def test_decode_without_prompt_is_an_error(tiny_model) -> None:
    emb = tiny_model.encode(np.zeros((32, 32, 3), dtype=np.uint8))
    with pytest.raises(GeofloodsamError, match="at least one prompt"):
        tiny_model.decode(emb)


def test_unknown_model_and_device() -> None:
    with pytest.raises(GeofloodsamError, match="unknown model"):
        load_model("vit_x", **FP32_TORCH)
    if not torch.cuda.is_available():
        with pytest.raises(GeofloodsamError, match="CUDA is not available"):
            load_model("tiny", device="cuda", **FP32_TORCH)


def test_decoder_roundtrip_and_refusal(tmp_path: Path) -> None:
    model = load_model("tiny", device="cpu", seed=1, **FP32_TORCH)
    state = {k: v + 0.01 for k, v in model.sam.mask_decoder.state_dict().items()}
    meta = {"base_model": "tiny", "base_sha256": model.checkpoint_sha256, "epochs": 1}
    path = save_decoder(tmp_path / "dec.pt", state, meta, half=True)
    loaded, read_meta = read_decoder(path)
    assert set(loaded) == set(state) and read_meta["epochs"] == 1 and "version" in read_meta
    tuned = load_model("tiny", device="cpu", seed=1, decoder=path, **FP32_TORCH)
    assert tuned.decoder_sha256 and tuned.info()["decoder"] == str(path)
    for key, value in tuned.sam.mask_decoder.state_dict().items():
        torch.testing.assert_close(value, state[key].half().to(value.dtype))
    # the same decoder refused for another base model (different checkpoint hash)
    with pytest.raises(GeofloodsamError, match="fine-tuned for base model") as err:
        load_model("tiny", device="cpu", seed=2, decoder=path, **FP32_TORCH)
    assert "\n" not in err.value.message


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04truncated"])
def test_bad_decoder_file_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(GeofloodsamError) as err:
        load_model("tiny", device="cpu", decoder=path, **FP32_TORCH)
    assert "\n" not in err.value.message


def test_truncated_checkpoint_is_a_one_line_error(tmp_path: Path, mobile_sam_path: Path) -> None:
    cut = tmp_path / "mobile_sam.pt"
    cut.write_bytes(mobile_sam_path.read_bytes()[:5_000_000])
    with pytest.raises(GeofloodsamError) as err:
        load_model("vit_t", checkpoint=cut, device="cpu", **FP32_TORCH)
    assert "truncated" in err.value.message and "\n" not in err.value.message


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "tiny.pt"
    torch.save(load_model("tiny", device="cpu", **FP32_TORCH).sam.state_dict(), other)
    with pytest.raises(GeofloodsamError, match="does not fit model vit_t"):
        load_model("vit_t", checkpoint=other, device="cpu", **FP32_TORCH)


def test_works_without_torchvision() -> None:
    """Block torchvision imports entirely: the package must not need it."""
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in ('torchvision', 'timm'):
                    raise ImportError('blocked ' + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from geofloodsam.model.sam import load_model
        m = load_model('tiny', device='cpu', precision='fp32', runtime='torch')
        p = m.decode(m.encode(np.zeros((64, 64, 3), np.uint8)), boxes=[[0, 0, 32, 32]])
        assert p.logits.shape == (1, 1, 64, 64)
        assert 'torchvision' not in sys.modules and 'segment_anything' not in sys.modules
        print('ok')
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.slow
def test_real_mobilesam_loads_strictly_and_segments_a_lake(vit_t) -> None:
    image, lake = lake_tile(512)
    emb = vit_t.encode(image)
    assert tuple(emb.features.shape) == (256, 64, 64)
    ys, xs = np.nonzero(lake)
    point = np.array([[[xs.mean() + 0.5, ys.mean() + 0.5]]])
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], dtype=float)
    by_point = vit_t.decode(emb, points=point, point_labels=np.array([[1]]), multimask=True)
    by_box = vit_t.decode(emb, boxes=box)
    iou_point = scores(by_point.best_logits()[0] > 0, lake)["iou"]
    iou_box = scores(by_box.logits[0, 0] > 0, lake)["iou"]
    print(f"MobileSAM lake IoU: point {iou_point:.3f}, box {iou_box:.3f}")
    assert iou_point > 0.9
    assert iou_box > 0.9
