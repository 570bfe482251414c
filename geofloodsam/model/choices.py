"""Names the command line offers for the model layer, importable without torch."""

#: ``--device`` values: CUDA when available (``auto``), or forced
DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: ``--precision`` values of the image encoder: ``auto`` follows the hardware
#: (:func:`geofloodsam.model.precision.resolve_encoder`); ``fp32`` is the reference
PRECISION_CHOICES = ("auto", "fp32", "bf16")
#: ``--runtime`` values of the image encoder: ``openvino`` is the optional extra
RUNTIME_CHOICES = ("auto", "torch", "openvino")
