"""Which model a run loads, as one small value: :class:`ModelSpec`.

The same spec loads the model in this process (``segment`` without Dask) and on every Dask
worker (:mod:`geofloodsam.segmentation.distributed`), where it travels by pickle; it imports
no torch until :meth:`ModelSpec.load` is called.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from geofloodsam.errors import GeofloodsamError


@dataclass(frozen=True)
class ModelSpec:
    """Everything :func:`geofloodsam.model.sam.load_model` needs (its defaults, too)."""

    name: str = "vit_t"
    checkpoint: str | None = None
    decoder: str = "pretrained"
    device: str = "auto"
    batch_size: int | None = None
    seed: int = 0
    precision: str = "auto"
    runtime: str = "auto"

    @property
    def plugin_name(self) -> str:
        """A name unique to this spec: a new spec replaces, never reuses, a loaded model."""
        digest = hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()
        return f"geofloodsam-model-{digest[:12]}"

    def portable(self) -> ModelSpec:
        """This spec as another process on a shared file system can use it (absolute
        checkpoint and decoder paths)."""
        from geofloodsam.model.decoders import DecoderSpec

        checkpoint = None if self.checkpoint is None else str(Path(self.checkpoint).resolve())
        return replace(self, checkpoint=checkpoint, decoder=DecoderSpec(self.decoder).portable())

    def load(self):
        """Load the model (on the machine that calls it)."""
        from geofloodsam.model.sam import load_model

        return load_model(
            self.name,
            checkpoint=self.checkpoint,
            decoder=self.decoder,
            device=self.device,
            batch_size=self.batch_size,
            seed=self.seed,
            precision=self.precision,
            runtime=self.runtime,
        )

    def expected_hashes(self) -> dict[str, str | None]:
        """The checkpoint / decoder SHA-256 the client expects (``None``: cannot tell here)."""
        from geofloodsam.model.decoders import DecoderSpec
        from geofloodsam.model.sam import TINY
        from geofloodsam.weights.checkpoints import REGISTRY, checkpoint_sha256

        if self.name == TINY:
            checkpoint = f"tiny-seed-{self.seed}"
        elif self.checkpoint is not None:
            path = Path(self.checkpoint)
            checkpoint = checkpoint_sha256(path) if path.is_file() else None
        else:
            entry = REGISTRY.get(self.name)
            checkpoint = entry.sha256 if entry is not None else None
        path = DecoderSpec(self.decoder).path(self.name)
        decoder = checkpoint_sha256(path) if path is not None and path.is_file() else None
        return {"checkpoint_sha256": checkpoint, "decoder_sha256": decoder}

    def missing(self) -> str | None:
        """What this machine lacks to load the model, without downloading anything."""
        from geofloodsam.model.decoders import DecoderSpec
        from geofloodsam.model.sam import TINY
        from geofloodsam.weights.checkpoints import REGISTRY, find_checkpoint, not_found_message

        if self.checkpoint is not None:
            if not Path(self.checkpoint).is_file():
                return f"has no checkpoint file {self.checkpoint}: copy it there (same path)"
        elif self.name != TINY and self.name in REGISTRY:
            try:
                found = find_checkpoint(self.name)
            except GeofloodsamError as exc:
                return f"has a bad checkpoint: {exc.message}"
            if found is None:
                return f"lacks the weights: {not_found_message(self.name)} on the workers"
        spec = DecoderSpec(self.decoder)
        if spec.is_file and not Path(spec.text).is_file():
            return f"has no decoder file {self.decoder}: copy it there (same path)"
        return None
