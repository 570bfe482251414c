"""The fine-tuned decoder checkpoint format.

One torch file holding::

    {"format": "geofloodsam-decoder/1",
     "decoder": <MaskDecoder state dict, keys exactly segment-anything's>,
     "meta": {"base_model": "vit_t", "base_sha256": "...", "data": ..., "split": ...,
              "prompt_mode": ..., "epochs": ..., "seed": ..., "metrics": {...},
              "version": "<geofloodsam version>", ...}}

An *adapted model* (``finetune --train adapter|full``) is the same file with format
``geofloodsam-adapted/1`` and one more entry, the image encoder's change::

    {"format": "geofloodsam-adapted/1", "decoder": ..., "meta": {..., "train": "adapter",
     "rank": 4, "adapt": "attn", "encoder_sha256": "..."},
     "encoder": {"kind": "lora", "state": {"<layer>.lora_a": A, "<layer>.lora_b": B, ...}}}

(``kind`` ``full``: ``state`` is the whole encoder's state dict). Loading merges the adapters
into the encoder's weights (:func:`geofloodsam.model.lora.merge_state_into`), so every
inference path runs the base architecture; ``model.encoder_sha256`` (the adapters' hash)
then signs cached embeddings and OpenVINO graphs. Older versions of geofloodsam refuse such a
file (other format marker) instead of silently ignoring its encoder.

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
from geofloodsam.model.torch_files import load_torch_file

if TYPE_CHECKING:
    import torch

    from geofloodsam.model.sam import SamModel

FORMAT = "geofloodsam-decoder/1"
ADAPTED_FORMAT = "geofloodsam-adapted/1"
REQUIRED_META = ("base_model", "base_sha256")
#: what the ``encoder`` entry of an adapted-model file holds
ENCODER_KINDS = ("lora", "full")


def _cpu(state: dict[str, torch.Tensor], half: bool) -> dict[str, torch.Tensor]:
    return {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        for k, v in state.items()
    }


def _plain(value: Any) -> Any:
    """``value`` with paths as strings (files are read with ``weights_only``, which refuses
    other classes; a ``Path`` in ``meta`` would make the file unreadable)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return str(value) if isinstance(value, Path) else value


def save_decoder(
    path: str | Path,
    decoder_state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    half: bool = False,
    encoder: dict[str, Any] | None = None,
) -> Path:
    """Write a decoder checkpoint atomically (temporary file in the same folder, then rename).

    ``encoder`` (``{"kind": "lora" | "full", "state": {...}}``) makes it an adapted-model file.
    """
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"decoder meta lacks {missing}")
    payload: dict[str, Any] = {
        "format": FORMAT,
        "decoder": _cpu(decoder_state, half),
        "meta": _plain({"version": __version__, **meta}),
    }
    if encoder is not None:
        if encoder.get("kind") not in ENCODER_KINDS:
            raise ValueError(f"encoder kind must be one of {ENCODER_KINDS}")
        payload["format"] = ADAPTED_FORMAT
        payload["encoder"] = {"kind": encoder["kind"], "state": _cpu(encoder["state"], half)}
    import torch

    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


@dataclass
class DecoderFile:
    """What a decoder (or adapted-model) file holds."""

    decoder: dict[str, torch.Tensor]
    meta: dict[str, Any]
    encoder_kind: str | None = None  # None: decoder only; "lora" or "full"
    encoder_state: dict[str, torch.Tensor] | None = None


def read_decoder(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a decoder checkpoint; returns (state dict, meta). One-line errors for bad files."""
    found = read_checkpoint(path)
    return found.decoder, found.meta


def read_checkpoint(path: str | Path) -> DecoderFile:
    """Read a decoder or adapted-model file. One-line errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise GeofloodsamError(
            f"decoder checkpoint {path} does not exist: give a file written by "
            f"`geofloodsam finetune`, or {' / '.join(f'`{n}`' for n in (PRETRAINED, *SHIPPED))}."
        )
    payload = load_torch_file(
        path, "decoder checkpoint",
        "the file is truncated or not a geofloodsam decoder; re-create it with "
        "`geofloodsam finetune`.",
    )
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt not in (FORMAT, ADAPTED_FORMAT):
        raise GeofloodsamError(
            f"{path} is not a geofloodsam decoder checkpoint (no '{FORMAT}' marker): "
            "give a file written by `geofloodsam finetune`."
        )
    if fmt == FORMAT:
        return DecoderFile(payload["decoder"], payload["meta"])
    encoder = payload.get("encoder")
    if not isinstance(encoder, dict) or encoder.get("kind") not in ENCODER_KINDS:
        raise GeofloodsamError(
            f"{path} is an adapted-model file without a readable encoder entry: re-create it "
            "with `geofloodsam finetune --train adapter`."
        )
    return DecoderFile(payload["decoder"], payload["meta"], encoder["kind"], encoder["state"])


def check_compatible(
    meta: dict[str, Any], path: str | Path, model_name: str, base_sha256: str
) -> None:
    """Refuse a decoder fine-tuned on another base model."""
    if meta.get("base_model") != model_name or meta.get("base_sha256") != base_sha256:
        what = "adapted model" if meta.get("train", "decoder") != "decoder" else "decoder"
        raise GeofloodsamError(
            f"{what} {path} was fine-tuned for base model {meta.get('base_model')} "
            f"(checkpoint SHA-256 {str(meta.get('base_sha256'))[:12]}…), not for {model_name} "
            f"({base_sha256[:12]}…): use --model {meta.get('base_model')} with its checkpoint, "
            "or a decoder trained for this model."
        )


# --------------------------------------------------------------------------- decoder specs
#: the decoder of the base checkpoint itself
PRETRAINED = "pretrained"
#: models shipped in the package by name: ``--decoder NAME`` loads ``data/<stem>_<model>.pt``.
#: ``flood`` (flood photos) and ``satellite`` (Earth Surface Water) are adapted models: LoRA
#: adapters in the image encoder with their decoder (docs/finetuning.md); the decoder-only
#: models they replaced stay reachable as ``flood-decoder-only`` / ``satellite-decoder-only``.
SHIPPED_FILES = {
    "flood": "flood_adapted",
    "satellite": "satellite_adapted",
    "flood-decoder-only": "flood_decoder",
    "satellite-decoder-only": "satellite_decoder",
}
SHIPPED = tuple(SHIPPED_FILES)
SHIPPED_DECODER_DIR = Path(__file__).resolve().parents[1] / "data"


def _shipped_path(name: str, model_name: str) -> Path:
    return SHIPPED_DECODER_DIR / f"{SHIPPED_FILES[name]}_{model_name}.pt"


def shipped_decoder(name: str, model_name: str) -> Path:
    """Path of the decoder ``name`` (e.g. ``flood``) shipped for base model ``model_name``."""
    path = _shipped_path(name, model_name)
    if not path.is_file():
        raise GeofloodsamError(
            f"no {name} decoder is shipped for model {model_name}: use --decoder pretrained, "
            "or a decoder file from `geofloodsam finetune`."
        )
    return path


def default_decoder(model_name: str, preferred: str = "flood") -> str:
    """``preferred`` (a shipped name) when the package ships it for ``model_name``, else
    ``pretrained``."""
    return preferred if _shipped_path(preferred, model_name).is_file() else PRETRAINED


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
def read_model_file(
    decoder: str | Path | DecoderSpec, model_name: str
) -> tuple[DecoderSpec, DecoderFile | None]:
    """The spec of ``decoder`` and its file as read (None for ``pretrained``)."""
    spec = decoder if isinstance(decoder, DecoderSpec) else DecoderSpec(str(decoder))
    return spec, None if spec.is_pretrained else read_checkpoint(spec.path(model_name))


def adapted_sha256(found: DecoderFile | None) -> str | None:
    """The hash an encoder gets once ``found``'s encoder change is applied (None: the base
    encoder), told before it is applied: what signs its cached OpenVINO graph."""
    if found is None or found.encoder_kind is None:
        return None
    rank = int(found.meta.get("rank", 0)) if found.encoder_kind == "lora" else None
    return encoder_sha256(found.encoder_kind, found.encoder_state or {}, rank)


def apply_decoder(
    model: SamModel, decoder: str | Path | DecoderSpec, found: DecoderFile | None = None
) -> SamModel:
    """Swap a fine-tuned mask decoder into ``model`` (``pretrained``: leave it as it is).

    An adapted-model file also changes the image encoder: its adapters are merged into the
    encoder's weights (or its full encoder loaded), and ``model.encoder_sha256`` is set.
    ``found``: the file of ``decoder`` already read (:func:`read_model_file`).
    """
    spec = decoder if isinstance(decoder, DecoderSpec) else DecoderSpec(str(decoder))
    if spec.is_pretrained:
        return model
    path = spec.path(model.name)
    found = found or read_checkpoint(path)
    check_compatible(found.meta, path, model.name, model.checkpoint_sha256 or "")
    if getattr(model, "encoder_sha256", None) is not None:
        raise ValueError(
            "apply_decoder on a model whose image encoder is already adapted: load the base "
            "model again (merged adapters cannot be taken out)"
        )
    target = model.sam.mask_decoder
    reference = target.state_dict()
    if set(found.decoder) != set(reference):
        raise GeofloodsamError(
            f"decoder {path} has keys that do not match segment-anything's MaskDecoder: "
            "it was not written by `geofloodsam finetune`."
        )
    if found.encoder_kind is not None:
        model.encoder_sha256 = apply_encoder(model.sam.image_encoder, found, path)
    target.load_state_dict(
        {k: v.to(reference[k].dtype) for k, v in found.decoder.items()}, strict=True
    )
    model.decoder_name = spec.text if spec.is_shipped else str(path)
    model.decoder_sha256 = sha256_file(path)
    model.decoder_meta = found.meta
    return model


def encoder_sha256(kind: str, state: dict[str, torch.Tensor], rank: int | None = None) -> str:
    """The hash that signs an adapted encoder (its tensors as stored: float16, and its kind)."""
    from geofloodsam.model.lora import tensors_sha256

    half = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return tensors_sha256(half, kind, str(rank))


def apply_encoder(encoder: torch.nn.Module, found: DecoderFile, path: str | Path) -> str:
    """Merge the adapters of ``found`` into ``encoder`` (or load its full encoder); returns
    the encoder's hash (:func:`encoder_sha256`)."""
    from geofloodsam.model.lora import merge_state_into

    state, meta = found.encoder_state or {}, found.meta
    if found.encoder_kind == "lora":
        rank = int(meta.get("rank", 0))
        if rank < 1:
            raise GeofloodsamError(f"adapted model {path} has no adapter rank in its meta: "
                                   "re-create it with `geofloodsam finetune --train adapter`.")
        merge_state_into(encoder, state, rank, meta.get("alpha"))
        return encoder_sha256("lora", state, rank)
    reference = encoder.state_dict()
    if set(state) != set(reference):
        raise GeofloodsamError(
            f"the encoder in {path} does not match this model's image encoder: re-create it "
            "with `geofloodsam finetune --train full`."
        )
    encoder.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()})
    return encoder_sha256("full", state)


@dataclass
class Decoder:
    """A mask decoder to score: its label in the tables, what was asked, the module itself."""

    label: str
    spec: str
    module: torch.nn.Module
    sha256: str | None = None
    #: an adapted model's own image encoder (adapters merged) and its hash; None: the base's
    encoder: torch.nn.Module | None = None
    encoder_sha256: str | None = None


def load_decoders(model: SamModel, specs: Sequence[str]) -> list[Decoder]:
    """Resolve ``pretrained`` / ``flood`` / decoder files into modules sharing ``model``'s encoder.

    ``model`` must carry its pretrained decoder and base encoder; it is left unchanged. Each
    other decoder is loaded into a deep copy of the pretrained mask decoder (one-line errors
    for unknown or incompatible decoders come from :func:`apply_decoder`); an adapted model
    also gets a deep copy of the image encoder with its adapters merged.
    """
    if model.decoder_name != "pretrained" or getattr(model, "encoder_sha256", None):
        raise ValueError("load_decoders needs the model with its pretrained decoder")
    pretrained, encoder = model.sam.mask_decoder, model.sam.image_encoder
    saved = (model.decoder_name, model.decoder_sha256, model.decoder_meta)
    out: list[Decoder] = []
    labels: set[str] = set()
    try:
        for spec in dict.fromkeys(str(s) for s in specs):
            own_encoder, enc_sha = None, None
            if spec == "pretrained":
                module, sha = pretrained, None
            else:
                model.sam.mask_decoder = copy.deepcopy(pretrained)
                if _is_adapted(DecoderSpec(spec), model.name):
                    model.sam.image_encoder = copy.deepcopy(encoder)
                apply_decoder(model, spec)
                module, sha = model.sam.mask_decoder, model.decoder_sha256
                if model.encoder_sha256 is not None:
                    own_encoder, enc_sha = model.sam.image_encoder, model.encoder_sha256
                model.sam.image_encoder, model.encoder_sha256 = encoder, None
            label = DecoderSpec(spec).label
            base, n = label, 2
            while label in labels:
                label, n = f"{base}-{n}", n + 1
            labels.add(label)
            out.append(Decoder(label, spec, module, sha, own_encoder, enc_sha))
    finally:
        model.sam.mask_decoder, model.sam.image_encoder = pretrained, encoder
        model.encoder_sha256 = None
        model.decoder_name, model.decoder_sha256, model.decoder_meta = saved
    return out


def _is_adapted(spec: DecoderSpec, model_name: str) -> bool:
    """Whether ``spec`` names an adapted-model file (read twice: small files, clearer code)."""
    path = spec.path(model_name)
    return path is not None and read_checkpoint(path).encoder_kind is not None


@contextlib.contextmanager
def use_decoder(model: SamModel, decoder: Decoder) -> Iterator[SamModel]:
    """Swap ``decoder`` (and an adapted model's image encoder) into ``model`` for the block."""
    previous = model.sam.mask_decoder
    model.sam.mask_decoder = decoder.module
    own = decoder.encoder is not None
    if own:
        base = model.sam.image_encoder, model.encoder_sha256
        model.sam.image_encoder, model.encoder_sha256 = decoder.encoder, decoder.encoder_sha256
    try:
        yield model
    finally:
        model.sam.mask_decoder = previous
        if own:
            model.sam.image_encoder, model.encoder_sha256 = base
