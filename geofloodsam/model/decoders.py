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

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geofloodsam import __version__
from geofloodsam.errors import GeofloodsamError
from geofloodsam.files.atomic import atomic_write
from geofloodsam.files.hashing import sha256_file

if TYPE_CHECKING:
    import torch

    from geofloodsam.model.sam import SamModel

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
    import torch

    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_decoder(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a decoder checkpoint; returns (state dict, meta). One-line errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise GeofloodsamError(
            f"decoder checkpoint {path} does not exist: give a file written by "
            f"`geofloodsam finetune`, or {' / '.join(f'`{n}`' for n in (PRETRAINED, *SHIPPED))}."
        )
    import torch

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


# --------------------------------------------------------------------------- decoder specs
#: the decoder of the base checkpoint itself
PRETRAINED = "pretrained"
#: decoders shipped in the package: ``--decoder NAME`` loads ``data/NAME_decoder_<model>.pt``
#: (``flood``: flood photos; ``satellite``: Earth Surface Water, docs/satellite.md)
SHIPPED = ("flood", "satellite")
SHIPPED_DECODER_DIR = Path(__file__).resolve().parents[1] / "data"


def shipped_decoder(name: str, model_name: str) -> Path:
    """Path of the decoder ``name`` (e.g. ``flood``) shipped for base model ``model_name``."""
    path = SHIPPED_DECODER_DIR / f"{name}_decoder_{model_name}.pt"
    if not path.is_file():
        raise GeofloodsamError(
            f"no {name} decoder is shipped for model {model_name}: use --decoder pretrained, "
            "or a decoder file from `geofloodsam finetune`."
        )
    return path


def default_decoder(model_name: str, preferred: str = "flood") -> str:
    """``preferred`` (a shipped name) when the package ships it for ``model_name``, else
    ``pretrained``."""
    shipped = SHIPPED_DECODER_DIR / f"{preferred}_decoder_{model_name}.pt"
    return preferred if shipped.is_file() else PRETRAINED


@dataclass(frozen=True)
class DecoderSpec:
    """What ``--decoder`` names: ``pretrained``, a shipped decoder (``flood``) or a file."""

    text: str

    @classmethod
    def parse(cls, spec: str | Path | DecoderSpec | None, model_name: str) -> DecoderSpec:
        """``None`` -> the default decoder of ``model_name``; anything else as given."""
        if isinstance(spec, DecoderSpec):
            return spec
        return cls(default_decoder(model_name) if spec is None else str(spec))

    @property
    def is_pretrained(self) -> bool:
        return self.text == PRETRAINED

    @property
    def is_shipped(self) -> bool:
        return self.text in SHIPPED

    @property
    def is_file(self) -> bool:
        return not (self.is_pretrained or self.is_shipped)

    @property
    def label(self) -> str:
        """Its name in tables: the keyword, or the file's stem."""
        return self.text if not self.is_file else Path(self.text).stem

    def path(self, model_name: str) -> Path | None:
        """The decoder file to load (``None`` for ``pretrained``)."""
        if self.is_pretrained:
            return None
        return shipped_decoder(self.text, model_name) if self.is_shipped else Path(self.text)

    def portable(self) -> str:
        """The spec as another process on a shared file system can use it (absolute path)."""
        return str(Path(self.text).resolve()) if self.is_file else self.text


# --------------------------------------------------------------------------- swapping
def apply_decoder(model: SamModel, decoder: str | Path | DecoderSpec) -> SamModel:
    """Swap a fine-tuned mask decoder into ``model`` (``pretrained``: leave it as it is)."""
    spec = decoder if isinstance(decoder, DecoderSpec) else DecoderSpec(str(decoder))
    if spec.is_pretrained:
        return model
    path = spec.path(model.name)
    state, meta = read_decoder(path)
    check_compatible(meta, path, model.name, model.checkpoint_sha256 or "")
    target = model.sam.mask_decoder
    reference = target.state_dict()
    if set(state) != set(reference):
        raise GeofloodsamError(
            f"decoder {path} has keys that do not match segment-anything's MaskDecoder: "
            "it was not written by `geofloodsam finetune`."
        )
    target.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()}, strict=True)
    model.decoder_name = spec.text if spec.is_shipped else str(path)
    model.decoder_sha256 = sha256_file(path)
    model.decoder_meta = meta
    return model


@dataclass
class Decoder:
    """A mask decoder to score: its label in the tables, what was asked, the module itself."""

    label: str
    spec: str
    module: torch.nn.Module
    sha256: str | None = None


def load_decoders(model: SamModel, specs: Sequence[str]) -> list[Decoder]:
    """Resolve ``pretrained`` / ``flood`` / decoder files into modules sharing ``model``'s encoder.

    ``model`` must carry its pretrained decoder; it is left unchanged. Each other decoder is
    loaded into a deep copy of the pretrained mask decoder (one-line errors for unknown or
    incompatible decoders come from :func:`geofloodsam.model.sam.apply_decoder`).
    """
    if model.decoder_name != "pretrained":
        raise ValueError("load_decoders needs the model with its pretrained decoder")
    pretrained = model.sam.mask_decoder
    saved = (model.decoder_name, model.decoder_sha256, model.decoder_meta)
    out: list[Decoder] = []
    labels: set[str] = set()
    try:
        for spec in dict.fromkeys(str(s) for s in specs):
            if spec == "pretrained":
                module, sha = pretrained, None
            else:
                model.sam.mask_decoder = copy.deepcopy(pretrained)
                apply_decoder(model, spec)
                module, sha = model.sam.mask_decoder, model.decoder_sha256
            label = DecoderSpec(spec).label
            base, n = label, 2
            while label in labels:
                label, n = f"{base}-{n}", n + 1
            labels.add(label)
            out.append(Decoder(label, spec, module, sha))
    finally:
        model.sam.mask_decoder = pretrained
        model.decoder_name, model.decoder_sha256, model.decoder_meta = saved
    return out


@contextlib.contextmanager
def use_decoder(model: SamModel, decoder: Decoder) -> Iterator[SamModel]:
    """Swap ``decoder`` into ``model`` for the duration of the block."""
    previous = model.sam.mask_decoder
    model.sam.mask_decoder = decoder.module
    try:
        yield model
    finally:
        model.sam.mask_decoder = previous
