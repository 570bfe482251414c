"""Training: fine-tuning SAM's mask decoder, encoders frozen.

- :mod:`~geofloodsam.training.config`: the run's settings (no torch needed).
- :mod:`~geofloodsam.training.prompt_sampling`: random training prompts from truth.
- :mod:`~geofloodsam.training.finetune`: the training loop, validation, checkpoints.

May import: everything up to ``evaluation``.
"""
