"""TinyViT image encoder of MobileSAM ("vit_t"), in plain PyTorch.

MobileSAM replaces SAM's ViT-H image encoder with a 5M-parameter TinyViT that maps a
normalised ``(B, 3, 1024, 1024)`` image to the same ``(B, 256, 64, 64)`` embedding that SAM's
prompt encoder and mask decoder expect. This module re-implements that encoder without timm or
torchvision; parameter and buffer names mirror MobileSAM's ``tiny_vit_sam.py`` so that the
``image_encoder.*`` part of the official ``mobile_sam.pt`` checkpoint loads with
``load_state_dict(strict=True)`` once the ``image_encoder.`` prefix is stripped.

Architecture (the ``vit_t`` configuration is :func:`vit_t_encoder`):

* a patch embedding of two stride-2 3x3 convolutions (overall stride 4);
* stage 0: MBConv blocks (inverted residuals with a depthwise 3x3 convolution);
* stages 1..n-1: TinyViT blocks, i.e. windowed multi-head attention with a learned relative
  position bias, a depthwise "local" convolution and an MLP;
* a patch-merging layer between consecutive stages. It halves the resolution, except the one
  in front of the last stage, which keeps it (stride 1), as MobileSAM does, so the overall
  stride is 16 and a 1024 image gives a 64x64 embedding;
* SAM's neck (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d) projecting to ``out_chans``.

The classification head of the original TinyViT (``norm_head``, ``head``) is kept only because
the checkpoint contains it; it is never used in :meth:`TinyViT.forward`.

Inference notes: in eval mode every convolution + batch-norm pair is evaluated as a single
convolution with folded weights, attention uses
:func:`torch.nn.functional.scaled_dot_product_attention` with the relative position bias as an
additive mask, and windows are processed as one batch (no Python loop over windows).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Attention",
    "Conv2d_BN",
    "LayerNorm2d",
    "MBConv",
    "Mlp",
    "PatchEmbed",
    "PatchMerging",
    "TinyViT",
    "TinyViTBlock",
    "vit_t_encoder",
]


class Conv2d_BN(nn.Sequential):  # noqa: N801 - name mirrors the checkpoint's module layout
    """A bias-free ``Conv2d`` (``.c``) followed by ``BatchNorm2d`` (``.bn``).

    In training mode the two run as usual. In eval mode the batch-norm statistics are folded into
    the convolution on the fly (the folding costs a few small tensor ops per call and never goes
    stale after ``load_state_dict``), which saves a full pass over the activations.
    """

    def __init__(
        self,
        in_chans: int,
        out_chans: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bn_weight_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.add_module(
            "c",
            nn.Conv2d(in_chans, out_chans, kernel_size, stride, padding, groups=groups, bias=False),
        )
        bn = nn.BatchNorm2d(out_chans)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.zeros_(bn.bias)
        self.add_module("bn", bn)

    def forward(self, x: Tensor) -> Tensor:
        """Apply convolution and batch norm (folded into one convolution in eval mode)."""
        conv: nn.Conv2d = self.c
        bn: nn.BatchNorm2d = self.bn
        if self.training or bn.running_mean is None or bn.running_var is None:
            return bn(conv(x))
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        weight = conv.weight * scale[:, None, None, None]
        bias = bn.bias - bn.running_mean * scale
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


class LayerNorm2d(nn.Module):
    """Layer norm over the channel dimension of an ``(B, C, H, W)`` tensor (as in SAM)."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        """Normalise each pixel's channel vector, then scale and shift per channel."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class PatchEmbed(nn.Module):
    """Stem: two stride-2 3x3 ``Conv2d_BN`` with a GELU in between (overall stride 4)."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(
            Conv2d_BN(in_chans, embed_dim // 2, 3, 2, 1),
            nn.GELU(),
            Conv2d_BN(embed_dim // 2, embed_dim, 3, 2, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_chans, H, W)`` -> ``(B, embed_dim, H/4, W/4)``."""
        return self.seq(x)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise 3x3, 1x1 project, residual, GELU."""

    def __init__(self, in_chans: int, out_chans: int, expand_ratio: float) -> None:
        super().__init__()
        hidden = int(in_chans * expand_ratio)
        self.conv1 = Conv2d_BN(in_chans, hidden, 1)
        self.act1 = nn.GELU()
        self.conv2 = Conv2d_BN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2d_BN(hidden, out_chans, 1, bn_weight_init=0.0)
        self.act3 = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        y = self.act1(self.conv1(x))
        y = self.act2(self.conv2(y))
        y = self.conv3(y)
        return self.act3(y + x)


class PatchMerging(nn.Module):
    """Change the width (1x1), optionally downsample (depthwise 3x3), then mix (1x1)."""

    def __init__(self, dim: int, out_dim: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = Conv2d_BN(dim, out_dim, 1)
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim, 1)
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, dim, H, W)`` -> ``(B, out_dim, H/stride, W/stride)`` (rounded up)."""
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        return self.conv3(x)


class Mlp(nn.Module):
    """Pre-norm MLP: LayerNorm, Linear, GELU, Linear (acts on the last dimension)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., dim)`` -> ``(..., dim)``."""
        return self.fc2(self.act(self.fc1(self.norm(x))))


def _relative_offset_index(height: int, width: int) -> Tensor:
    """Index of the (|dy|, |dx|) offset between every pair of positions of a window.

    Positions are enumerated row-major; the offset (|dy|, |dx|) gets index ``|dy| * width + |dx|``,
    which is the order in which TinyViT first meets each offset, so the learned
    ``attention_biases`` columns line up with the checkpoint. Returns ``(N, N)``, ``N = h * w``.
    """
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    dy = (ys[:, None] - ys[None, :]).abs()
    dx = (xs[:, None] - xs[None, :]).abs()
    return dy * width + dx


class Attention(nn.Module):
    """Pre-norm multi-head self-attention over one window, with a relative position bias.

    Each head has one learned bias per distinct (|dy|, |dx|) offset inside the window
    (``attention_biases``, shape ``(num_heads, window_size**2)``); ``attention_bias_idxs``
    (not saved in state dicts) expands them to the ``(N, N)`` bias added to the logits.
    The fused ``qkv`` projection is laid out per head as ``[q | k | v]``.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        self.register_buffer(
            "attention_bias_idxs",
            _relative_offset_index(window_size, window_size),
            persistent=False,
        )

    def bias(self) -> Tensor:
        """The ``(num_heads, N, N)`` additive attention bias."""
        return self.attention_biases[:, self.attention_bias_idxs]

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, dim)`` with ``N = window_size**2`` -> ``(B, N, dim)``."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(self.norm(x))
        qkv = qkv.view(batch, tokens, self.num_heads, 3, self.head_dim).permute(3, 0, 2, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        # A mask expanded to the full (B, heads, N, N) shape lets PyTorch pick its fused CPU
        # kernel; a broadcast (heads, N, N) mask falls back to the much slower math path.
        mask = self.bias().to(q.dtype).expand(batch, -1, -1, -1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class TinyViTBlock(nn.Module):
    """Windowed attention + depthwise local convolution + MLP, on ``(B, H, W, C)`` tensors.

    The feature map is zero-padded at the bottom/right to a multiple of ``window_size`` and cut
    into non-overlapping windows that are attended to in one batched call. Padded positions take
    part in the attention (as in TinyViT; there is no masking) and are cropped afterwards.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        local_conv_size: int = 3,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.attn = Attention(dim, num_heads, window_size)
        self.local_conv = Conv2d_BN(dim, dim, local_conv_size, 1, local_conv_size // 2, groups=dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def _window_attention(self, x: Tensor) -> Tensor:
        batch, height, width, chans = x.shape
        ws = self.window_size
        pad_b = (ws - height % ws) % ws
        pad_r = (ws - width % ws) % ws
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        n_h, n_w = (height + pad_b) // ws, (width + pad_r) // ws
        windows = (
            x.reshape(batch, n_h, ws, n_w, ws, chans)
            .transpose(2, 3)
            .reshape(batch * n_h * n_w, ws * ws, chans)
        )
        windows = self.attn(windows)
        x = (
            windows.view(batch, n_h, n_w, ws, ws, chans)
            .transpose(2, 3)
            .reshape(batch, n_h * ws, n_w * ws, chans)
        )
        if pad_b or pad_r:
            x = x[:, :height, :width]
        return x

    def forward(self, x: Tensor) -> Tensor:
        """``(B, H, W, C)`` -> ``(B, H, W, C)``."""
        x = x + self._window_attention(x)
        # Depthwise conv on an NCHW view of the NHWC tensor (channels-last strides, no copy).
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class ConvLayer(nn.Module):
    """Stage 0: a stack of :class:`MBConv` blocks and an optional downsampling layer."""

    def __init__(
        self,
        dim: int,
        depth: int,
        expand_ratio: float,
        downsample: PatchMerging | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, dim, expand_ratio) for _ in range(depth))
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C', H', W')``."""
        for block in self.blocks:
            x = block(x)
        if self.downsample is not None:
            x = self.downsample(x)
        return x


class BasicLayer(nn.Module):
    """A TinyViT stage: a stack of :class:`TinyViTBlock` and an optional downsampling layer."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        local_conv_size: int,
        downsample: PatchMerging | None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TinyViTBlock(dim, num_heads, window_size, mlp_ratio, local_conv_size)
            for _ in range(depth)
        )
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C', H', W')`` (blocks run on an NHWC view)."""
        x = x.permute(0, 2, 3, 1)
        for block in self.blocks:
            x = block(x)
        x = x.permute(0, 3, 1, 2)
        if self.downsample is not None:
            x = self.downsample(x)
        return x


class TinyViT(nn.Module):
    """MobileSAM's TinyViT image encoder: ``(B, in_chans, H, W)`` -> ``(B, out_chans, H/16, W/16)``.

    Args:
        img_size: Side of the (square, padded) input SAM feeds the encoder; kept as the
            ``img_size`` attribute that SAM's pre-processing reads. The network itself accepts
            any input size (windows are padded as needed).
        in_chans: Input channels.
        embed_dims: Width of each stage. Stage 0 is convolutional (MBConv), the others are
            attention stages.
        depths: Number of blocks in each stage.
        num_heads: Attention heads per stage (the entry for stage 0 is unused).
        window_sizes: Attention window side per stage (the entry for stage 0 is unused).
        mlp_ratio: MLP hidden width relative to the stage width.
        mbconv_expand_ratio: Expansion of the MBConv blocks of stage 0.
        local_conv_size: Kernel size of the depthwise convolution inside TinyViT blocks.
        out_chans: Channels of the output embedding (256 for SAM).
        num_classes: Size of the (unused) classification head; 1000 in the MobileSAM checkpoint,
            0 replaces it with an identity.

    The downsampling layer after stage ``i`` has stride 2, except the one in front of the last
    stage, which has stride 1. With the stride-4 stem this makes the output stride 16 for any
    number of stages >= 3; for the MobileSAM configuration it is exactly MobileSAM's rule.
    """

    def __init__(
        self,
        img_size: int = 1024,
        in_chans: int = 3,
        embed_dims: Sequence[int] = (64, 128, 160, 320),
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (2, 4, 5, 10),
        window_sizes: Sequence[int] = (7, 7, 14, 7),
        mlp_ratio: float = 4.0,
        mbconv_expand_ratio: float = 4.0,
        local_conv_size: int = 3,
        out_chans: int = 256,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        n_stages = len(embed_dims)
        if n_stages < 2:
            raise ValueError("TinyViT needs at least two stages")
        for name, seq in (
            ("depths", depths),
            ("num_heads", num_heads),
            ("window_sizes", window_sizes),
        ):
            if len(seq) != n_stages:
                raise ValueError(f"{name} has {len(seq)} entries, expected {n_stages}")
        self.img_size = img_size
        self.embed_dims = tuple(embed_dims)
        self.out_chans = out_chans

        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        self.layers = nn.ModuleList()
        for i in range(n_stages):
            downsample = None
            if i < n_stages - 1:
                stride = 1 if i == n_stages - 2 else 2
                downsample = PatchMerging(embed_dims[i], embed_dims[i + 1], stride)
            if i == 0:
                layer: nn.Module = ConvLayer(
                    embed_dims[0], depths[0], mbconv_expand_ratio, downsample
                )
            else:
                layer = BasicLayer(
                    embed_dims[i],
                    depths[i],
                    num_heads[i],
                    window_sizes[i],
                    mlp_ratio,
                    local_conv_size,
                    downsample,
                )
            self.layers.append(layer)

        # Classification head of the ImageNet TinyViT: unused, present for checkpoint parity.
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head: nn.Module = (
            nn.Linear(embed_dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        )

        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], out_chans, kernel_size=1, bias=False),
            LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_chans),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Encode normalised images ``(B, in_chans, H, W)`` into ``(B, out_chans, H/16, W/16)``.

        Internally the activations are kept channels-last (NHWC strides): the depthwise and 1x1
        convolutions are about twice as fast that way on CPU, and the attention stages can view
        them as ``(B, H, W, C)`` without copies. The output is a standard contiguous tensor.
        """
        x = self.patch_embed(x.contiguous(memory_format=torch.channels_last))
        for layer in self.layers:
            x = layer(x)
        return self.neck(x).contiguous()


def vit_t_encoder() -> TinyViT:
    """The MobileSAM ``vit_t`` image encoder, randomly initialised.

    5.74M parameters are used by the forward pass, plus 0.32M in the unused ImageNet head.

    Load weights with ``encoder.load_state_dict(sd, strict=True)`` where ``sd`` holds the
    ``image_encoder.*`` entries of ``mobile_sam.pt`` with that prefix removed.
    """
    return TinyViT(
        img_size=1024,
        in_chans=3,
        embed_dims=(64, 128, 160, 320),
        depths=(2, 2, 6, 2),
        num_heads=(2, 4, 5, 10),
        window_sizes=(7, 7, 14, 7),
        mlp_ratio=4.0,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        out_chans=256,
    )
