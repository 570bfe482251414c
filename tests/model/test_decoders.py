"""Decoder specs (pretrained | shipped name | file) and decoder files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.decoders import DecoderSpec, read_decoder, save_decoder
from tests.conftest import FP32_TORCH


def test_saved_decoders_are_readable_like_any_new_file(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = save_decoder(
            tmp_path / "d.pt", {"w": torch.ones(2)}, {"base_model": "tiny", "base_sha256": "x"}
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    state, meta = read_decoder(path)
    assert torch.equal(state["w"], torch.ones(2)) and meta["base_model"] == "tiny"


def test_paths_in_meta_are_stored_as_text(tmp_path: Path) -> None:
    """``finetune --checkpoint PATH`` puts a path into ``meta``: it is stored as text, so the
    file still loads with ``weights_only`` (a ``Path`` object made it unreadable)."""
    meta = {"base_model": "tiny", "base_sha256": "x", "checkpoint": tmp_path / "sam.pt",
            "runs": [Path("a"), 1], "nested": {"data": Path("/d")}}
    path = save_decoder(tmp_path / "d.pt", {"w": torch.ones(2)}, meta)
    _, read = read_decoder(path)
    assert read["checkpoint"] == str(tmp_path / "sam.pt")
    assert read["runs"] == ["a", 1] and read["nested"] == {"data": "/d"}


@pytest.mark.parametrize(
    "text, pretrained, shipped, label",
    [("pretrained", True, False, "pretrained"), ("flood", False, True, "flood"),
     ("runs/my_decoder.pt", False, False, "my_decoder")],
)
def test_decoder_spec_kinds(text, pretrained, shipped, label) -> None:
    spec = DecoderSpec(text)
    assert (spec.is_pretrained, spec.is_shipped, spec.is_file) == (
        pretrained, shipped, not (pretrained or shipped)
    )
    assert spec.label == label
    assert DecoderSpec.parse(text, "vit_t") == spec


def test_default_and_shipped_decoder_paths() -> None:
    assert DecoderSpec.parse(None, "vit_t").text == "flood"  # shipped for vit_t
    assert DecoderSpec.parse(None, "vit_h").text == "pretrained"
    assert DecoderSpec("flood").path("vit_t").is_file()
    assert DecoderSpec("pretrained").path("vit_t") is None
    with pytest.raises(GeofloodsamError, match="no flood decoder is shipped for model vit_h"):
        DecoderSpec("flood").path("vit_h")


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["flood", "satellite", "flood-decoder-only", "satellite-decoder-only"]
)
def test_shipped_decoders_load(kind: str, mobile_sam_path) -> None:
    """Every shipped model loads by name onto the real MobileSAM, float16 files < 10 MB."""
    from geofloodsam.model.decoders import SHIPPED, shipped_decoder
    from geofloodsam.model.sam import load_model

    assert kind in SHIPPED
    path = shipped_decoder(kind, "vit_t")
    assert path.stat().st_size < 10_000_000
    model = load_model(
        "vit_t", checkpoint=mobile_sam_path, device="cpu", decoder=kind, **FP32_TORCH
    )
    assert model.info()["decoder"] == kind and model.decoder_meta["base_model"] == "vit_t"
    with pytest.raises(GeofloodsamError, match=f"no {kind} decoder is shipped"):
        shipped_decoder(kind, "vit_b")


@pytest.mark.parametrize("kind", ["flood", "satellite"])
def test_shipped_adapted_model_adds_only_its_adapters(kind: str) -> None:
    """The shipped ``flood`` and ``satellite`` hold a decoder plus LoRA adapters (not a whole
    encoder): each is at most 1 MB larger than the decoder-only file it replaced."""
    from geofloodsam.model.decoders import read_checkpoint, shipped_decoder

    adapted = shipped_decoder(kind, "vit_t")
    decoder_only = shipped_decoder(f"{kind}-decoder-only", "vit_t")
    found = read_checkpoint(adapted)
    assert found.encoder_kind == "lora" and found.meta["train"] == "adapter"
    assert all(k.endswith((".lora_a", ".lora_b")) for k in found.encoder_state)
    assert read_checkpoint(decoder_only).encoder_kind is None
    assert 0 < adapted.stat().st_size - decoder_only.stat().st_size < 1_000_000
