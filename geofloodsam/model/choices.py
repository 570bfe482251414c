"""Names the command line offers for the model layer, importable without torch."""

#: ``--device`` values: CUDA when available (``auto``), or forced
DEVICE_CHOICES = ("auto", "cpu", "cuda")
