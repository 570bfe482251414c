"""The model layer: load SAM, encode images once, decode many prompts per embedding.

Typical use::

    model = load_model("vit_t")                 # MobileSAM, CPU or CUDA
    emb = model.encode(rgb)                     # HxWx3 uint8, any size
    pred = model.decode(emb, points=[[120, 80]], point_labels=[1])
    water = pred.best_logits()[0] > 0           # (H, W) at the image's resolution

Engines (tiling, fine-tuning, evaluation) talk to the model through the small
:class:`PromptableModel` protocol, so tests can inject a dummy model. Prompts are given
in pixel coordinates of the encoded image (x = column, y = row); the scaling into the
model's 1024 frame lives in :mod:`geofloodsam.geo.transforms`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from geofloodsam.errors import GeofloodsamError
from geofloodsam.geo import transforms
from geofloodsam.model.decoders import adapted_sha256, apply_decoder, read_model_file
from geofloodsam.model.device import autocast, default_batch_size, resolve_device
from geofloodsam.model.fast_decoder import predict_masks
from geofloodsam.model.precision import EncoderPlan, resolve_encoder
from geofloodsam.model.sam_import import build_sam, modeling
from geofloodsam.model.torch_files import load_torch_file

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)
MODEL_NAMES = ("vit_t", "vit_b", "vit_l", "vit_h")
#: A tiny randomly initialised SAM (few channels) for fast unit tests: same code path.
TINY = "tiny"


@dataclass
class Embedding:
    """An encoded image: SAM's image embedding plus the sizes needed to map outputs back."""

    features: torch.Tensor  # (C, 64, 64) on the model's device, float32
    original_size: tuple[int, int]  # (h, w) of the image given to encode()
    input_size: tuple[int, int]  # (h, w) after resizing the longest side to image_size
    #: the same image through other (adapted) encoders, by ``SamModel.encoder_sha256``
    #: (``None``: the base encoder); set where one image is decoded by several models
    alternatives: dict[str | None, Embedding] | None = field(default=None, repr=False)

    def to(self, device: torch.device | str) -> Embedding:
        """The same embedding on another device."""
        others = None if self.alternatives is None else {
            k: v.to(device) for k, v in self.alternatives.items()
        }
        return Embedding(self.features.to(device), self.original_size, self.input_size, others)

    def for_encoder(self, encoder_sha256: str | None) -> Embedding:
        """The embedding made by the encoder ``encoder_sha256`` (itself when it has no
        alternatives)."""
        if self.alternatives is None:
            return self
        if encoder_sha256 not in self.alternatives:
            raise ValueError(f"no embedding of encoder {encoder_sha256} for this image")
        return self.alternatives[encoder_sha256]


@dataclass
class Prediction:
    """Decoder output for N prompts (objects) with C masks each (C = 3 with multimask).

    Built with ``upscale`` (and ``None`` logits), the full-resolution logits are computed
    when first asked for, and :meth:`best_logits` upscales only the best mask of each prompt.
    """

    _logits: np.ndarray | None  # (N, C, H, W) float32 mask logits at the original resolution
    iou: np.ndarray  # (N, C) predicted IoU
    low_res: np.ndarray  # (N, C, 256, 256) logits in the model frame (feed back as mask_input)
    upscale: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    @property
    def logits(self) -> np.ndarray:
        """(N, C, H, W) float32 mask logits at the image's original resolution."""
        if self._logits is None:
            self._logits = self.upscale(self.low_res)
        return self._logits

    def best_index(self) -> np.ndarray:
        """Index of the mask with the highest predicted IoU, per prompt."""
        return self.iou.argmax(axis=1)

    def best_logits(self) -> np.ndarray:
        """(N, H, W) logits of each prompt's best mask."""
        if self._logits is None:
            return self.upscale(self.best_low_res())[:, 0]
        return self._logits[np.arange(len(self._logits)), self.best_index()]

    def best_low_res(self) -> np.ndarray:
        """(N, 1, 256, 256) low-resolution logits of each prompt's best mask."""
        return self.low_res[np.arange(len(self.low_res)), self.best_index()][:, None]


@runtime_checkable
class PromptableModel(Protocol):
    """What the engines need from a model: encode images once, decode many prompts.

    :class:`SamModel` is the real one; tests inject a tiny random SAM or a dummy object with
    these methods.
    """

    image_size: int

    def encode_batch(self, images: Sequence[np.ndarray]) -> list[Embedding]:
        """Encode HxWx3 uint8 RGB images of any size; one :class:`Embedding` each."""
        ...

    def decode(
        self,
        embedding: Embedding,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = False,
    ) -> Prediction:
        """Decode N prompts on one embedding (at least one of points / boxes / mask_input).

        Shapes (N prompts, K points per prompt, pixel coordinates of the image given to
        ``encode``: x = column, y = row, pixel centres at +0.5):

        - ``points``: (N, K, 2) float xy; ``point_labels``: (N, K) int, 1 water, 0 not
          water, -1 padding (prompts with fewer points).
        - ``boxes``: (N, 4) float ``x0, y0, x1, y1``.
        - ``mask_input``: (N, 1, 256, 256) float low-resolution logits (SAM's dense prompt).
        - ``multimask``: 3 candidate masks per prompt (C = 3) instead of one (C = 1).

        Returns a :class:`Prediction`: ``logits`` (N, C, H, W) float32 at the image's size,
        water where > 0 (upscaled on first use); ``iou`` (N, C) predicted IoU; ``low_res``
        (N, C, 256, 256); ``best_logits()`` (N, H, W), upscaling only the best mask of each.
        """
        ...


def check_rgb(image: np.ndarray) -> np.ndarray:
    """Validate an HxWx3 uint8 RGB image; one-line error otherwise."""
    if not isinstance(image, np.ndarray):
        raise GeofloodsamError(
            f"image must be a numpy array (HxWx3 uint8 RGB), got {type(image).__name__}."
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise GeofloodsamError(
            f"image must be HxWx3 uint8 RGB, got shape {image.shape} dtype {image.dtype}: "
            "convert it first (e.g. PIL `.convert('RGB')`, or pick 3 bands and stretch to 0-255)."
        )
    if min(image.shape[:2]) < 1:
        raise GeofloodsamError(f"image is empty (shape {image.shape}).")
    return image


@dataclass
class SamModel:
    """A loaded SAM with a batched ``encode`` and a prompt-batched ``decode``."""

    sam: torch.nn.Module
    name: str
    device: torch.device
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    decoder_name: str = "pretrained"
    decoder_sha256: str | None = None
    decoder_meta: dict[str, Any] = field(default_factory=dict)
    #: hash of the adapters merged into the image encoder (None: the base encoder); signs
    #: cached embeddings and OpenVINO graphs (:mod:`geofloodsam.model.decoders`)
    encoder_sha256: str | None = None
    batch_size: int = 1
    #: how the image encoder runs (``--precision`` / ``--runtime`` resolved for this machine)
    encoder_plan: EncoderPlan = field(
        default_factory=lambda: EncoderPlan("fp32", "torch", "the reference path")
    )
    _openvino: Any = field(default=None, repr=False)
    _openvino_encoders: dict = field(default_factory=dict, repr=False)
    _dense_pe: tuple | None = field(default=None, repr=False)

    @property
    def precision(self) -> str:
        """The image encoder's precision: ``fp32``, ``bf16`` or ``fp16`` (CUDA)."""
        return self.encoder_plan.precision

    @property
    def runtime(self) -> str:
        """The image encoder's runtime: ``torch`` or ``openvino``."""
        return self.encoder_plan.runtime

    @property
    def encoder_signature(self) -> str:
        """``runtime-precision`` of the encoder, part of every cached embedding's signature."""
        return self.encoder_plan.signature

    @property
    def image_size(self) -> int:
        """Side of the square model input (1024 for every SAM)."""
        return int(self.sam.image_encoder.img_size)

    def info(self) -> dict[str, Any]:
        """What produced a result: model, checkpoint hash, decoder and its hash."""
        return {
            "model": self.name,
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha256,
            "decoder": self.decoder_name,
            "decoder_sha256": self.decoder_sha256,
            "encoder_sha256": self.encoder_sha256,
            "device": str(self.device),
            "precision": self.precision,
            "runtime": self.runtime,
        }

    # ------------------------------------------------------------------ encoding
    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """Resize longest side to ``image_size``, normalise, pad: (3, S, S) tensor, resized size."""
        image = check_rgb(image)
        size = transforms.resized_size(image.shape[:2], self.image_size)
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        x = x.permute(2, 0, 1)[None].float()
        if size != image.shape[:2]:
            x = F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)
            x = x.round().clamp(0, 255)
        mean = torch.tensor(PIXEL_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(PIXEL_STD, device=self.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        x = F.pad(x, (0, self.image_size - size[1], 0, self.image_size - size[0]))
        return x[0], size

    @torch.inference_mode()
    def encode_batch(self, images: Sequence[np.ndarray]) -> list[Embedding]:
        """Encode many images (any sizes), ``batch_size`` at a time."""
        out: list[Embedding] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            prepped = [self.preprocess(img) for img in chunk]
            x = torch.stack([p[0] for p in prepped])
            feats = self.run_encoder(x)
            for img, (_, size), f in zip(chunk, prepped, feats, strict=True):
                out.append(Embedding(f, tuple(img.shape[:2]), size))
        return out

    def run_encoder(self, x: torch.Tensor) -> torch.Tensor:
        """The image encoder on a preprocessed batch ``(B, 3, S, S)``: float32 ``(B, C, 64, 64)``
        on the model's device, by the :attr:`encoder_plan` (torch with or without autocast,
        or OpenVINO)."""
        if self.runtime == "openvino":
            if self._openvino_encoders.get(self.encoder_sha256) is None:
                self._openvino = _openvino_encoder(self)
            return self._openvino_encoders[self.encoder_sha256](x).to(self.device)
        with torch.inference_mode(), autocast(self.device, self.precision):
            return self.sam.image_encoder(x).float()

    def encode(self, image: np.ndarray) -> Embedding:
        """Encode one HxWx3 uint8 RGB image."""
        return self.encode_batch([image])[0]

    # ------------------------------------------------------------------ decoding
    def prompt_tensors(
        self,
        original_size: tuple[int, int],
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | None]:
        """Pixel-space prompts -> model-frame tensors, batched over N objects.

        ``points`` is (N, K, 2) (or (K, 2) for one object) x/y pixels, ``point_labels``
        (N, K) with 1 = foreground, 0 = background, -1 = padding. ``boxes`` is (N, 4)
        x0, y0, x1, y1. ``mask_input`` is (N, 1, 256, 256) low-resolution logits.
        """
        if points is None and boxes is None and mask_input is None:
            raise GeofloodsamError("decode needs at least one prompt: points, boxes or mask_input.")
        out: dict[str, torch.Tensor | None] = {"points": None, "labels": None, "boxes": None}
        n = None
        if points is not None:
            pts = np.asarray(points, dtype=np.float64)
            if pts.ndim == 2:
                pts = pts[None]
            if point_labels is None:
                labels = np.ones(pts.shape[:2])
            else:
                labels = np.asarray(point_labels).reshape(pts.shape[:2])
            if pts.ndim != 3 or pts.shape[2] != 2:
                raise GeofloodsamError(f"points must be (N, K, 2) x/y pixels, got {pts.shape}.")
            pts = transforms.pixel_to_model(pts, original_size, self.image_size)
            out["points"] = torch.as_tensor(pts, dtype=torch.float32, device=self.device)
            out["labels"] = torch.as_tensor(labels, dtype=torch.int64, device=self.device)
            n = pts.shape[0]
        if boxes is not None:
            bx = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            if n is not None and bx.shape[0] != n:
                raise GeofloodsamError(
                    f"{n} point groups but {bx.shape[0]} boxes: give one box per object."
                )
            bx = transforms.boxes_pixel_to_model(bx, original_size, self.image_size)
            out["boxes"] = torch.as_tensor(bx, dtype=torch.float32, device=self.device)
        if mask_input is not None:
            out["mask_input"] = torch.as_tensor(mask_input, dtype=torch.float32, device=self.device)
        else:
            out["mask_input"] = None
        return out

    def decode_lowres(
        self,
        features: torch.Tensor,
        prompts: dict[str, torch.Tensor | None],
        multimask: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run prompt encoder + mask decoder for N prompts on one image embedding.

        Differentiable (used by fine-tuning). ``features`` is (C, 64, 64) or (1, C, 64, 64).
        Returns low-resolution logits (N, M, 256, 256) and predicted IoU (N, M).
        """
        if features.dim() == 3:
            features = features[None]
        pts = prompts.get("points")
        point_arg = None if pts is None else (pts, prompts["labels"])
        sparse, dense = self.sam.prompt_encoder(
            points=point_arg, boxes=prompts.get("boxes"), masks=prompts.get("mask_input")
        )
        if prompts.get("mask_input") is None:  # the no-mask embedding, once: not N copies
            dense = dense[:1]
        return predict_masks(
            self.sam.mask_decoder, features, self.dense_pe(), sparse, dense, multimask
        )

    def dense_pe(self) -> torch.Tensor:
        """The prompt encoder's dense positional encoding (1, C, 64, 64), computed once.

        Recomputed only when the prompt encoder's Gaussian matrix changes (another tensor,
        device or in-place version), so it never goes stale.
        """
        gauss = self.sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
        key = (id(gauss), gauss.device, gauss._version)
        if self._dense_pe is None or self._dense_pe[0] != key:
            with torch.no_grad():
                pe = self.sam.prompt_encoder.get_dense_pe()
            self._dense_pe = (key, pe)
        return self._dense_pe[1]

    def upscale(self, low_res: torch.Tensor, embedding: Embedding) -> torch.Tensor:
        """Low-resolution logits (N, M, 256, 256) -> logits at the image's original size.

        Only the part of the model frame the image fills is interpolated: the low-resolution
        rows and columns it needs (plus one) go up by the same factor, which samples exactly
        the pixels the full ``image_size`` interpolation would, then the padding is cut.
        """
        h, w = embedding.input_size
        side = low_res.shape[-1]
        factor = self.image_size // side
        if factor * side == self.image_size and low_res.shape[-2] == side:
            rows, cols = min(side, -(-h // factor) + 1), min(side, -(-w // factor) + 1)
            x = F.interpolate(
                low_res[..., :rows, :cols], (rows * factor, cols * factor), mode="bilinear",
                align_corners=False,
            )
        else:
            x = F.interpolate(
                low_res, (self.image_size, self.image_size), mode="bilinear",
                align_corners=False,
            )
        x = x[..., :h, :w]
        if (h, w) == tuple(embedding.original_size):  # no resize: interpolating is the identity
            return x
        return F.interpolate(x, embedding.original_size, mode="bilinear", align_corners=False)

    @torch.inference_mode()
    def decode(
        self,
        embedding: Embedding,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = False,
    ) -> Prediction:
        """Decode N prompts on one embedding; logits come back at the image's resolution.

        Shapes and the returned :class:`Prediction`: see :meth:`PromptableModel.decode`.
        """
        embedding = embedding.for_encoder(self.encoder_sha256)
        prompts = self.prompt_tensors(
            embedding.original_size, points, point_labels, boxes, mask_input
        )
        # torch on every runtime (OpenVINO runs the encoder only: see openvino_runtime)
        with autocast(self.device, "fp32" if self.precision == "fp32" else "auto"):
            low_res, iou = self.decode_lowres(
                embedding.features.to(self.device), prompts, multimask
            )
        low_res = low_res.float().cpu().numpy()

        @torch.inference_mode()
        def upscale(masks: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(np.ascontiguousarray(masks)).to(self.device)
            return self.upscale(x, embedding).cpu().numpy()

        return Prediction(None, iou.float().cpu().numpy(), low_res, upscale)


# ---------------------------------------------------------------------- building
def _build_architecture(name: str) -> torch.nn.Module:
    mod = modeling()
    if name in ("vit_b", "vit_l", "vit_h"):
        return build_sam().sam_model_registry[name](checkpoint=None)
    from geofloodsam.model.tinyvit import TinyViT

    if name == "vit_t":
        dim, encoder = 256, TinyViT()
        decoder_depth, mlp_dim, heads = 2, 2048, 8
    elif name == TINY:
        dim = 32
        encoder = TinyViT(
            embed_dims=(8, 16, 16, 32),
            depths=(1, 1, 1, 1),
            num_heads=(1, 1, 1, 1),
            window_sizes=(7, 7, 7, 7),
            out_chans=dim,
        )
        decoder_depth, mlp_dim, heads = 1, 64, 2
    else:
        raise GeofloodsamError(
            f"unknown model {name!r}: use one of {', '.join(MODEL_NAMES)} (or 'tiny' for tests)."
        )
    return mod.Sam(
        image_encoder=encoder,
        prompt_encoder=mod.PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(64, 64),
            input_image_size=(1024, 1024),
            mask_in_chans=16,
        ),
        mask_decoder=mod.MaskDecoder(
            num_multimask_outputs=3,
            transformer=mod.TwoWayTransformer(
                depth=decoder_depth, embedding_dim=dim, mlp_dim=mlp_dim, num_heads=heads
            ),
            transformer_dim=dim,
            iou_head_depth=3,
            iou_head_hidden_dim=min(256, dim * 8),
        ),
        pixel_mean=list(PIXEL_MEAN),
        pixel_std=list(PIXEL_STD),
    )


#: the layers whose ``reset_parameters`` draws random weights when they are built
_RANDOM_INIT = (
    torch.nn.Linear, torch.nn.modules.conv._ConvNd, torch.nn.LayerNorm, torch.nn.Embedding,
    torch.nn.modules.batchnorm._NormBase,
)


#: held while a model is built: no layer built meanwhile in another thread (a random
#: ``tiny`` model) may miss its initialisation
_BUILDING = threading.Lock()


@contextlib.contextmanager
def _skip_random_init() -> Iterator[None]:
    """Build layers without drawing their random weights: a checkpoint replaces them all.

    Only for architectures whose every parameter is then loaded with ``strict=True``
    (:func:`_load_state` checks that); the parameters hold uninitialised memory until then.
    """
    saved = {cls: cls.__dict__["reset_parameters"] for cls in _RANDOM_INIT}
    _BUILDING.acquire()
    try:
        for cls in _RANDOM_INIT:
            cls.reset_parameters = lambda self: None
        yield
    finally:
        for cls, method in saved.items():
            cls.reset_parameters = method
        _BUILDING.release()


def _load_state(sam: torch.nn.Module, path: Path, name: str) -> None:
    """Load a checkpoint into ``sam``: every parameter and buffer, or a one-line error.

    The file is memory-mapped and its tensors become the parameters where dtype and shape
    agree (no copy); otherwise they are copied in.
    """
    state = load_torch_file(
        path, "checkpoint",
        f"the file is truncated or corrupt; delete it and run `geofloodsam weights fetch {name}`.",
        mmap=True,
    )
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    assign = isinstance(state, dict) and all(
        isinstance(state.get(k), torch.Tensor) and state[k].dtype == v.dtype
        and state[k].shape == v.shape
        for k, v in sam.state_dict().items()
    )
    try:
        sam.load_state_dict(state, strict=True, assign=assign)
    except (RuntimeError, TypeError, AttributeError) as exc:
        first = str(exc).splitlines()[0][:160]
        raise GeofloodsamError(
            f"checkpoint {path} does not fit model {name} ({first}): pass the checkpoint of "
            f"that model, or the right --model for this file."
        ) from None


def load_model(
    name: str = "vit_t",
    checkpoint: str | Path | None = None,
    decoder: str | Path | None = "pretrained",
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    seed: int = 0,
    precision: str = "auto",
    runtime: str = "auto",
) -> SamModel:
    """Load a SAM model ready for inference.

    The defaults are the commands' (``segment``, ``evaluate``, ...): ``auto`` precision and
    runtime, the path :class:`~geofloodsam.model.spec.ModelSpec` loads too. For the
    reference numbers (as the tests compare), pass ``precision="fp32", runtime="torch"``.

    Args:
        name: ``vit_t`` (MobileSAM), ``vit_b``, ``vit_l``, ``vit_h``, or ``tiny`` (random,
            for tests).
        checkpoint: a checkpoint file; default: the registry's file for ``name``, from
            ``GEOFLOODSAM_WEIGHTS_DIR`` or the cache, fetched and verified if missing.
        decoder: ``pretrained``, ``flood`` (the shipped flood-tuned decoder) or a decoder
            checkpoint written by ``geofloodsam finetune``.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        batch_size: tiles per encoder call (default: 8 on CUDA, 1 on CPU).
        seed: initialisation seed for the random ``tiny`` model.
        precision: the image encoder's ``auto`` (default: follows the hardware, fp32 on
            every CPU, see :func:`geofloodsam.model.precision.resolve_encoder`), ``fp32``
            (the reference) or ``bf16``.
        runtime: the image encoder's ``auto`` (default: OpenVINO on the CPU when
            installed, else torch), ``torch`` (the reference) or ``openvino`` (the
            optional extra).
    """
    dev = resolve_device(device)
    plan = resolve_encoder(precision, runtime, dev.type)
    early = found = None  # early: the OpenVINO encoder, compiling while torch builds the model
    if name == TINY:
        with _BUILDING, torch.random.fork_rng():
            torch.manual_seed(seed)
            sam = _build_architecture(name)
        path, sha = None, f"tiny-seed-{seed}"
    else:
        if name not in MODEL_NAMES:
            _build_architecture(name)  # raises the one-line unknown-model error
        from geofloodsam.weights.checkpoints import resolve_checkpoint

        path, sha = resolve_checkpoint(name, checkpoint)
        decoder, found = read_model_file(decoder or "pretrained", name)
        if plan.runtime == "openvino":
            early = _early_openvino_encoder(name, sha, plan, adapted_sha256(found))
        with _skip_random_init():
            sam = _build_architecture(name)
        _load_state(sam, Path(path), name)
    sam.eval().to(dev)
    for p in sam.parameters():
        p.requires_grad_(False)
    model = SamModel(
        sam=sam,
        name=name,
        device=dev,
        checkpoint=None if path is None else str(path),
        checkpoint_sha256=sha,
        batch_size=batch_size or default_batch_size(dev),
        encoder_plan=plan,
    )
    model = apply_decoder(model, decoder or "pretrained", found)
    if plan.runtime == "openvino":  # convert (or read the cached IR) and compile now
        if early is not None:  # the graph of this very encoder (adapters included)
            early.use_module(model.sam.image_encoder)
            model._openvino_encoders[model.encoder_sha256] = early
        model._openvino = early or _openvino_encoder(model)
        model._openvino.prepare()
    return model


def _openvino_key(checkpoint_sha256: str | None, encoder_sha256: str | None) -> str:
    """What an OpenVINO encoder graph is keyed by: the checkpoint and the merged adapters."""
    key = str(checkpoint_sha256)
    return key if encoder_sha256 is None else f"{key}+adapted-{encoder_sha256}"


def _early_openvino_encoder(name: str, sha: str, plan: EncoderPlan, adapted: str | None):
    """MobileSAM's OpenVINO encoder (adapters ``adapted`` merged), compiling its cached IR in
    a background thread while torch builds the model (``None`` for other models or when the
    IR must be converted first, which needs the torch module)."""
    if name != "vit_t":
        return None
    from geofloodsam.model import tinyvit
    from geofloodsam.model.openvino_runtime import OpenVinoEncoder

    encoder = OpenVinoEncoder(
        lambda: None, 1024, plan.precision, name, _openvino_key(sha, adapted), source=tinyvit
    )
    if not encoder.cached:
        return None
    encoder.prepare_in_background()
    return encoder


def _openvino_encoder(model: SamModel):
    """The OpenVINO encoder of ``model``'s current image encoder (its IR cached by checkpoint
    hash, plus the hash of merged adapters), kept per encoder in ``_openvino_encoders``."""
    from geofloodsam.model.openvino_runtime import OpenVinoEncoder

    sha = _openvino_key(model.checkpoint_sha256, model.encoder_sha256)
    encoder = OpenVinoEncoder(
        model.sam.image_encoder, model.image_size, model.precision, model.name, sha
    )
    model._openvino_encoders[model.encoder_sha256] = encoder
    return encoder
