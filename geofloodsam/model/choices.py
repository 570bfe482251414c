"""Names the command line offers for the model layer, importable without torch."""

#: ``--device`` values: CUDA when available (``auto``), or forced
DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: ``--precision`` values of the image encoder: ``auto`` follows the hardware
#: (:func:`geofloodsam.model.precision.resolve_encoder`); ``fp32`` is the reference;
#: ``int8``: int8 weights on OpenVINO (the ``int8`` extra)
PRECISION_CHOICES = ("auto", "fp32", "bf16", "int8")
#: ``--runtime`` values of the image encoder: ``openvino`` is the optional extra
RUNTIME_CHOICES = ("auto", "torch", "openvino")
