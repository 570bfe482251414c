"""segment-anything's mask decoder, run with less work per call (same weights, same maths).

:func:`predict_masks` is ``MaskDecoder.predict_masks`` + ``forward`` with three cuts:

* the image's dense positional encoding is passed in once computed (the caller caches it per
  model, :meth:`geofloodsam.model.sam.SamModel.dense_pe`), instead of being rebuilt from the
  Gaussian matrix on every call;
* the image embedding and its positional encoding are broadcast to the N prompts
  (``expand``: no copies) instead of ``repeat_interleave``-d, and the first token-to-image
  attention projects the (still shared) image once for all N prompts;
* the hypernetwork MLPs and the mask product run only for the masks that are returned (mask
  0, or masks 1-3 with ``multimask``), not for all four.

Attention uses :func:`torch.nn.functional.scaled_dot_product_attention` with the modules'
own projections. Results equal segment-anything's up to float rounding (tested); it stays
differentiable, so fine-tuning uses it too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def attention(module: nn.Module, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """segment-anything's ``Attention.forward`` on fused scaled-dot-product attention."""
    heads = module.num_heads
    q = _project(module.q_proj, q)
    k = _project(module.k_proj, k)
    v = _project(module.v_proj, v)
    b, nq, c = q.shape
    nk = k.shape[1]
    q = q.reshape(b, nq, heads, c // heads).transpose(1, 2)
    k = k.reshape(k.shape[0], nk, heads, c // heads).transpose(1, 2).expand(b, -1, -1, -1)
    v = v.reshape(v.shape[0], nk, heads, c // heads).transpose(1, 2).expand(b, -1, -1, -1)
    out = F.scaled_dot_product_attention(q, k, v)
    return module.out_proj(out.transpose(1, 2).reshape(b, nq, c))


def _project(linear: nn.Module, x: Tensor) -> Tensor:
    """``linear(x)``; on an input broadcast over the batch (stride 0), once, not per prompt."""
    if x.shape[0] > 1 and x.stride(0) == 0:
        return linear(x[:1])
    return linear(x)


def _add(a: Tensor, b: Tensor) -> Tensor:
    """``a + b``; when both are broadcast over the batch (stride 0), added once and broadcast."""
    if a.shape[0] > 1 and a.stride(0) == 0 and b.stride(0) == 0:
        return (a[:1] + b[:1]).expand_as(a)
    return a + b


def two_way_transformer(
    transformer: nn.Module, image: Tensor, image_pe: Tensor, point_embedding: Tensor
) -> tuple[Tensor, Tensor]:
    """``TwoWayTransformer.forward``: (B, C, h, w) image, (B, T, C) tokens -> tokens, image."""
    keys = image.flatten(2).transpose(1, 2)
    key_pe = image_pe.flatten(2).transpose(1, 2)
    queries = point_embedding
    for layer in transformer.layers:
        if layer.skip_first_layer_pe:
            queries = attention(layer.self_attn, queries, queries, queries)
        else:
            q = queries + point_embedding
            queries = queries + attention(layer.self_attn, q, q, queries)
        queries = layer.norm1(queries)
        q = queries + point_embedding
        k = _add(keys, key_pe)
        queries = layer.norm2(queries + attention(layer.cross_attn_token_to_image, q, k, keys))
        queries = layer.norm3(queries + layer.mlp(queries))
        q = queries + point_embedding
        k = keys + key_pe
        keys = layer.norm4(keys + attention(layer.cross_attn_image_to_token, k, q, queries))
    q = queries + point_embedding
    k = keys + key_pe
    queries = queries + attention(transformer.final_attn_token_to_image, q, k, keys)
    return transformer.norm_final_attn(queries), keys


def predict_masks(
    decoder: nn.Module,
    image_embeddings: Tensor,
    image_pe: Tensor,
    sparse: Tensor,
    dense: Tensor,
    multimask: bool,
) -> tuple[Tensor, Tensor]:
    """Low-resolution masks (N, M, 256, 256) and IoU predictions (N, M) of N prompts.

    ``image_embeddings`` (1, C, h, w), ``image_pe`` (1, C, h, w), ``sparse`` (N, T, C),
    ``dense`` (N or 1, C, h, w). M = 3 with ``multimask``, else 1.
    """
    n = sparse.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(n, -1, -1), sparse), dim=1)
    src = image_embeddings + dense
    if src.shape[0] != n:
        src = src.expand(n, -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = two_way_transformer(
        decoder.transformer, src, image_pe.expand(n, -1, -1, -1), tokens
    )
    iou_token_out = hs[:, 0, :]
    chosen = range(1, decoder.num_mask_tokens) if multimask else range(1)
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper_in = torch.stack(
        [decoder.output_hypernetworks_mlps[i](hs[:, 1 + i, :]) for i in chosen], dim=1
    )
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    iou = decoder.iou_prediction_head(iou_token_out)
    return masks, iou[:, chosen.start : chosen.stop]
