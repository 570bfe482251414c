"""Training: fine-tuning SAM's mask decoder (encoders frozen), or with it the image encoder.

- :mod:`~geofloodsam.training.config`: the run's settings (no torch needed).
- :mod:`~geofloodsam.training.prompt_sampling`: random training prompts from truth.
- :mod:`~geofloodsam.training.finetune`: the training loop, validation, checkpoints.
- :mod:`~geofloodsam.training.adapted`: ``--train adapter|full``: the image encoder in the
  loop (LoRA adapters or all weights), on crops at the inference pixel scale.

May import: everything up to ``evaluation``.
"""
