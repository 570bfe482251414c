"""LoRA adapters in TinyViT against reference computations, and adapted-model files."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.lora import (
    LoRALinear,
    adapter_state,
    add_adapters,
    check_adaptable,
    merge_adapters,
    merge_state_into,
    target_layers,
)


def _randomise(encoder: nn.Module, seed: int = 1) -> None:
    """Non-zero B matrices (a fresh adapter has B = 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if name.endswith("lora_b"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_lora_linear_is_the_reference_formula():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = LoRALinear(copy.deepcopy(base), rank=3, alpha=6.0)
    with torch.no_grad():
        layer.lora_b.normal_()
    x = torch.randn(4, 6)
    want = x @ base.weight.T + base.bias + 2.0 * (x @ layer.lora_a.T @ layer.lora_b.T)
    torch.testing.assert_close(layer(x), want)
    torch.testing.assert_close(layer.merged()(x), want, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in layer.base.parameters())
    assert layer.lora_a.requires_grad and layer.lora_b.requires_grad


def test_fresh_adapters_leave_the_encoder_unchanged(tiny_model):
    encoder = copy.deepcopy(tiny_model.sam.image_encoder)
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        before = encoder(x)
        layers = add_adapters(encoder, rank=2)
        after = encoder(x)
    assert len(layers) == 6  # qkv and proj of the 3 attention stages of the tiny TinyViT
    assert torch.equal(before, after)


@pytest.mark.parametrize("targets", ["attn", "attn+mlp"])
def test_merged_weights_equal_the_unmerged_forward(tiny_model, targets):
    encoder = copy.deepcopy(tiny_model.sam.image_encoder)
    add_adapters(encoder, rank=3, targets=targets)
    _randomise(encoder)
    x = torch.randn(2, 3, 192, 224)
    with torch.no_grad():
        adapted = encoder(x)
        plain = copy.deepcopy(tiny_model.sam.image_encoder)
        merge_state_into(plain, adapter_state(encoder), rank=3)
        merged_copy = copy.deepcopy(encoder)
        assert merge_adapters(merged_copy) == len(target_layers(plain, targets))
        base = tiny_model.sam.image_encoder(x)
    torch.testing.assert_close(plain(x), adapted, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(merged_copy(x), adapted, rtol=1e-4, atol=1e-5)
    assert set(merged_copy.state_dict()) == set(plain.state_dict())  # the base architecture
    assert not torch.allclose(adapted, base, atol=1e-4)  # the adapters do change the output


def test_only_adapters_are_trainable(tiny_model):
    encoder = copy.deepcopy(tiny_model.sam.image_encoder)
    add_adapters(encoder, rank=2)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_a", "lora_b")) for n in trainable)


def test_unknown_encoder_is_refused():
    with pytest.raises(GeofloodsamError, match="TinyViT encoder only.*--train decoder"):
        check_adaptable(nn.Sequential(nn.Linear(2, 2)), "vit_b")
    with pytest.raises(GeofloodsamError, match="no TinyViT attention blocks"):
        target_layers(nn.Sequential(nn.Linear(2, 2)), "attn")
