"""The settings of a fine-tuning run (torch-free, so the CLI can show them without torch)."""

from __future__ import annotations

from dataclasses import dataclass

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.variants import AUGMENT_VARIANTS
from geofloodsam.vector.prompts import NO_PROMPT

#: the kinds each ``--prompt`` mode cycles through
MODE_KINDS = {
    "point": ("point", "points"),
    "box": ("box", "region", NO_PROMPT),
    "mixed": ("box", "point", NO_PROMPT, "points", "region"),
}

PROMPT_MODES = tuple(MODE_KINDS)
#: what ``--train`` trains: the mask decoder only (encoders frozen, embeddings cached), LoRA
#: adapters in the image encoder with the decoder, or the image encoder and decoder entirely
TRAIN_CHOICES = ("decoder", "adapter", "full")
#: ``--adapt``: the TinyViT layers that get adapters (geofloodsam.model.lora.TARGETS)
ADAPT_CHOICES = ("attn", "attn+mlp")
#: base models whose image encoder the adapter code knows (MobileSAM's TinyViT)
ADAPTABLE_MODELS = ("vit_t", "tiny")
AUGMENTS = tuple(AUGMENT_VARIANTS)
#: validation prompts: the default evaluation prompts and the promptless whole-image box
VAL_PROMPTS = ("box", "point", NO_PROMPT)


@dataclass
class FinetuneConfig:
    """Everything that defines a fine-tuning run (stored in the checkpoint's meta)."""

    data: str
    model: str = "vit_t"
    checkpoint: str | None = None
    #: the decoder training starts from: pretrained, a shipped name or a decoder file
    init_decoder: str = "pretrained"
    #: decoder, adapter (LoRA in the image encoder + decoder) or full (encoder + decoder)
    train: str = "decoder"
    #: adapter rank and the layers adapted (``--train adapter``)
    rank: int = 4
    adapt: str = "attn"
    #: side of the training crops of the SAM-resized image (``--train adapter|full``)
    crop: int = 512
    #: learning rate of the encoder's trainable weights (None: ``lr``)
    encoder_lr: float | None = None
    epochs: int = 10
    batch_size: int = 4
    prompts_per_image: int = 2
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: float = 0.05
    prompt: str = "mixed"
    augment: str = "flip"
    multimask: str = "best"
    dice_weight: float = 1.0
    bce_weight: float = 1.0
    iou_weight: float = 1.0
    patience: int = 4
    seed: int = 0
    bands: tuple[int, ...] | None = None
    stretch: str = "auto"
    sensor: str = "auto"  # GeoTIFF chips: read as this sensor's composite
    cache_dir: str | None = None
    device: str = "auto"
    precision: str = "auto"
    runtime: str = "auto"
    progress: bool = True

    def check(self) -> None:
        """One-line errors for impossible settings."""
        if self.prompt not in PROMPT_MODES:
            raise GeofloodsamError(f"--prompt {self.prompt}: use one of {', '.join(PROMPT_MODES)}.")
        if self.augment not in AUGMENTS:
            raise GeofloodsamError(f"--augment {self.augment}: use one of {', '.join(AUGMENTS)}.")
        if self.multimask not in ("best", "all"):
            raise GeofloodsamError(f"multimask {self.multimask!r}: use best or all.")
        for name in ("epochs", "batch_size", "prompts_per_image", "patience"):
            if int(getattr(self, name)) < 1:
                raise GeofloodsamError(f"--{name.replace('_', '-')} must be at least 1.")
        if not self.lr > 0:
            raise GeofloodsamError(f"--lr must be positive, got {self.lr}.")
        self._check_encoder_training()

    def _check_encoder_training(self) -> None:
        if self.train not in TRAIN_CHOICES:
            raise GeofloodsamError(f"--train {self.train}: use one of {', '.join(TRAIN_CHOICES)}.")
        if self.train == "decoder":
            return
        if self.model not in ADAPTABLE_MODELS:
            raise GeofloodsamError(
                f"--train {self.train} knows MobileSAM's TinyViT image encoder only, not the "
                f"{self.model} encoder: use --model vit_t, or --train decoder."
            )
        if self.adapt not in ADAPT_CHOICES:
            raise GeofloodsamError(f"--adapt {self.adapt}: use one of {', '.join(ADAPT_CHOICES)}.")
        if int(self.rank) < 1:
            raise GeofloodsamError("--rank must be at least 1.")
        if not 64 <= int(self.crop) <= 1024 or int(self.crop) % 16:
            raise GeofloodsamError(
                f"--crop {self.crop}: give a multiple of 16 from 64 to 1024 (e.g. 512)."
            )
        if self.encoder_lr is not None and not self.encoder_lr > 0:
            raise GeofloodsamError(f"--encoder-lr must be positive, got {self.encoder_lr}.")


