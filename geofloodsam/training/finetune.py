"""Fine-tune SAM's mask decoder on image/mask data (the encoders stay frozen).

Pipeline: open the ``train`` and ``val`` splits (:mod:`geofloodsam.datasets.reading`), encode every
image (and augmented variant) once through the on-disk :class:`PersistentEmbeddingCache`, bring the
truth into the decoder's 256x256 low-resolution frame, then train the decoder on prompts
sampled from the truth every step (:mod:`geofloodsam.training.prompt_sampling`), several
per image on one embedding. Loss: Dice + BCE on the low-resolution mask logits (nodata excluded; the
best of the 3 masks for single points) plus MSE on the IoU head. AdamW with warm-up and
cosine decay. After each epoch the decoder is scored on ``val`` at full resolution with the
default evaluation prompts (box of all water, deepest point of the largest water body) and
the whole-image box; the best epoch is kept, training stops early when it stops improving.
The ``test`` split is never read.

Everything random is drawn from generators seeded by ``(seed, epoch)``, so a run is
deterministic, and ``resume=True`` continues an interrupted run exactly from the state saved
after each epoch in ``<out>.resume.pt``.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geofloodsam.datasets.reading import Sample, open_dataset
from geofloodsam.errors import GeofloodsamError, check_interrupted
from geofloodsam.evaluation import metrics
from geofloodsam.files.atomic import atomic_open, atomic_write, check_targets
from geofloodsam.files.space import reporting_full_disk
from geofloodsam.files.workdirs import check_output_dir
from geofloodsam.model.decoders import (
    DecoderFile,
    DecoderSpec,
    load_decoders,
    read_checkpoint,
    save_decoder,
)
from geofloodsam.model.embedding_cache import (
    PersistentEmbeddingCache,
    apply_variant,
    atomic_torch_save,
)
from geofloodsam.model.sam import Embedding, SamModel, load_model
from geofloodsam.model.torch_files import load_torch_file
from geofloodsam.model.variants import AUGMENT_VARIANTS
from geofloodsam.training.config import MODE_KINDS, VAL_PROMPTS, FinetuneConfig
from geofloodsam.training.prompt_sampling import (
    LowResTruth,
    PromptBatch,
    lowres_truth,
    sample_prompts,
)
from geofloodsam.vector.prompts import NO_PROMPT, whole_image_box

#: which validation IoUs the selection score averages, per prompt mode
SELECT_ON = {"point": ("point",), "box": ("box", NO_PROMPT), "mixed": VAL_PROMPTS}
RESUME_SUFFIX = ".resume.pt"
#: config keys that may differ between an interrupted run and its resumption
RESUME_FREE = ("device", "cache_dir", "progress")


@dataclass
class FinetuneResult:
    """What a run produced."""

    out: Path
    best_epoch: int
    epochs_run: int
    val: dict[str, float]
    curves: list[dict[str, float]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class _Item:
    """One training image: its embeddings and low-resolution truths per variant."""

    sample_id: str
    embeddings: dict[str, Embedding]
    truths: dict[str, LowResTruth]


@dataclass
class _ValItem:
    sample_id: str
    embedding: Embedding
    truth: LowResTruth
    water: np.ndarray
    valid: np.ndarray


# ---------------------------------------------------------------------------- entry point
def finetune(
    data: str | Path,
    out: str | Path,
    *,
    resume: bool = False,
    sam_model: SamModel | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    command: str | None = None,
    **options: Any,
) -> FinetuneResult:
    """Fine-tune the mask decoder on ``data`` and write the best decoder to ``out``.

    With ``train="adapter"`` (or ``"full"``) the image encoder is trained too
    (:mod:`geofloodsam.training.adapted`) and ``out`` is an adapted-model file.

    Args:
        data: a data set folder (see :func:`geofloodsam.datasets.reading.open_dataset`).
        out: the decoder checkpoint to write (``curves.csv`` / ``curves.png`` go beside it).
        resume: continue the interrupted run whose state is in ``<out>.resume.pt``.
        sam_model: an already loaded model (its decoder is left untouched); default: load
            ``options["model"]`` with ``options["checkpoint"]``.
        on_epoch_end: called with (epoch, curve row) after each epoch's state is saved.
        command: the command line that started the run, stored in the file's ``meta``.
        **options: the fields of :class:`FinetuneConfig`.
    """
    if sam_model is not None:  # the loaded model defines the base model
        options = {**options, "model": sam_model.name}
    cfg = FinetuneConfig(data=str(data), **options)
    cfg.check()
    out = Path(out)
    if out.is_dir():
        raise GeofloodsamError(f"--out {out} is a folder: give a file name, e.g. {out}/decoder.pt.")
    check_output_dir(out.parent)  # before any training: a bad --out is found first
    if out.parent.is_dir():
        check_targets([out, out.parent / "curves.csv", out.parent / "curves.png"])
    resume_path = out.with_name(out.name + RESUME_SUFFIX)
    state = _read_resume(resume_path, cfg) if resume else None
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    train_samples = open_dataset(cfg.data, "train", cfg.bands, cfg.stretch, cfg.seed,
                                 sensor=cfg.sensor)
    val_samples = open_dataset(cfg.data, "val", cfg.bands, cfg.stretch, cfg.seed,
                               sensor=cfg.sensor)
    encoder_training = cfg.train != "decoder"
    model = sam_model or load_model(
        cfg.model, cfg.checkpoint, "pretrained", cfg.device, precision=cfg.precision,
        # the trained encoder runs in torch; OpenVINO would run the frozen base encoder
        runtime="torch" if encoder_training else cfg.runtime,
    )
    if state is not None:
        _check_base(state, model, resume_path)
    start, start_sha, init = model.sam.mask_decoder, None, None
    if cfg.init_decoder != "pretrained":  # one-line errors for unknown or incompatible files
        (first,) = load_decoders(model, [cfg.init_decoder])
        start, start_sha = first.module, first.sha256
        init = _init_file(cfg, model)
    if encoder_training:
        from geofloodsam.training import adapted

        variants = AUGMENT_VARIANTS[cfg.augment]
        train = adapted.prepare_crop_train(train_samples, model, variants)
        val, val_images = adapted.prepare_crop_val(val_samples, model)
        timings["loading_s"] = time.perf_counter() - t0
        trainer: _Trainer = adapted.EncoderTrainer(
            cfg, model, train, val, val_images, start, init, resume_path
        )
    else:
        cache = PersistentEmbeddingCache(cfg.cache_dir, model)
        train = _prepare_train(train_samples, cache, AUGMENT_VARIANTS[cfg.augment], cfg.progress)
        val = _prepare_val(val_samples, cache, cfg.progress)
        timings["embedding_s"] = time.perf_counter() - t0
        trainer = _Trainer(cfg, model, train, val, start)
    if state is not None:
        trainer.load_state(state)
    with reporting_full_disk({out.parent: None}, "decoder, curves and resume state"):
        with _swapped_decoder(model, trainer.decoder):
            trainer.run(resume_path, on_epoch_end)
        timings.update(trainer.timings)
        meta = _meta(cfg, model, trainer, len(train), len(val), timings)
        meta["init_decoder_sha256"] = start_sha
        meta["command"] = command
        encoder = None
        if encoder_training:
            encoder = trainer.best_encoder
            meta["encoder_sha256"] = adapted.payload_sha256(encoder, cfg.rank)
        check_interrupted()  # the last point where a stopped run leaves the earlier outputs
        save_decoder(out, trainer.best_state, meta, half=True, encoder=encoder)
        write_curves(out.parent, trainer.curves)
    if resume_path.exists():
        resume_path.unlink()
    return FinetuneResult(
        out=out,
        best_epoch=trainer.best_epoch,
        epochs_run=trainer.epoch,
        val=trainer.best_val,
        curves=trainer.curves,
        timings=timings,
    )


def _init_file(cfg: FinetuneConfig, model: SamModel) -> DecoderFile | None:
    """The ``--init-decoder`` file when it is an adapted model (its encoder is where encoder
    training starts); a one-line error when decoder-only training is asked to start there."""
    path = DecoderSpec(cfg.init_decoder).path(model.name)
    found = read_checkpoint(path) if path is not None else None
    if found is None or found.encoder_kind is None:
        return None
    if cfg.train == "decoder":
        raise GeofloodsamError(
            f"--init-decoder {cfg.init_decoder} is an adapted model (its image encoder was "
            "trained too): continue it with --train adapter (same --rank and --adapt) or "
            "--train full, or start from a decoder-only file."
        )
    return found


# ---------------------------------------------------------------------------- data
def _prepare_train(
    samples: list[Sample], cache: PersistentEmbeddingCache, variants: tuple[str, ...],
    progress: bool,
) -> list[_Item]:
    truths = [s.load_truth() for s in samples]
    keep = [i for i, (_, valid) in enumerate(truths) if valid.any()]
    if not keep:
        raise GeofloodsamError(
            "the train split has no valid mask pixels (every mask is nodata): check the masks."
        )
    if not any((truths[i][0] & truths[i][1]).any() for i in keep):
        raise GeofloodsamError(
            "the train split's masks contain no water: give masks where water is > 127 "
            "(photos) or 1 (label rasters)."
        )
    samples = [samples[i] for i in keep]
    truths = [truths[i] for i in keep]
    items = [_Item(s.id, {}, {}) for s in samples]
    for variant in variants:
        embs = cache.get_many(samples, variant, progress=progress, half=True)
        for item, emb, (water, valid) in zip(items, embs, truths, strict=True):
            item.embeddings[variant] = emb
            item.truths[variant] = lowres_truth(
                apply_variant(water, variant), apply_variant(valid, variant), cache.model.image_size
            )
    return items


def _prepare_val(
    samples: list[Sample], cache: PersistentEmbeddingCache, progress: bool
) -> list[_ValItem]:
    embs = cache.get_many(samples, "none", progress=progress, half=True)
    out = []
    for s, emb in zip(samples, embs, strict=True):
        water, valid = s.load_truth()
        if valid.any():
            truth = lowres_truth(water, valid, cache.model.image_size)
            out.append(_ValItem(s.id, emb, truth, water, valid))
    if not out:
        raise GeofloodsamError("the val split has no valid mask pixels: check its masks.")
    return out


@contextlib.contextmanager
def _swapped_decoder(model: SamModel, decoder: torch.nn.Module) -> Iterator[None]:
    """Run ``model`` with another mask decoder, restoring its own afterwards."""
    original = model.sam.mask_decoder
    model.sam.mask_decoder = decoder
    try:
        yield
    finally:
        model.sam.mask_decoder = original


# ---------------------------------------------------------------------------- loss
def mask_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    dice_weight: float = 1.0,
    bce_weight: float = 1.0,
) -> torch.Tensor:
    """Dice + BCE per mask over valid cells.

    ``logits`` is (N, M, h, w), ``target`` and ``valid`` (N, h, w); returns (N, M).
    """
    t = target[:, None].expand_as(logits)
    v = valid[:, None].expand_as(logits).to(logits.dtype)
    n_valid = v.sum(dim=(-2, -1)).clamp_min(1.0)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    bce = (bce * v).sum(dim=(-2, -1)) / n_valid
    p = torch.sigmoid(logits) * v
    inter = (p * t).sum(dim=(-2, -1))
    dice = 1.0 - (2.0 * inter + 1.0) / (p.sum(dim=(-2, -1)) + (t * v).sum(dim=(-2, -1)) + 1.0)
    return dice_weight * dice + bce_weight * bce


@torch.no_grad()
def mask_iou(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """IoU of logits > 0 against target > 0.5 over valid cells: (N, M)."""
    pred = logits > 0
    t = (target > 0.5)[:, None] & valid[:, None]
    pred = pred & valid[:, None]
    inter = (pred & t).sum(dim=(-2, -1)).float()
    union = (pred | t).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))


def prompt_loss(
    low_res: torch.Tensor,
    iou_pred: torch.Tensor,
    batch: PromptBatch,
    truth: LowResTruth,
    cfg: FinetuneConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, IoU of the chosen masks) for one image's prompts; logits cropped to the image."""
    h, w = truth.water.shape
    logits = low_res[..., :h, :w]
    target = torch.as_tensor(batch.targets, device=logits.device)
    valid = torch.as_tensor(truth.valid, device=logits.device).expand(len(batch), h, w)
    per_mask = mask_loss(logits, target, valid, cfg.dice_weight, cfg.bce_weight)
    ious = mask_iou(logits, target, valid)
    if per_mask.shape[1] > 1 and cfg.multimask == "best":
        best = per_mask.argmin(dim=1)
        chosen = per_mask.gather(1, best[:, None])[:, 0]
        chosen_iou = ious.gather(1, best[:, None])[:, 0]
    else:
        chosen, chosen_iou = per_mask.mean(dim=1), ious.mean(dim=1)
    iou_loss = F.mse_loss(iou_pred, ious)
    return chosen.mean() + cfg.iou_weight * iou_loss, chosen_iou


# ---------------------------------------------------------------------------- training
class _Trainer:
    """The training loop and its resumable state."""

    def __init__(
        self, cfg: FinetuneConfig, model: SamModel, train: list[_Item], val,
        start: torch.nn.Module,
    ) -> None:
        self.cfg, self.model, self.train, self.val = cfg, model, train, val
        self.decoder = copy.deepcopy(start)  # the decoder training starts from
        for p in self.decoder.parameters():
            p.requires_grad_(True)
        self.decoder.float()
        self.steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        total = self.steps_per_epoch * cfg.epochs
        warm = max(1, int(round(cfg.warmup * total)))
        self.optimizer = torch.optim.AdamW(
            self.param_groups(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: _lr_factor(s, warm, total)
        )
        kinds = MODE_KINDS[cfg.prompt]
        offsets = np.random.default_rng([cfg.seed, 7919]).integers(0, len(kinds), len(train))
        self.kind_offsets = offsets
        self.variants = AUGMENT_VARIANTS[cfg.augment]
        self.epoch = 0
        self.best_score = -math.inf
        self.best_epoch = 0
        self.best_val: dict[str, float] = {}
        self.best_state = _clone_state(self.decoder)
        self.bad_epochs = 0
        self.curves: list[dict[str, float]] = []
        self.timings = {"training_s": 0.0, "validation_s": 0.0}

    def param_groups(self) -> list[dict[str, Any]]:
        """What the optimiser trains (subclasses add the image encoder's weights)."""
        return [{"params": list(self.decoder.parameters())}]

    def keep_best(self) -> None:
        """Remember the current weights as the best so far."""
        self.best_state = _clone_state(self.decoder)

    # ------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        return {
            "config": asdict(self.cfg),
            "base_model": self.model.name,
            "base_sha256": self.model.checkpoint_sha256,
            "epoch": self.epoch,
            "decoder": self.decoder.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "best_val": self.best_val,
            "best_state": self.best_state,
            "bad_epochs": self.bad_epochs,
            "curves": self.curves,
            "timings": self.timings,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.decoder.load_state_dict(state["decoder"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.best_val = dict(state["best_val"])
        self.best_state = state["best_state"]
        self.bad_epochs = int(state["bad_epochs"])
        self.curves = list(state["curves"])
        self.timings = dict(state["timings"])

    # ------------------------------------------------------------ loop
    def run(self, resume_path: Path, on_epoch_end) -> None:
        while self.epoch < self.cfg.epochs and self.bad_epochs < self.cfg.patience:
            t = time.perf_counter()
            train_loss, train_iou = self.train_epoch(self.epoch)
            self.timings["training_s"] += time.perf_counter() - t
            t = time.perf_counter()
            val = self.validate()
            self.timings["validation_s"] += time.perf_counter() - t
            self.epoch += 1
            score = _selection_score(val, self.cfg.prompt)
            row = {
                "epoch": self.epoch,
                "lr": self.scheduler.get_last_lr()[0],
                "train_loss": train_loss,
                "train_iou": train_iou,
                **{f"val_{k}": v for k, v in val.items()},
                "val_score": score,
            }
            self.curves.append(row)
            if score > self.best_score:
                self.best_score, self.best_epoch, self.best_val = score, self.epoch, val
                self.keep_best()
                self.bad_epochs = 0
            else:
                self.bad_epochs += 1
            atomic_torch_save(self.state(), resume_path)
            if self.cfg.progress:
                _echo(row)
            if on_epoch_end is not None:
                on_epoch_end(self.epoch, row)

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(len(self.train))
        kinds = MODE_KINDS[cfg.prompt]
        self.decoder.train()
        losses, ious = [], []
        bar = _bar(self.steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress)
        for start in range(0, len(order), cfg.batch_size):
            self.optimizer.zero_grad(set_to_none=True)
            batch_idx = order[start : start + cfg.batch_size]
            total = torch.zeros((), device=self.model.device)
            step_ious = []
            for i in batch_idx:
                item = self.train[i]
                variant = self.variants[int(rng.integers(len(self.variants)))]
                kind = kinds[(epoch + int(self.kind_offsets[i])) % len(kinds)]
                truth = item.truths[variant]
                prompts = sample_prompts(truth, kind, cfg.prompts_per_image, rng)
                loss, chosen_iou = self._forward(item.embeddings[variant], prompts, truth)
                total = total + loss / len(batch_idx)
                step_ious.append(chosen_iou)
            total.backward()
            self.optimizer.step()
            self.scheduler.step()
            losses.append(float(total.detach()))
            ious.append(float(torch.cat(step_ious).mean()))
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses):.4f}", iou=f"{np.mean(ious):.3f}")
        bar.close()
        return float(np.mean(losses)), float(np.mean(ious))

    def _forward(self, emb: Embedding, batch: PromptBatch, truth: LowResTruth):
        feats = emb.features.to(self.model.device, torch.float32)
        prompts = self.model.prompt_tensors(
            emb.original_size, batch.points, batch.labels, batch.boxes
        )
        low_res, iou_pred = self.model.decode_lowres(feats, prompts, multimask=batch.multimask)
        return prompt_loss(low_res, iou_pred, batch, truth, self.cfg)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean full-resolution IoU/Dice/Precision/Recall per validation prompt, and val loss."""
        self.decoder.eval()
        scores: dict[str, list[dict[str, float]]] = {k: [] for k in VAL_PROMPTS}
        losses = []
        for item in self.val:
            emb = Embedding(
                item.embedding.features.to(self.model.device, torch.float32),
                item.embedding.original_size,
                item.embedding.input_size,
            )
            for kind, batch in _val_prompts(item.truth).items():
                prompts = self.model.prompt_tensors(
                    emb.original_size, batch.points, batch.labels, batch.boxes
                )
                low_res, iou_pred = self.model.decode_lowres(
                    emb.features, prompts, multimask=batch.multimask
                )
                loss, _ = prompt_loss(low_res, iou_pred, batch, item.truth, self.cfg)
                losses.append(float(loss))
                best = int(iou_pred[0].argmax())
                logits = self.model.upscale(low_res[:, best : best + 1], emb)[0, 0]
                pred = (logits > 0).cpu().numpy()
                scores[kind].append(metrics.scores(pred, item.water, item.valid))
        out = {"loss": float(np.mean(losses))}
        for kind, rows in scores.items():
            for m in metrics.METRICS:
                out[f"{m}_{kind}"] = float(np.mean([r[m] for r in rows])) if rows else float("nan")
        return out


def _selection_score(val: dict[str, float], mode: str) -> float:
    """Mean val IoU over the prompts the mode trains for (minus val loss if none applies)."""
    ious = [val[f"iou_{k}"] for k in SELECT_ON[mode] if not math.isnan(val[f"iou_{k}"])]
    return float(np.mean(ious)) if ious else -val["loss"]


def _val_prompts(truth: LowResTruth) -> dict[str, PromptBatch]:
    """The default evaluation prompts (exact) and the whole-image box, as prompt batches."""
    h, w = truth.original_size
    target = truth.water[None]
    out = {}
    if truth.eval_box is not None:
        out["box"] = PromptBatch("box", None, None, np.array([truth.eval_box]), target)
    if truth.eval_point is not None:
        pts = np.array([[truth.eval_point]])
        out["point"] = PromptBatch("point", pts, np.ones((1, 1)), None, target, multimask=True)
    whole = np.array([whole_image_box(w, h)])
    out[NO_PROMPT] = PromptBatch(NO_PROMPT, None, None, whole, target)
    return out


def _clone_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _lr_factor(step: int, warm: int, total: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warm:
        return (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# ---------------------------------------------------------------------------- resume
def _read_resume(path: Path, cfg: FinetuneConfig) -> dict[str, Any]:
    if not path.is_file():
        raise GeofloodsamError(
            f"nothing to resume: {path} does not exist; run without --resume to start training."
        )
    state = load_torch_file(
        path, "resume state", "delete it and start again without --resume."
    )
    saved = state.get("config", {}) if isinstance(state, dict) else {}
    if isinstance(saved.get("bands"), list):
        saved["bands"] = tuple(saved["bands"])
    now = asdict(cfg)
    if saved.get("model") != now["model"]:
        raise GeofloodsamError(
            f"{path} was written for base model {saved.get('model')}, not {cfg.model}: resume "
            f"with --model {saved.get('model')}, or start again without --resume."
        )
    # a state saved before a setting existed (precision, runtime) counts as its default
    defaults = {f.name: f.default for f in fields(FinetuneConfig)}
    diff = [
        k for k in now if k not in RESUME_FREE and saved.get(k, defaults.get(k)) != now[k]
    ]
    if diff:
        raise GeofloodsamError(
            f"--resume with other settings than the interrupted run ({', '.join(diff)}): use "
            "the same options, or start again without --resume."
        )
    return state


def _check_base(state: dict[str, Any], model: SamModel, path: Path) -> None:
    if state.get("base_model") != model.name or state.get("base_sha256") != model.checkpoint_sha256:
        raise GeofloodsamError(
            f"{path} was trained on base model {state.get('base_model')} (checkpoint SHA-256 "
            f"{str(state.get('base_sha256'))[:12]}…), not on this {model.name} "
            f"({str(model.checkpoint_sha256)[:12]}…): pass that --checkpoint, or start again "
            "without --resume."
        )


# ---------------------------------------------------------------------------- outputs
def _meta(cfg: FinetuneConfig, model: SamModel, trainer: _Trainer, n_train, n_val, timings):
    config = asdict(cfg)
    for key in ("progress", "device", "cache_dir"):
        config.pop(key)
    return {
        "base_model": model.name,
        "base_sha256": model.checkpoint_sha256,
        **config,
        "split": "train",
        "val_split": "val",
        "prompt_mode": cfg.prompt,
        "epochs_run": trainer.epoch,
        "best_epoch": trainer.best_epoch,
        "n_train": n_train,
        "n_val": n_val,
        "metrics": {f"val_{k}": round(v, 5) for k, v in trainer.best_val.items()},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }


CURVE_COLUMNS = ("epoch", "lr", "train_loss", "train_iou", "val_loss")


def write_curves(folder: Path, rows: list[dict[str, float]]) -> tuple[Path, Path]:
    """Write ``curves.csv`` and ``curves.png`` (loss and IoU per epoch) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = folder / "curves.csv", folder / "curves.png"
    columns = list(rows[0]) if rows else list(CURVE_COLUMNS)
    with atomic_open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})
    _plot_curves(rows, png_path)
    return csv_path, png_path


def _plot_curves(rows: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    ax1.plot(epochs, [r["val_loss"] for r in rows], "o-", label="val")
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax1.legend()
    for kind in VAL_PROMPTS:
        ax2.plot(epochs, [r.get(f"val_iou_{kind}") for r in rows], "o-", label=f"val {kind}")
    ax2.plot(epochs, [r["train_iou"] for r in rows], "k--", label="train (sampled prompts)")
    ax2.set(xlabel="epoch", ylabel="IoU", title="IoU (val: full resolution)")
    ax2.legend()
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100), suffix=".png")
    finally:
        plt.close(fig)


def _echo(row: dict[str, float]) -> None:
    from tqdm.auto import tqdm

    tqdm.write(
        f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, val loss "
        f"{row['val_loss']:.4f}, val IoU box {row['val_iou_box']:.3f} point "
        f"{row['val_iou_point']:.3f} {NO_PROMPT} {row[f'val_iou_{NO_PROMPT}']:.3f}"
    )


def _bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=not enabled)
