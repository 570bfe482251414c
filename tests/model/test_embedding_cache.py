"""The on-disk embedding cache: hits, variants, signatures, stale entries refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.embedding_cache import (
    VARIANTS,
    PersistentEmbeddingCache,
    apply_variant,
    pixel_sha256,
)
from geofloodsam.model.sam import load_model
from tests.conftest import FP32_TORCH


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def other_tiny():
    """A second tiny model: same name, another 'checkpoint' (seed), so another signature."""
    return load_model("tiny", device="cpu", seed=1, **FP32_TORCH)


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a.float(), b.float(), atol=2e-3, rtol=2e-3)  # float16 storage


def test_miss_then_hit(tmp_path, tiny_model, image):
    cache = PersistentEmbeddingCache(tmp_path, tiny_model)
    first = cache.get(image)
    second = cache.get(image)
    assert (cache.stats.misses, cache.stats.hits, cache.stats.stale) == (1, 1, 0)
    fresh = tiny_model.encode(image)
    assert _close(first.features, fresh.features) and _close(second.features, fresh.features)
    assert first.features.dtype == torch.float32
    assert second.original_size == (48, 64) and second.input_size == fresh.input_size
    # a new cache object on the same folder finds the entry on disk
    again = PersistentEmbeddingCache(tmp_path, tiny_model)
    again.get(image)
    assert again.stats.hits == 1 and again.stats.misses == 0


def test_entry_carries_the_full_signature(tmp_path, tiny_model, image):
    cache = PersistentEmbeddingCache(tmp_path, tiny_model)
    cache.get(image, "hflip")
    path = cache.entry_path(pixel_sha256(image), "hflip")
    entry = torch.load(path, weights_only=True)
    sig = entry["signature"]
    assert sig["image_sha256"] == pixel_sha256(image) and sig["variant"] == "hflip"
    assert sig["model"] == "tiny" and sig["checkpoint_sha256"] == tiny_model.checkpoint_sha256
    assert sig["image_size"] == 1024 and "preprocess_version" in sig
    assert entry["features"].dtype == torch.float16
    assert not list(path.parent.glob("*.tmp"))


def test_variant_is_the_transformed_image(tmp_path, tiny_model, image):
    cache = PersistentEmbeddingCache(tmp_path, tiny_model)
    emb = cache.get(image, "rot90")
    fresh = tiny_model.encode(apply_variant(image, "rot90"))
    assert emb.original_size == (64, 48)
    assert _close(emb.features, fresh.features)
    assert not _close(emb.features, cache.get(image).features)


def test_stale_entry_is_recomputed_and_overwritten(tmp_path, tiny_model, other_tiny, image):
    PersistentEmbeddingCache(tmp_path, tiny_model).get(image)
    cache = PersistentEmbeddingCache(tmp_path, other_tiny)  # same entry path, other checkpoint hash
    emb = cache.get(image)
    assert (cache.stats.stale, cache.stats.hits) == (1, 0)
    assert _close(emb.features, other_tiny.encode(image).features)
    path = cache.entry_path(pixel_sha256(image), "none")
    sig = torch.load(path, weights_only=True)["signature"]
    assert sig["checkpoint_sha256"] == other_tiny.checkpoint_sha256
    # and back: the first model refuses the overwritten entry too
    back = PersistentEmbeddingCache(tmp_path, tiny_model)
    assert _close(back.get(image).features, tiny_model.encode(image).features)
    assert back.stats.stale == 1


def test_preprocessing_change_makes_entries_stale(tmp_path, tiny_model, image, monkeypatch):
    PersistentEmbeddingCache(tmp_path, tiny_model).get(image)
    monkeypatch.setattr("geofloodsam.model.embedding_cache.PREPROCESS_VERSION", 999)
    cache = PersistentEmbeddingCache(tmp_path, tiny_model)
    cache.get(image)
    assert cache.stats.stale == 1


def test_corrupt_entry_is_recomputed(tmp_path, tiny_model, image):
    cache = PersistentEmbeddingCache(tmp_path, tiny_model)
    cache.get(image)
    cache.entry_path(pixel_sha256(image), "none").write_bytes(b"garbage")
    emb = cache.get(image)
    assert cache.stats.stale == 1
    assert _close(emb.features, tiny_model.encode(image).features)


def test_edited_image_is_a_new_entry(tmp_path, tiny_model, image):
    cache = PersistentEmbeddingCache(tmp_path, tiny_model)
    cache.get(image)
    edited = image.copy()
    edited[0, 0] ^= 1
    cache.get(edited)
    assert cache.stats.misses == 2 and cache.stats.hits == 0


def test_get_many_batches_misses(tmp_path, tiny_model, image, monkeypatch):
    images = [np.roll(image, k, axis=1) for k in range(5)]
    calls = []
    original = type(tiny_model).encode_batch

    def counting(self, batch):
        calls.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(type(tiny_model), "encode_batch", counting)
    monkeypatch.setattr(tiny_model, "batch_size", 2)
    cache = PersistentEmbeddingCache(tmp_path, tiny_model)
    cache.get(images[1])
    calls.clear()
    embs = cache.get_many(images, progress=False, half=True)
    assert calls == [2, 2]  # 4 misses in batches of 2, one hit
    assert all(e.features.dtype == torch.float16 for e in embs)
    assert (cache.stats.hits, cache.stats.misses) == (1, 5)


def test_samples_are_hashed_by_their_pixels(tmp_path, tiny_model, write_photo_set):
    from geofloodsam.datasets.reading import open_dataset

    samples = open_dataset(write_photo_set(tmp_path / "ds", ["train", "val"]))
    cache = PersistentEmbeddingCache(tmp_path / "cache", tiny_model)
    from_sample = cache.get(samples[0])
    from_array = cache.get(samples[0].load_image())
    assert cache.stats.hits == 1
    assert torch.equal(from_sample.features, from_array.features)


def test_default_folder_follows_geofloodsam_home(tmp_path, tiny_model, monkeypatch):
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path))
    assert PersistentEmbeddingCache(None, tiny_model).directory == tmp_path / "embeddings"


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_are_the_d4_group(variant):
    a = np.arange(12).reshape(3, 4)
    out = apply_variant(a, variant)
    assert sorted(out.ravel()) == sorted(a.ravel())
    assert out.shape in ((3, 4), (4, 3))
    # rgb images transform like their masks
    rgb = np.stack([a, a + 1, a + 2], axis=-1)
    np.testing.assert_array_equal(apply_variant(rgb, variant)[..., 0], out)


def test_variant_definitions():
    a = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(apply_variant(a, "hflip"), a[:, ::-1])
    np.testing.assert_array_equal(apply_variant(a, "vflip"), a[::-1])
    np.testing.assert_array_equal(apply_variant(a, "transpose"), a.T)
    np.testing.assert_array_equal(apply_variant(a, "rot180"), a[::-1, ::-1])
    four = a
    for _ in range(4):
        four = apply_variant(four, "rot90")
    np.testing.assert_array_equal(four, a)
    assert (
        len({apply_variant(a, v).tobytes() + bytes(apply_variant(a, v).shape) for v in VARIANTS})
        == 8
    )


def test_unknown_variant(tmp_path, tiny_model, image):
    with pytest.raises(GeofloodsamError, match="unknown variant"):
        PersistentEmbeddingCache(tmp_path, tiny_model).get(image, "shear")


def test_an_unusable_geofloodsam_home_falls_back_to_a_temporary_cache(
    tmp_path, tiny_model, image, monkeypatch, capsys
):
    home = tmp_path / "home"
    home.write_text("a file, not a folder")
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(home))
    cache = PersistentEmbeddingCache(None, tiny_model)
    assert cache.directory.is_dir() and home not in cache.directory.parents
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Warning: cannot use the embedding cache")
    assert "GEOFLOODSAM_HOME" in err[0]
    cache.get(image)  # works, cached in the temporary folder
    assert cache.get(image) is not None and cache.stats.hits == 1
    assert home.read_text() == "a file, not a folder"


def test_an_unusable_cache_dir_given_is_a_one_line_error(tmp_path, tiny_model):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(GeofloodsamError, match="--cache-dir") as excinfo:
        PersistentEmbeddingCache(blocker / "emb", tiny_model)
    assert "\n" not in excinfo.value.message
    assert blocker.read_text() == "x"


def test_a_cache_write_failure_goes_on_uncached(tmp_path, tiny_model, image, monkeypatch, capsys):
    import errno

    from geofloodsam.model import embedding_cache

    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(embedding_cache, "atomic_torch_save", full)
    cache = PersistentEmbeddingCache(tmp_path / "emb", tiny_model)
    assert cache.get(image) is not None
    assert "No space left on device" in capsys.readouterr().err


def test_encoder_paths_keep_their_own_entries(tmp_path, tiny_model, image, monkeypatch):
    """An fp32 and a bf16 run share a cache folder without making each other stale."""
    fp32 = PersistentEmbeddingCache(tmp_path, tiny_model)
    fp32.get(image)
    monkeypatch.setattr(type(tiny_model), "encoder_signature", property(lambda m: "torch-bf16"))
    bf16 = PersistentEmbeddingCache(tmp_path, tiny_model)
    bf16.get(image)
    assert bf16.stats.misses == 1 and bf16.stats.stale == 0
    monkeypatch.undo()
    again = PersistentEmbeddingCache(tmp_path, tiny_model)
    again.get(image)
    assert (again.stats.hits, again.stats.stale) == (1, 0)
    assert fp32.entry_path("ab" * 32, "none") != bf16.entry_path("ab" * 32, "none")
