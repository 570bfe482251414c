"""The settings of a fine-tuning run (torch-free, so the CLI can show them without torch)."""

from __future__ import annotations

from dataclasses import dataclass

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.variants import AUGMENT_VARIANTS
from geofloodsam.vector.prompts import WHOLE_IMAGE

#: the kinds each ``--prompt`` mode cycles through
MODE_KINDS = {
    "point": ("point", "points"),
    "box": ("box", "region", WHOLE_IMAGE),
    "mixed": ("box", "point", WHOLE_IMAGE, "points", "region"),
}

PROMPT_MODES = tuple(MODE_KINDS)
AUGMENTS = tuple(AUGMENT_VARIANTS)
#: validation prompts: the default evaluation prompts and the promptless whole-image box
VAL_PROMPTS = ("box", "point", WHOLE_IMAGE)


@dataclass
class FinetuneConfig:
    """Everything that defines a fine-tuning run (stored in the checkpoint's meta)."""

    data: str
    model: str = "vit_t"
    checkpoint: str | None = None
    #: the decoder training starts from: pretrained, a shipped name or a decoder file
    init_decoder: str = "pretrained"
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


