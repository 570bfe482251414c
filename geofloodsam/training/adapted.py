"""Training the image encoder too: LoRA adapters (``--train adapter``) or all of it (``full``).

The encoder runs in every step, so it cannot be cached as in decoder-only training. To keep
that affordable on a CPU it sees **crops at the inference pixel scale**: each image is
resized as SAM resizes it (longest side 1024, :func:`sam_resized`), and a random
``crop``-pixel window of that frame (default 512, offsets on the 16-pixel token grid) goes
through the encoder, a quarter of the full frame's cost. The mask decoder then works on the
window's tokens with the positional encoding of their place in the full frame, and prompts
are given in full-frame coordinates: the decoder sees what it sees at inference, on a part of
the image. Prompts are drawn from the truth inside the window (the whole-image box stays the
whole image: ``segment``'s promptless prompt), targets are the window's low-resolution truth.

The encoder stays in eval mode (its BatchNorm statistics are frozen); with ``adapter`` only
the LoRA matrices (:mod:`geofloodsam.model.lora`) and the mask decoder learn. Validation
encodes the ``val`` images at full resolution with the current encoder after each epoch and
scores them as decoder-only training does.

Resuming is exact within an epoch too: a Ctrl-C (``KeyboardInterrupt``, or ``SystemExit``
from a signal handler) between or during steps saves the state of the last finished step
(weights, optimiser, the epoch's order and random generator) to ``<out>.resume.pt`` before
it propagates.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geofloodsam.datasets.reading import Sample
from geofloodsam.errors import GeofloodsamError
from geofloodsam.geo import transforms
from geofloodsam.model.decoders import DecoderFile, apply_encoder, encoder_sha256
from geofloodsam.model.embedding_cache import apply_variant, atomic_torch_save
from geofloodsam.model.fast_decoder import predict_masks
from geofloodsam.model.lora import (
    adapter_state,
    add_adapters,
    check_adaptable,
    load_adapter_state,
)
from geofloodsam.model.sam import Embedding, SamModel
from geofloodsam.training.config import MODE_KINDS, FinetuneConfig
from geofloodsam.training.finetune import (
    _bar,
    _clone_state,
    _Trainer,
    _ValItem,
    prompt_loss,
)
from geofloodsam.training.prompt_sampling import (
    LOWRES,
    LowResTruth,
    lowres_truth,
    sample_prompts,
)

TOKEN = 16  # pixels of the model frame per encoder token


@dataclass
class CropItem:
    """One training image: SAM-resized pixels (variant ``none``) and truths per variant."""

    sample_id: str
    resized: np.ndarray  # (h', w', 3) uint8, longest side = image_size
    truths: dict[str, LowResTruth]


@dataclass
class _Crop:
    pixels: torch.Tensor  # (3, c, c) normalised
    window: tuple[int, int]  # top-left token (row, col) in the full frame
    prompts: dict[str, torch.Tensor | None]
    batch: Any  # PromptBatch with window targets
    truth: Any  # water / valid of the window (what prompt_loss reads)


# ---------------------------------------------------------------------------- data
def sam_resized(image: np.ndarray, image_size: int) -> np.ndarray:
    """``image`` resized as :meth:`SamModel.preprocess` resizes it, as uint8; preprocessing
    the result gives exactly the tensor of the original (preprocess rounds to integers)."""
    size = transforms.resized_size(image.shape[:2], image_size)
    if size == tuple(image.shape[:2]):
        return image
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255)[0].permute(1, 2, 0).to(torch.uint8).numpy()


def prepare_crop_train(
    samples: list[Sample], model: SamModel, variants: tuple[str, ...]
) -> list[CropItem]:
    """Resized images and per-variant truths of the train split (images without valid pixels
    left out; one-line errors when nothing is left)."""
    items = []
    for s in samples:
        water, valid = s.load_truth()
        if not valid.any():
            continue
        truths = {  # no evaluation prompts: window_truth drops them
            v: lowres_truth(apply_variant(water, v), apply_variant(valid, v), model.image_size,
                            eval_prompts=False)
            for v in variants
        }
        items.append(CropItem(s.id, sam_resized(s.load_image(), model.image_size), truths))
    if not items:
        raise GeofloodsamError(
            "the train split has no valid mask pixels (every mask is nodata): check the masks."
        )
    if not any(i.truths[variants[0]].has_water for i in items):
        raise GeofloodsamError(
            "the train split's masks contain no water: give masks where water is > 127 "
            "(photos) or 1 (label rasters)."
        )
    return items


def prepare_crop_val(
    samples: list[Sample], model: SamModel
) -> tuple[list[_ValItem], list[np.ndarray]]:
    """Val items (embeddings filled in each epoch) and their resized images."""
    items, images = [], []
    for s in samples:
        water, valid = s.load_truth()
        if not valid.any():
            continue
        truth = lowres_truth(water, valid, model.image_size)
        empty = Embedding(torch.empty(0), truth.original_size, truth.input_size)
        items.append(_ValItem(s.id, empty, truth, water, valid))
        images.append(sam_resized(s.load_image(), model.image_size))
    if not items:
        raise GeofloodsamError("the val split has no valid mask pixels: check its masks.")
    return items, images


def window_truth(truth: LowResTruth, top: int, left: int, side: int) -> LowResTruth:
    """``truth`` with everything outside a window (model-frame pixels) made invalid and dry,
    so that prompts are drawn inside it; coordinates stay those of the whole image."""
    cell = truth.image_size // LOWRES
    inside = np.zeros_like(truth.valid)
    inside[top // cell : (top + side) // cell, left // cell : (left + side) // cell] = True
    return LowResTruth(
        water=np.where(inside, truth.water, 0.0).astype(np.float32),
        valid=truth.valid & inside,
        original_size=truth.original_size,
        input_size=truth.input_size,
        eval_box=None,
        eval_point=None,
        image_size=truth.image_size,
    )


def cut_window(array: np.ndarray, top: int, left: int, side: int, fill: float) -> np.ndarray:
    """``array[..., top:top+side, left:left+side]`` padded with ``fill`` to ``side`` x ``side``."""
    out = np.full((*array.shape[:-2], side, side), fill, dtype=array.dtype)
    part = array[..., top : top + side, left : left + side]
    out[..., : part.shape[-2], : part.shape[-1]] = part
    return out


def decode_window(
    model: SamModel,
    features: torch.Tensor,
    prompts: dict[str, torch.Tensor | None],
    window: tuple[int, int],
    multimask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask decoder on the tokens of a window (``features`` (1, C, h, w), top-left token
    ``window``), with their full-frame positional encoding: (N, M, 4h, 4w) logits, IoU."""
    pts = prompts.get("points")
    sparse, dense = model.sam.prompt_encoder(
        points=None if pts is None else (pts, prompts["labels"]), boxes=prompts.get("boxes"),
        masks=None,
    )
    (r, c), (h, w) = window, features.shape[-2:]
    dense = dense[:1, :, r : r + h, c : c + w]
    pe = model.dense_pe()[..., r : r + h, c : c + w]
    return predict_masks(model.sam.mask_decoder, features, pe, sparse, dense, multimask)


# ---------------------------------------------------------------------------- the encoder
def trainable_encoder(
    model: SamModel, cfg: FinetuneConfig, init: DecoderFile | None
) -> torch.nn.Module:
    """A copy of ``model``'s image encoder with LoRA layers (``adapter``) or all weights
    trainable (``full``), started from ``init``'s encoder when given."""
    check_adaptable(model.sam.image_encoder, model.name)
    encoder = copy.deepcopy(model.sam.image_encoder).float().eval()
    encoder.requires_grad_(cfg.train == "full")
    lora_init = init is not None and init.encoder_kind == "lora" and cfg.train == "adapter"
    if init is not None and init.encoder_kind is not None and not lora_init:
        apply_encoder(encoder, init, cfg.init_decoder)  # merged: training goes on from there
    if cfg.train == "adapter":
        add_adapters(encoder, cfg.rank, cfg.adapt, seed=cfg.seed)
        if lora_init:
            load_adapter_state(encoder, init.encoder_state or {})
    return encoder


def encoder_payload(encoder: torch.nn.Module, train: str) -> dict[str, Any]:
    """What the output file stores of the encoder: the adapters, or the whole encoder."""
    if train == "adapter":
        return {"kind": "lora", "state": adapter_state(encoder)}
    return {"kind": "full", "state": _clone_state(encoder)}


def payload_sha256(payload: dict[str, Any], rank: int | None) -> str:
    """The hash the loaded file will carry (:func:`geofloodsam.model.decoders.encoder_sha256`)."""
    kind = payload["kind"]
    return encoder_sha256(kind, payload["state"], rank if kind == "lora" else None)


# ---------------------------------------------------------------------------- training
class EncoderTrainer(_Trainer):
    """:class:`~geofloodsam.training.finetune._Trainer` with the image encoder in the loop."""

    def __init__(
        self, cfg: FinetuneConfig, model: SamModel, train: list[CropItem],
        val: list[_ValItem], val_images: list[np.ndarray], start: torch.nn.Module,
        init: DecoderFile | None, resume_path: Path,
    ) -> None:
        self.encoder = trainable_encoder(model, cfg, init).to(model.device)
        super().__init__(cfg, model, train, val, start)
        self.val_images = val_images
        self.resume_path = resume_path
        self.best_encoder = encoder_payload(self.encoder, cfg.train)
        self.partial: dict[str, Any] | None = None  # an interrupted epoch's progress
        #: called after each finished step with (epoch, step); tests interrupt through it
        self.on_step = None

    def param_groups(self) -> list[dict[str, Any]]:
        lr = self.cfg.encoder_lr or self.cfg.lr
        trainable = [p for p in self.encoder.parameters() if p.requires_grad]
        return [*super().param_groups(), {"params": trainable, "lr": lr}]

    def keep_best(self) -> None:
        super().keep_best()
        self.best_encoder = encoder_payload(self.encoder, self.cfg.train)

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "encoder": _clone_state(self.encoder),
            "best_encoder": self.best_encoder,
            "partial": self.partial,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.encoder.load_state_dict(state["encoder"])
        self.best_encoder = state["best_encoder"]
        self.partial = state.get("partial")

    # ------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int) -> tuple[float, float]:
        cfg = self.cfg
        partial, self.partial = self.partial, None
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(len(self.train))
        step, losses, ious = 0, [], []
        if partial is not None and partial["epoch"] == epoch:
            rng.bit_generator.state = partial["rng"]
            order = np.asarray(partial["order"])
            step, losses, ious = partial["step"], list(partial["losses"]), list(partial["ious"])
        self.decoder.train()
        self.encoder.eval()  # BatchNorm statistics stay those of the base model
        bar = _bar(self.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
        bar.update(step)
        while step * cfg.batch_size < len(order):
            snapshot = rng.bit_generator.state
            try:
                loss, iou = self._step(order[step * cfg.batch_size : (step + 1) * cfg.batch_size],
                                       epoch, rng)
            except (KeyboardInterrupt, SystemExit):
                self._save_partial(epoch, step, snapshot, order, losses, ious)
                raise
            losses.append(loss)
            ious.append(iou)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", iou=f"{np.mean(ious):.3f}")
            if self.on_step is not None:
                try:
                    self.on_step(epoch, step)
                except (KeyboardInterrupt, SystemExit):
                    self._save_partial(epoch, step, rng.bit_generator.state, order, losses, ious)
                    raise
        bar.close()
        return float(np.mean(losses)), float(np.mean(ious))

    def _save_partial(self, epoch, step, rng_state, order, losses, ious) -> None:
        """Save the state after ``step`` finished steps of ``epoch`` (for ``--resume``)."""
        self.partial = {
            "epoch": epoch, "step": step, "rng": rng_state, "order": order.tolist(),
            "losses": list(losses), "ious": list(ious),
        }
        atomic_torch_save(self.state(), self.resume_path)

    def _step(self, batch_idx: np.ndarray, epoch: int, rng: np.random.Generator):
        cfg = self.cfg
        self.optimizer.zero_grad(set_to_none=True)
        kinds = MODE_KINDS[cfg.prompt]
        crops = [self._crop(int(i), epoch, rng, kinds) for i in batch_idx]
        x = torch.stack([c.pixels for c in crops]).to(self.model.device)
        t = time.perf_counter()
        with self._autocast():
            feats = self.encoder(x)
        total = torch.zeros((), device=self.model.device)
        chosen = []
        for crop, f in zip(crops, feats, strict=True):
            low_res, iou_pred = decode_window(
                self.model, f[None].float(), crop.prompts, crop.window, crop.batch.multimask
            )
            loss, chosen_iou = prompt_loss(low_res, iou_pred, crop.batch, crop.truth, cfg)
            total = total + loss / len(crops)
            chosen.append(chosen_iou)
        total.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.timings["encoder_steps_s"] = self.timings.get("encoder_steps_s", 0.0) + (
            time.perf_counter() - t
        )
        return float(total.detach()), float(torch.cat(chosen).mean())

    def _crop(self, i: int, epoch: int, rng: np.random.Generator, kinds) -> _Crop:
        cfg, item = self.cfg, self.train[i]
        variant = self.variants[int(rng.integers(len(self.variants)))]
        kind = kinds[(epoch + int(self.kind_offsets[i])) % len(kinds)]
        image = apply_variant(item.resized, variant)
        truth = item.truths[variant]
        side = cfg.crop
        top, left = (
            TOKEN * int(rng.integers(0, max(0, -(-n // TOKEN) * TOKEN - side) // TOKEN + 1))
            for n in image.shape[:2]
        )
        batch = sample_prompts(window_truth(truth, top, left, side), kind,
                               cfg.prompts_per_image, rng)
        cell = truth.image_size // LOWRES
        r, c, n = top // cell, left // cell, side // cell
        batch = replace(batch, targets=cut_window(batch.targets, r, c, n, 0.0))
        valid = cut_window(truth.valid, r, c, n, False)
        pixels = self.model.preprocess(image)[0][:, top : top + side, left : left + side]
        prompts = self.model.prompt_tensors(
            truth.original_size, batch.points, batch.labels, batch.boxes
        )
        # prompt_loss reads the window's size from ``water`` and its valid cells from ``valid``
        window = SimpleNamespace(water=valid, valid=valid)
        return _Crop(pixels.cpu(), (top // TOKEN, left // TOKEN), prompts, batch, window)

    def _autocast(self):
        from geofloodsam.model.device import autocast

        bf16 = self.model.precision == "bf16"
        return autocast(self.model.device, "bf16" if bf16 else "fp32")

    # ------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Encode the val images with the current encoder (full frame), then score."""
        self.encoder.eval()
        for item, image in zip(self.val, self.val_images, strict=True):
            x, _ = self.model.preprocess(image)
            with self._autocast():
                feats = self.encoder(x[None])[0].float()
            item.embedding = Embedding(
                feats, item.embedding.original_size, item.embedding.input_size
            )
        return super().validate()
