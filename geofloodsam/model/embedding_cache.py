"""On-disk cache of SAM image embeddings, shared by ``finetune`` and ``evaluate``.

Each image (and each augmented variant of it: flips, rotations) is encoded once. An entry
is a torch file holding float16 features and its *signature*:

* SHA-256 of the decoded image pixels (with shape), so an edited image is re-encoded;
* the model name and its checkpoint SHA-256, and for an adapted model (``finetune --train
  adapter|full``) the hash of its encoder's adapters (``encoder_sha256``): adapted encoders
  give other embeddings, so they get their own entries (in their own folder);
* the encoder's runtime and precision (``torch-fp32``, ``torch-bf16``, ``openvino-fp32``...):
  an fp32 embedding is never reused for bf16, nor the other way round;
* the preprocessing: ``image_size``, :data:`PREPROCESS_VERSION` and a hash of the model's
  ``preprocess`` source;
* the variant (augmentation) name.

Entries live at ``<dir>/<model>/<sha[:2]>/<sha>_<variant>.pt``. An entry whose stored
signature does not match the expected one (other checkpoint, other preprocessing, a corrupt
file) is recomputed and overwritten, never reused. Writes are atomic (temporary file, then
``os.replace``), so processes can share a cache folder.
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from geofloodsam.errors import GeofloodsamError
from geofloodsam.files.atomic import atomic_write
from geofloodsam.files.home import usable_home_folder, writable_reason
from geofloodsam.model.sam import Embedding
from geofloodsam.model.variants import VARIANTS

#: bump when the way images are turned into encoder input changes
PREPROCESS_VERSION = 1


def cache_home() -> Path:
    """``$GEOFLOODSAM_HOME`` or the user cache folder of geofloodsam."""
    from geofloodsam.weights.checkpoints import cache_root

    return cache_root()


def apply_variant(array: np.ndarray, variant: str) -> np.ndarray:
    """Transform the first two axes (rows, columns) of ``array`` by a D4 ``variant``."""
    if variant == "none":
        return array
    if variant == "hflip":
        out = array[:, ::-1]
    elif variant == "vflip":
        out = array[::-1]
    elif variant == "rot90":
        out = np.rot90(array, 1, axes=(0, 1))
    elif variant == "rot180":
        out = np.rot90(array, 2, axes=(0, 1))
    elif variant == "rot270":
        out = np.rot90(array, 3, axes=(0, 1))
    elif variant == "transpose":
        out = np.swapaxes(array, 0, 1)
    elif variant == "transverse":
        out = np.rot90(np.swapaxes(array, 0, 1), 2, axes=(0, 1))
    else:
        raise GeofloodsamError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}.")
    return np.ascontiguousarray(out)


def pixel_sha256(image: np.ndarray) -> str:
    """SHA-256 of an array's shape, dtype and bytes."""
    h = hashlib.sha256(f"{image.shape}|{image.dtype}|".encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


def _preprocess_fingerprint(model: Any) -> str:
    try:
        src = inspect.getsource(type(model).preprocess)
    except (AttributeError, OSError, TypeError):
        return "unknown"
    return hashlib.sha256(src.encode()).hexdigest()[:16]


@dataclass
class CacheStats:
    """Counts of this cache object's lookups."""

    hits: int = 0
    misses: int = 0
    stale: int = 0  # entries found with another signature: recomputed and overwritten

    def __str__(self) -> str:
        return f"{self.hits} cached, {self.misses} encoded, {self.stale} stale re-encoded"


class PersistentEmbeddingCache:
    """Embeddings of images for one model, kept on disk between runs and processes (signed,
    so a stale entry is never reused). ``segment``'s tile embeddings, which live for one run
    only, are :class:`geofloodsam.tiles.work.RunEmbeddings`.

    Args:
        directory: cache folder; None: ``$GEOFLOODSAM_HOME/embeddings`` or the user cache.
        model: the model whose image encoder produces the entries (needs ``name``,
            ``checkpoint_sha256``, ``image_size``, ``device``, ``batch_size``, ``encode_batch``).
    """

    def __init__(self, directory: str | Path | None, model: Any) -> None:
        self.directory = usable_cache_dir(directory)
        self.model = model
        self._write_failed = False
        self.stats = CacheStats()
        self._model_sig = {
            "model": str(model.name),
            "checkpoint_sha256": str(getattr(model, "checkpoint_sha256", None)),
            "encoder": str(getattr(model, "encoder_signature", "torch-fp32")),
            "image_size": int(model.image_size),
            "preprocess_version": PREPROCESS_VERSION,
            "preprocess_source": _preprocess_fingerprint(model),
        }
        adapted = getattr(model, "encoder_sha256", None)
        if adapted is not None:  # absent for base encoders: their entries stay valid
            self._model_sig["encoder_sha256"] = str(adapted)
        self._sha_memo: dict[str, tuple[str, tuple[int, ...]]] = {}

    # ------------------------------------------------------------------ signatures
    def signature(self, image_sha: str, shape: Sequence[int], variant: str) -> dict[str, Any]:
        """The signature an entry for this image, variant and model must carry."""
        return {
            **self._model_sig,
            "image_sha256": image_sha,
            "shape": list(shape),
            "variant": variant,
        }

    def entry_path(self, image_sha: str, variant: str) -> Path:
        """Where the entry of an image (by pixel hash) and variant is stored: one folder per
        model and encoder path (``torch-fp32``, ``openvino-bf16``...), so that runs at other
        precisions (or adapted encoders) keep their own entries instead of overwriting each
        other's."""
        encoder = re.sub(r"[^A-Za-z0-9_.-]", "_", self._model_sig["encoder"])
        if "encoder_sha256" in self._model_sig:
            encoder += "-adapted-" + self._model_sig["encoder_sha256"][:16]
        return (self.directory / str(self.model.name) / encoder / image_sha[:2]
                / f"{image_sha}_{variant}.pt")

    # ------------------------------------------------------------------ lookups
    def get(self, sample_or_image: Any, variant: str = "none") -> Embedding:
        """The embedding of one sample (or HxWx3 uint8 image) under ``variant``."""
        return self.get_many([sample_or_image], variant, progress=False)[0]

    def get_many(
        self,
        items: Iterable[Any],
        variant: str = "none",
        progress: bool = True,
        half: bool = False,
    ) -> list[Embedding]:
        """Embeddings of many samples/images; misses are encoded in batches.

        With ``half=True`` the features stay float16 on the CPU (to hold many in memory);
        otherwise they are float32 on the model's device.
        """
        if variant not in VARIANTS:
            apply_variant(np.zeros((1, 1)), variant)  # raises the one-line error
        items = list(items)
        out: list[Embedding | None] = [None] * len(items)
        pending: list[tuple[int, np.ndarray, dict[str, Any], Path]] = []
        bar = _progress(len(items), progress, f"embeddings ({variant})")
        batch = max(1, int(getattr(self.model, "batch_size", 1)))
        for i, item in enumerate(items):
            image, sha, shape = self._identify(item)
            sig = self.signature(sha, shape, variant)
            path = self.entry_path(sha, variant)
            found = self._load(path, sig)
            if found is not None:
                self.stats.hits += 1
                out[i] = self._finish(found, half)
                bar.update(1)
                continue
            if image is None:
                image = _load_image(item)
            pending.append((i, apply_variant(image, variant), sig, path))
            if len(pending) >= batch:
                self._encode(pending, out, half)
                bar.update(len(pending))
                pending = []
        if pending:
            self._encode(pending, out, half)
            bar.update(len(pending))
        bar.close()
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ internals
    def _identify(self, item: Any) -> tuple[np.ndarray | None, str, tuple[int, ...]]:
        """(decoded image or None, pixel SHA-256, shape) of a sample or array."""
        if isinstance(item, np.ndarray):
            return item, pixel_sha256(item), tuple(item.shape)
        key = item.image_key()
        if key in self._sha_memo:  # same file, same size and mtime, within this process
            sha, shape = self._sha_memo[key]
            return None, sha, shape
        image = _load_image(item)
        sha, shape = pixel_sha256(image), tuple(image.shape)
        self._sha_memo[key] = (sha, shape)
        return image, sha, shape

    def _load(self, path: Path, sig: dict[str, Any]) -> dict[str, Any] | None:
        if not path.is_file():
            self.stats.misses += 1
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
            ok = isinstance(entry, dict) and entry.get("signature") == sig
        except Exception:  # noqa: BLE001 - a corrupt entry is treated as stale
            ok = False
        if not ok:
            self.stats.stale += 1
            return None
        return entry

    def _encode(self, pending, out, half: bool) -> None:
        embs = self.model.encode_batch([img for _, img, _, _ in pending])
        for (i, _, sig, path), emb in zip(pending, embs, strict=True):
            entry = {
                "signature": sig,
                "features": emb.features.detach().to("cpu", torch.float16).contiguous(),
                "original_size": list(emb.original_size),
                "input_size": list(emb.input_size),
            }
            if not self._write_failed:
                try:
                    atomic_torch_save(entry, path)
                except OSError as exc:  # a full disk must not stop the evaluation / training
                    self._write_failed = True
                    click.echo(
                        f"Warning: cannot write to the embedding cache {self.directory} "
                        f"({exc.strerror or type(exc).__name__}): going on without caching.",
                        err=True,
                    )
            out[i] = self._finish(entry, half)

    def _finish(self, entry: dict[str, Any], half: bool) -> Embedding:
        feats = entry["features"]
        if not half:
            feats = feats.to(self.model.device, torch.float32)
        return Embedding(
            feats,
            tuple(int(v) for v in entry["original_size"]),
            tuple(int(v) for v in entry["input_size"]),
        )


class PersistentDecodersCache:
    """Embeddings for several decoders at once, some of them adapted models with their own
    image encoder: one :class:`PersistentEmbeddingCache` per distinct encoder (the base one and each
    adapted one), and embeddings that carry the others as ``alternatives``, so that
    ``SamModel.decode`` (inside :func:`~geofloodsam.model.decoders.use_decoder`) picks the
    one of the encoder in use. With decoders on the base encoder only it is one cache.

    Args:
        directory: as :class:`PersistentEmbeddingCache`.
        model: the base model (``load_decoders`` left it unchanged).
        decoders: what :func:`~geofloodsam.model.decoders.load_decoders` returned.
    """

    def __init__(self, directory: str | Path | None, model: Any, decoders: Sequence[Any]) -> None:
        self.model = model
        self._owners: dict[str | None, Any] = {}
        for dec in decoders:
            self._owners.setdefault(getattr(dec, "encoder_sha256", None), dec)
        if not self._owners:
            self._owners[None] = None
        self.caches: dict[str | None, PersistentEmbeddingCache] = {}
        for sha in self._owners:
            with self._encoder(sha):
                self.caches[sha] = PersistentEmbeddingCache(directory, model)
        self.directory = next(iter(self.caches.values())).directory

    def _encoder(self, sha: str | None):
        from contextlib import nullcontext

        from geofloodsam.model.decoders import use_decoder

        dec = self._owners[sha]
        return nullcontext() if sha is None else use_decoder(self.model, dec)

    @property
    def stats(self) -> CacheStats:
        """Lookups summed over the encoders' caches."""
        total = CacheStats()
        for cache in self.caches.values():
            total.hits += cache.stats.hits
            total.misses += cache.stats.misses
            total.stale += cache.stats.stale
        return total

    def get(self, sample_or_image: Any, variant: str = "none") -> Embedding:
        """As :meth:`PersistentEmbeddingCache.get`, for every encoder."""
        return self.get_many([sample_or_image], variant, progress=False)[0]

    def get_many(
        self, items: Iterable[Any], variant: str = "none", progress: bool = True,
        half: bool = False,
    ) -> list[Embedding]:
        """As :meth:`PersistentEmbeddingCache.get_many`, each embedding with the other
        encoders' ones."""
        items = list(items)
        per: dict[str | None, list[Embedding]] = {}
        for sha, cache in self.caches.items():
            with self._encoder(sha):
                per[sha] = cache.get_many(items, variant, progress, half)
        if len(per) == 1:
            return next(iter(per.values()))
        out = []
        for i in range(len(items)):
            alternatives = {sha: embs[i] for sha, embs in per.items()}
            first = next(iter(alternatives.values()))
            out.append(Embedding(first.features, first.original_size, first.input_size,
                                 alternatives))
        return out


def usable_cache_dir(directory: str | Path | None) -> Path:
    """The embedding cache folder: ``directory``, or ``$GEOFLOODSAM_HOME/embeddings``.

    An unusable folder given explicitly is a one-line error. The default one (a
    ``GEOFLOODSAM_HOME`` that is read-only, a file, on a full disk) falls back, with a warning,
    to a temporary folder removed when the process ends, as ``segment`` works in its own.
    """
    if directory is not None:
        directory = Path(directory)
        reason = writable_reason(directory)
        if reason is not None:
            raise GeofloodsamError(
                f"cannot use embedding cache folder {directory} ({reason}): choose another "
                "with --cache-dir."
            )
        return directory
    return usable_home_folder("embeddings", "embedding cache")


def _load_image(item: Any) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return item
    return item.load_image()


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the target folder, then rename it into place."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, disable=not enabled)
