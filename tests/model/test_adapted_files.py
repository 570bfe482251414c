"""Adapted-model files: loading everywhere a decoder loads, cache signing, OpenVINO, bf16."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from geofloodsam.cli import main
from geofloodsam.errors import GeofloodsamError
from geofloodsam.model import precision as precision_mod
from geofloodsam.model.decoders import (
    ADAPTED_FORMAT,
    load_decoders,
    read_checkpoint,
    save_decoder,
    use_decoder,
)
from geofloodsam.model.embedding_cache import PersistentDecodersCache, PersistentEmbeddingCache
from geofloodsam.model.lora import adapter_state, add_adapters
from geofloodsam.model.sam import load_model
from tests.conftest import FP32_TORCH

IMAGE = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def _adapted_encoder(model, seed: int = 1, rank: int = 2):
    """A LoRA-wrapped copy of ``model``'s encoder with non-zero (seeded) adapters."""
    encoder = copy.deepcopy(model.sam.image_encoder)
    add_adapters(encoder, rank=rank)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if name.endswith(("lora_a", "lora_b")):
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return encoder


def write_adapted(model, path: Path, seed: int = 1, rank: int = 2, base_sha=None) -> Path:
    """An adapted-model file for ``model``: seeded adapters, its pretrained decoder."""
    encoder = _adapted_encoder(model, seed, rank)
    meta = {"base_model": model.name, "base_sha256": base_sha or model.checkpoint_sha256,
            "train": "adapter", "rank": rank, "adapt": "attn"}
    state = {k: v.half().float() for k, v in adapter_state(encoder).items()}
    return save_decoder(path, model.sam.mask_decoder.state_dict(), meta, half=True,
                        encoder={"kind": "lora", "state": state})


@pytest.fixture(scope="module")
def adapted_file(tmp_path_factory, tiny_model) -> Path:
    return write_adapted(tiny_model, tmp_path_factory.mktemp("adapted") / "adapted.pt")


def _reference_features(model, path: Path) -> torch.Tensor:
    """The image through the un-merged LoRA encoder with the file's adapters."""
    from geofloodsam.model.lora import load_adapter_state

    found = read_checkpoint(path)
    encoder = copy.deepcopy(model.sam.image_encoder)
    add_adapters(encoder, rank=found.meta["rank"])
    load_adapter_state(encoder, found.encoder_state)
    x, _ = model.preprocess(IMAGE)
    with torch.no_grad():
        return encoder(x[None])[0]


def test_file_format_and_loading_merges_the_adapters(tiny_model, adapted_file):
    found = read_checkpoint(adapted_file)
    assert torch.load(adapted_file, weights_only=True)["format"] == ADAPTED_FORMAT
    assert found.encoder_kind == "lora" and all(k.endswith(("lora_a", "lora_b"))
                                                for k in found.encoder_state)
    model = load_model("tiny", device="cpu", decoder=adapted_file, **FP32_TORCH)
    assert model.encoder_sha256 and len(model.encoder_sha256) == 64
    assert model.info()["encoder_sha256"] == model.encoder_sha256
    # merged: the base architecture, the un-merged LoRA encoder's output
    assert set(model.sam.image_encoder.state_dict()) == set(
        tiny_model.sam.image_encoder.state_dict())
    torch.testing.assert_close(model.encode(IMAGE).features, _reference_features(
        tiny_model, adapted_file), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(model.encode(IMAGE).features, tiny_model.encode(IMAGE).features)
    with pytest.raises(ValueError, match="already adapted"):
        from geofloodsam.model.decoders import apply_decoder

        apply_decoder(model, adapted_file)


def test_the_embedding_cache_is_signed_with_the_adapters(tmp_path, tiny_model, adapted_file):
    adapted = load_model("tiny", device="cpu", decoder=adapted_file, **FP32_TORCH)
    base_cache = PersistentEmbeddingCache(tmp_path, tiny_model)
    base_cache.get(IMAGE)
    cache = PersistentEmbeddingCache(tmp_path, adapted)
    emb = cache.get(IMAGE)
    assert cache.stats.misses == 1 and cache.stats.hits == 0  # the base entry is not reused
    sig = cache.signature("x", (1,), "none")
    assert sig["encoder_sha256"] == adapted.encoder_sha256
    assert "encoder_sha256" not in base_cache.signature("x", (1,), "none")
    assert cache.entry_path("ab", "none") != base_cache.entry_path("ab", "none")
    torch.testing.assert_close(emb.features, adapted.encode(IMAGE).features, atol=2e-3,
                               rtol=1e-3)  # stored as float16
    # an entry whose signature names other adapters is stale: re-encoded, not reused
    path = cache.entry_path(*_sha_and_variant(cache, IMAGE))
    entry = torch.load(path, weights_only=True)
    entry["signature"]["encoder_sha256"] = "0" * 64
    torch.save(entry, path)
    again = PersistentEmbeddingCache(tmp_path, adapted)
    again.get(IMAGE)
    assert again.stats.stale == 1


def _sha_and_variant(cache, image):
    from geofloodsam.model.embedding_cache import pixel_sha256

    return pixel_sha256(image), "none"


def test_hash_mismatch_is_refused_naming_both_hashes(tmp_path, tiny_model, write_photo_set):
    other = write_adapted(tiny_model, tmp_path / "other.pt", base_sha="tiny-seed-7")
    with pytest.raises(GeofloodsamError) as err:
        load_model("tiny", device="cpu", decoder=other, **FP32_TORCH)
    text = str(err.value)
    assert "adapted model" in text and "tiny-seed-7" in text and "tiny-seed-0" in text
    data = write_photo_set(tmp_path / "photos", ["test", "test"])
    out = tmp_path / "report"
    result = CliRunner().invoke(main, [
        "evaluate", "--data", str(data), "--model", "tiny", "--device", "cpu", "--runtime",
        "torch", "--decoder", str(other), "-o", str(out), "-q", "--cache-dir",
        str(tmp_path / "emb"),
    ])  # fmt: skip
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: ")
    assert "tiny-seed-7" in lines[0] and "tiny-seed-0" in lines[0]
    assert not out.exists()


def test_decoders_with_their_own_encoders(tiny_model, adapted_file, tmp_path):
    """load_decoders + PersistentDecodersCache: each decoder decodes the embedding of its
    encoder, the base model is left as it was."""
    before = {k: v.clone() for k, v in tiny_model.sam.image_encoder.state_dict().items()}
    decs = load_decoders(tiny_model, ["pretrained", str(adapted_file)])
    assert decs[0].encoder is None and decs[1].encoder is not None
    assert tiny_model.encoder_sha256 is None
    for k, v in tiny_model.sam.image_encoder.state_dict().items():
        assert torch.equal(v, before[k])
    cache = PersistentDecodersCache(tmp_path, tiny_model, decs)
    emb = cache.get(IMAGE)
    assert set(emb.alternatives) == {None, decs[1].encoder_sha256}
    alone = load_model("tiny", device="cpu", decoder=adapted_file, **FP32_TORCH)
    box = np.array([[5.0, 5.0, 40.0, 30.0]])
    want = alone.decode(alone.encode(IMAGE), boxes=box).low_res
    with use_decoder(tiny_model, decs[1]):
        got = tiny_model.decode(emb, boxes=box).low_res
    np.testing.assert_allclose(got, want, atol=2e-2)  # cached features are float16
    with use_decoder(tiny_model, decs[0]):
        base = tiny_model.decode(emb, boxes=box).low_res
    plain = tiny_model.decode(tiny_model.encode(IMAGE), boxes=box).low_res
    np.testing.assert_allclose(base, plain, atol=2e-2)
    assert str(cache.stats) == "0 cached, 2 encoded, 0 stale re-encoded"


def test_bf16_runs_the_merged_encoder(adapted_file):
    fp32 = load_model("tiny", device="cpu", decoder=adapted_file, **FP32_TORCH)
    bf16 = load_model("tiny", device="cpu", decoder=adapted_file, precision="bf16", runtime="torch")
    a, b = fp32.encode(IMAGE).features, bf16.encode(IMAGE).features
    assert bf16.precision == "bf16"
    assert torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0) > 0.99


@pytest.mark.slow
@pytest.mark.skipif(not precision_mod.openvino_available(), reason="OpenVINO is not installed")
def test_openvino_runs_the_merged_encoder(tmp_path, monkeypatch, adapted_file):
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path))
    torch_model = load_model("tiny", device="cpu", decoder=adapted_file, **FP32_TORCH)
    ov_model = load_model("tiny", device="cpu", decoder=adapted_file, runtime="openvino")
    torch.testing.assert_close(ov_model.encode(IMAGE).features,
                               torch_model.encode(IMAGE).features, atol=1e-4, rtol=1e-4)
    load_model("tiny", device="cpu", runtime="openvino")  # the base encoder: its own graph
    assert len(list((tmp_path / "openvino").glob("encoder-*.xml"))) == 2


def test_evaluate_rows_per_model(tmp_path, tiny_model, adapted_file, write_photo_set):
    """evaluate --decoder pretrained --decoder ADAPTED: one report, rows per model, each
    scored on its own encoder's embeddings (the adapted rows equal a run of it alone)."""
    import pandas as pd

    data = write_photo_set(tmp_path / "photos", ["test"] * 3)
    common = ["evaluate", "--data", str(data), "--model", "tiny", "--device", "cpu",
              "--runtime", "torch", "-q", "--cache-dir", str(tmp_path / "emb"),
              "--prompt", "box", "--prompt", "none"]
    both = tmp_path / "both"
    result = CliRunner().invoke(main, [*common, "--decoder", "pretrained", "--decoder",
                                       str(adapted_file), "-o", str(both), "--examples", "1"])
    assert result.exit_code == 0, result.output
    metrics = pd.read_csv(both / "metrics.csv")
    assert list(zip(metrics["model"], metrics["prompt"], strict=True)) == [
        ("pretrained", "box"), ("pretrained", "none"), ("adapted", "box"), ("adapted", "none")]
    report = (both / "report.md").read_text()
    assert "adapted encoder" in report and "comparison_box.png" in report
    alone = tmp_path / "alone"
    result = CliRunner().invoke(main, [*common, "--decoder", str(adapted_file), "-o",
                                       str(alone), "--examples", "0"])
    assert result.exit_code == 0, result.output
    single = pd.read_csv(alone / "per_image.csv").set_index(["id", "prompt"])["iou"]
    joint = pd.read_csv(both / "per_image.csv")
    joint = joint[joint["model"] == "adapted"].set_index(["id", "prompt"])["iou"]
    pd.testing.assert_series_equal(joint.sort_index(), single.sort_index())


@pytest.mark.slow
def test_real_vit_t_adapters_merge_exactly(vit_t):
    """On MobileSAM's real encoder: fresh adapters change nothing; merged == un-merged."""
    from geofloodsam.model.lora import merge_state_into

    encoder = _adapted_encoder(vit_t, seed=2, rank=4)
    x = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapted = encoder(x)
        plain = copy.deepcopy(vit_t.sam.image_encoder)
        merge_state_into(plain, adapter_state(encoder), rank=4)
        merged = plain(x)
        fresh = copy.deepcopy(vit_t.sam.image_encoder)
        add_adapters(fresh, rank=4)
        base = vit_t.sam.image_encoder(x)
        assert torch.equal(fresh(x), base)
    torch.testing.assert_close(merged, adapted, rtol=1e-3, atol=1e-4)
    assert (adapted - base).abs().max() > 1e-2
