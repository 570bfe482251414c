"""SAM as one small API: load, encode once, decode many prompts.

- :mod:`~geofloodsam.model.sam`: ``load_model``, ``SamModel``, ``Embedding``, ``Prediction``
  and the ``PromptableModel`` protocol that engines (and test dummies) talk to.
- :mod:`~geofloodsam.model.spec`: ``ModelSpec``, which model a run loads (in this process
  or on every Dask worker), as one small value.
- :mod:`~geofloodsam.model.decoders`: the decoder spec ``pretrained|flood|PATH``, the
  fine-tuned decoder (and adapted-model) file format, swapping decoders;
  :mod:`~geofloodsam.model.lora`: low-rank adapters in the TinyViT encoder, merged for
  inference.
- :mod:`~geofloodsam.model.embedding_cache`: image embeddings persisted on disk between runs
  (``finetune``, ``evaluate``), signed by image hash, model and preprocessing;
  :mod:`~geofloodsam.model.variants`: the cached image variants.
- :mod:`~geofloodsam.model.logits`: the one sigmoid of logits (SAM's and the water prior's);
  :mod:`~geofloodsam.model.torch_files`: ``torch.load`` of a checkpoint, decoder file or
  resume state, or one line naming the bad file and the fix.
- :mod:`~geofloodsam.model.device`: device, threads, autocast, batch size;
  :mod:`~geofloodsam.model.choices`: the CLI's choices without torch.
- :mod:`~geofloodsam.model.precision`: what ``--precision`` / ``--runtime`` resolve to on
  this hardware (CPU bf16 units, CUDA, OpenVINO installed or not);
  :mod:`~geofloodsam.model.openvino_runtime`: the image encoder on OpenVINO (the
  optional ``openvino`` extra, IR cached on disk); :mod:`~geofloodsam.model.openvino_int8`:
  the encoder's int8-weight graph (NNCF, the optional ``int8`` extra);
  :mod:`~geofloodsam.model.fast_decoder`: segment-anything's mask decoder with less work
  per call (cached dense positional encoding, broadcast image, only the returned masks).
- :mod:`~geofloodsam.model.sam_import`, :mod:`~geofloodsam.model.tinyvit`: segment-anything's
  modeling without torchvision, and MobileSAM's TinyViT encoder.

May import: ``errors``, ``files``, ``geo``, ``weights``.
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "load_model": "sam",
    "SamModel": "sam",
    "Embedding": "sam",
    "Prediction": "sam",
    "PromptableModel": "sam",
    "Decoder": "decoders",
    "DecoderSpec": "decoders",
    "load_decoders": "decoders",
    "use_decoder": "decoders",
    "save_decoder": "decoders",
    "read_checkpoint": "decoders",
    "PersistentEmbeddingCache": "embedding_cache",
    "sigmoid": "logits",
    "load_torch_file": "torch_files",
    "DEVICE_CHOICES": "choices",
    "PRECISION_CHOICES": "choices",
    "RUNTIME_CHOICES": "choices",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
