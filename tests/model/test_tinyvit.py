"""Tests for the pure-PyTorch TinyViT (MobileSAM ``vit_t``) image encoder."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from geofloodsam.model.tinyvit import Conv2d_BN, PatchMerging, TinyViT, vit_t_encoder

CHECKPOINT = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "mobile_sam.pt"

TINY = dict(
    embed_dims=(8, 16, 16, 32),
    depths=(1, 1, 1, 1),
    num_heads=(1, 1, 1, 1),
    window_sizes=(7, 7, 7, 7),
    out_chans=32,
)


def _tiny(seed: int = 0) -> TinyViT:
    torch.manual_seed(seed)
    return TinyViT(**TINY).eval()


@pytest.mark.slow
def test_official_checkpoint_loads_strictly_and_encodes() -> None:
    if not CHECKPOINT.is_file():
        pytest.skip(f"MobileSAM checkpoint not found at {CHECKPOINT}")
    state = torch.load(CHECKPOINT, map_location="cpu", weights_only=True)
    prefix = "image_encoder."
    encoder_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    assert encoder_state, "checkpoint has no image_encoder.* entries"

    encoder = vit_t_encoder()
    result = encoder.load_state_dict(encoder_state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    encoder.eval()

    torch.manual_seed(0)
    image = torch.randn(1, 3, 1024, 1024)
    with torch.inference_mode():
        embedding = encoder(image)
    assert embedding.shape == (1, 256, 64, 64)
    assert torch.isfinite(embedding).all()
    # The neck ends with a LayerNorm2d, so the embedding cannot be all zeros or constant.
    assert embedding.std() > 0


def test_tiny_config_forward_shape() -> None:
    encoder = _tiny()
    with torch.inference_mode():
        out = encoder(torch.randn(2, 3, 1024, 1024))
    assert out.shape == (2, 32, 64, 64)
    assert out.is_contiguous()
    assert torch.isfinite(out).all()


def test_output_stride_is_16_for_other_sizes() -> None:
    # 320 / 4 = 80 and 80 / 4 = 20: neither is a multiple of the 7x7 windows (padding path).
    encoder = _tiny()
    with torch.inference_mode():
        out = encoder(torch.randn(1, 3, 320, 320))
    assert out.shape == (1, 32, 20, 20)


def test_deterministic() -> None:
    image = torch.randn(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(1))
    a, b = _tiny(seed=3), _tiny(seed=3)
    with torch.inference_mode():
        first = a(image)
        again = a(image)
        other = b(image)
    assert torch.equal(first, again)
    assert torch.equal(first, other)


def test_downsample_strides_follow_mobilesam() -> None:
    """Stride 2 between stages, except in front of the last stage (MobileSAM's 320-dim case)."""
    for encoder in (vit_t_encoder(), TinyViT(**TINY)):
        strides = [
            layer.downsample.conv2.c.stride
            for layer in encoder.layers
            if isinstance(layer.downsample, PatchMerging)
        ]
        assert strides == [(2, 2), (2, 2), (1, 1)]
        assert encoder.layers[-1].downsample is None


def test_state_dict_layout_matches_checkpoint_conventions() -> None:
    keys = vit_t_encoder().state_dict().keys()
    assert "layers.1.blocks.0.attn.attention_biases" in keys
    assert not any(k.endswith("attention_bias_idxs") for k in keys)  # non-persistent buffer
    for key in ("neck.0.weight", "neck.1.weight", "neck.3.bias", "head.weight", "norm_head.bias"):
        assert key in keys
    assert "patch_embed.seq.2.bn.running_var" in keys


def test_attention_bias_index_matches_first_seen_offset_order() -> None:
    window = 7
    attn = vit_t_encoder().layers[1].blocks[0].attn
    points = list(itertools.product(range(window), range(window)))
    seen: dict[tuple[int, int], int] = {}
    expected = []
    for p1 in points:
        for p2 in points:
            offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            expected.append(seen.setdefault(offset, len(seen)))
    n = len(points)
    assert torch.equal(attn.attention_bias_idxs, torch.tensor(expected).view(n, n))
    assert attn.attention_biases.shape == (4, len(seen))  # stage 1 has 4 heads


def test_folded_conv_bn_matches_unfolded() -> None:
    torch.manual_seed(0)
    module = Conv2d_BN(4, 6, 3, 1, 1)
    with torch.no_grad():
        module.bn.running_mean.uniform_(-1, 1)
        module.bn.running_var.uniform_(0.5, 2)
        module.bn.weight.uniform_(0.5, 1.5)
        module.bn.bias.uniform_(-1, 1)
    module.eval()
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        assert torch.allclose(module(x), module.bn(module.c(x)), atol=1e-5)
