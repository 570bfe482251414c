"""Training: fine-tuning SAM's mask decoder (encoders frozen), or with it the image encoder.

- :mod:`~geofloodsam.training.config`: the run's settings (no torch needed).
- :mod:`~geofloodsam.training.prompt_sampling`: random training prompts from truth.
- :mod:`~geofloodsam.training.finetune`: the training loop, validation, checkpoints.
- :mod:`~geofloodsam.training.adapted`: ``--train adapter|full``: the image encoder in the
  loop (LoRA adapters or all weights), on crops at the inference pixel scale.

May import: everything up to ``evaluation``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
#: (``finetune`` itself is ``geofloodsam.finetune``: its module has its name)
_API = {
    "FinetuneConfig": "config",
    "FinetuneResult": "finetune",
    "PromptBatch": "prompt_sampling",
    "sample_prompts": "prompt_sampling",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
