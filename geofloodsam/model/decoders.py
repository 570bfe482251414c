"""The fine-tuned decoder checkpoint format.

One torch file holding::

    {"format": "geofloodsam-decoder/1",
     "decoder": <MaskDecoder state dict, keys exactly segment-anything's>,
     "meta": {"base_model": "vit_t", "base_sha256": "...", "data": ..., "split": ...,
              "prompt_mode": ..., "epochs": ..., "seed": ..., "metrics": {...},
              "version": "<geofloodsam version>", ...}}

Tensors may be stored as float16 to keep shipped files small; they are cast back to the
model's dtype on load. Loading refuses a decoder made for another base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from geofloodsam import __version__
from geofloodsam.errors import GeofloodsamError
from geofloodsam.files.atomic import atomic_write

FORMAT = "geofloodsam-decoder/1"
REQUIRED_META = ("base_model", "base_sha256")


def save_decoder(
    path: str | Path,
    decoder_state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    half: bool = False,
) -> Path:
    """Write a decoder checkpoint atomically (temporary file in the same folder, then rename)."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"decoder meta lacks {missing}")
    state = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in decoder_state.items()
    }
    payload = {"format": FORMAT, "decoder": state, "meta": {"version": __version__, **meta}}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_decoder(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a decoder checkpoint; returns (state dict, meta). One-line errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise GeofloodsamError(
            f"decoder checkpoint {path} does not exist: give a file written by "
            "`geofloodsam finetune`, or `pretrained` / `flood`."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise GeofloodsamError(
            f"cannot read decoder checkpoint {path} ({type(exc).__name__}): the file is "
            "truncated or not a geofloodsam decoder; re-create it with `geofloodsam finetune`."
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise GeofloodsamError(
            f"{path} is not a geofloodsam decoder checkpoint (no '{FORMAT}' marker): "
            "give a file written by `geofloodsam finetune`."
        )
    return payload["decoder"], payload["meta"]


def check_compatible(
    meta: dict[str, Any], path: str | Path, model_name: str, base_sha256: str
) -> None:
    """Refuse a decoder fine-tuned on another base model."""
    if meta.get("base_model") != model_name or meta.get("base_sha256") != base_sha256:
        raise GeofloodsamError(
            f"decoder {path} was fine-tuned for base model {meta.get('base_model')} "
            f"(checkpoint SHA-256 {str(meta.get('base_sha256'))[:12]}…), not for {model_name} "
            f"({base_sha256[:12]}…): use --model {meta.get('base_model')} with its checkpoint, "
            "or a decoder trained for this model."
        )
