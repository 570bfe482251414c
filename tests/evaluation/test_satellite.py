"""``evaluate`` on satellite chips: sensor composites, index / fused / auto rows, unusable
chips, pooled and mean IoU (synthetic Sen1Floods11 chips with the tiny SAM; one real run)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from rasterio.windows import Window

from geofloodsam.datasets.reading import open_dataset
from geofloodsam.errors import GeofloodsamError
from geofloodsam.evaluation import satellite
from geofloodsam.evaluation.evaluate import evaluate, resolve_split
from geofloodsam.evaluation.metrics import Confusion, confusion
from geofloodsam.model.embedding_cache import PersistentEmbeddingCache
from geofloodsam.model.logits import sigmoid
from geofloodsam.raster.sensors import detect_sensor, read_composite
from geofloodsam.water import fusion
from geofloodsam.water.scene_prior import PriorSpec, scene_prior, window_prior

METHODS = ["sam", "index", "fused", "auto"]


def _run(root, tmp_path, sensor="auto", methods=METHODS, **kw):
    kw.setdefault("decoders", ["pretrained"])
    kw.setdefault("prompt_types", ["box", "none"])
    kw.setdefault("examples", 0)
    return evaluate(
        root, out_dir=tmp_path / "out", model_name="tiny", device="cpu", methods=methods,
        sensor=sensor, progress=False, cache_dir=tmp_path / "cache", **kw,
    )


def _per_image(tmp_path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "out" / "per_image.csv", keep_default_na=False,
                       na_values=[""])


def _truth(path):
    with rasterio.open(path) as ds:
        label = ds.read(1)
    return label == 1, label >= 0


# ---------------------------------------------------------------------------- reading
def test_chips_are_read_as_the_sensor_composite(tmp_path, write_chip_set, chip_water):
    root = write_chip_set(tmp_path / "chips", ("s1", "s2"))
    for sensor, folder in (("s1", "S1Hand"), ("s2", "S2Hand")):
        samples = open_dataset(root, sensor=sensor, splits_out=tmp_path / "s.csv")
        assert [s.id for s in samples] == ["Alpha_1", "Beta_2"]
        sample = samples[0]
        assert sample.sensor_name == sensor and sample.reads_composite
        with rasterio.open(root / folder / f"Alpha_1_{folder}.tif") as ds:
            rgb, valid = read_composite(ds, detect_sensor(ds))
        np.testing.assert_array_equal(sample.load_image(), rgb)
        water, ok = sample.load_truth()
        label_rows, image_rows = chip_water["nodata"]
        assert not ok[label_rows].any() and not ok[image_rows].any()  # label -1, image nodata
        np.testing.assert_array_equal(ok, valid & _truth(root / "LabelHand"
                                                         / "Alpha_1_LabelHand.tif")[1])
        assert (water == chip_water["Alpha_1"](64) & ok).all()


# ---------------------------------------------------------------------------- rows
def test_index_and_fused_rows_on_an_s2_chip_with_a_known_answer(tmp_path, write_chip_set):
    """NDWI separates the synthetic S2 water exactly, and is confident everywhere, so the
    index row and every fused row score IoU 1 whatever the (random) SAM says."""
    root = write_chip_set(tmp_path / "chips", ("s2",))
    metrics = _run(root, tmp_path).set_index(["model", "prompt"])
    assert list(metrics.index) == [
        ("pretrained", "box"), ("pretrained", "none"), ("index", "none"),
        ("fused/pretrained", "none"), ("auto/pretrained", "none"),
    ]
    for row in ("index", "fused/pretrained", "auto/pretrained"):
        assert metrics.loc[(row, "none"), "iou"] == 1.0
        assert metrics.loc[(row, "none"), "pooled_iou"] == 1.0
        assert metrics.loc[(row, "none"), "n_images"] == 2
    per = _per_image(tmp_path)
    auto = per[per["model"] == "auto/pretrained"]
    assert set(auto["chosen"]) == {"index"} and set(per["sensor"]) == {"s2"}
    # nodata excluded from every row: the counts add up to the valid pixels only
    water, ok = open_dataset(root, splits_out=tmp_path / "s.csv")[0].load_truth()
    alpha = per[per["id"] == "Alpha_1"]
    assert set(alpha[["tp", "fp", "fn", "tn"]].sum(axis=1)) == {int(ok.sum())}


def test_rows_equal_the_one_tile_segment_path(tmp_path, write_chip_set, tiny_model):
    """index = the scene prior's water; fused = the guarded gate of the sigmoid of SAM's best
    mask for the whole-chip box (multimask off) with the prior of the whole-chip window, as
    a chip that fits in one tile is segmented; auto = index for s1; mean and pooled IoU."""
    root = write_chip_set(tmp_path / "chips", ("s1",))
    metrics = _run(root, tmp_path, prompt_types=["none"]).set_index("model")
    per = _per_image(tmp_path).set_index(["id", "model"])
    cache = PersistentEmbeddingCache(tmp_path / "cache", tiny_model)
    totals = {"index": Confusion(), "fused": Confusion()}
    for sample in open_dataset(root, splits_out=tmp_path / "s.csv"):
        water, ok = sample.load_truth()
        with rasterio.open(sample.image) as ds:
            info = detect_sensor(ds)
            prior = scene_prior(ds, info)
            tile = window_prior(ds, info, PriorSpec.of(prior), Window(0, 0, ds.width, ds.height))
            rgb, _ = read_composite(ds, info)
        np.testing.assert_array_equal(tile.probability(), prior.probability())
        emb = cache.get(rgb)  # the same pixels as the sample: the same cache entry
        h, w = rgb.shape[:2]
        pred = tiny_model.decode(emb, boxes=np.array([[0.0, 0.0, w, h]]), multimask=False)
        prob = sigmoid(pred.best_logits()[0])
        fused, agree = fusion.guarded_gate(prob, tile.probability(), tile.logits(), tile.valid)
        expected = {"index": confusion(prior.water(), water, ok),
                    "fused": confusion(fused > 0.5, water, ok)}
        for kind, label in (("index", "index"), ("fused", "fused/pretrained")):
            row = per.loc[(sample.id, label)]
            c = expected[kind]
            assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (c.tp, c.fp, c.fn, c.tn)
            totals[kind] = totals[kind] + c
        assert per.loc[(sample.id, "fused/pretrained"), "agreement"] == pytest.approx(agree)
        auto = per.loc[(sample.id, "auto/pretrained")]
        assert auto["chosen"] == "index" and auto["iou"] == per.loc[(sample.id, "index"), "iou"]
    for kind, label in (("index", "index"), ("fused", "fused/pretrained")):
        assert metrics.loc[label, "pooled_iou"] == pytest.approx(totals[kind].scores()["iou"])
        ious = per.xs(label, level="model")["iou"]
        assert metrics.loc[label, "iou"] == pytest.approx(ious.mean())
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| Model | Prompt | images | mean IoU [95% CI] | median IoU |" in text


def test_index_alone_needs_no_model(tmp_path, write_chip_set, monkeypatch):
    root = write_chip_set(tmp_path / "chips", ("s1",))

    def no_model(*a, **k):
        raise AssertionError("index alone loaded a model")

    monkeypatch.setattr("geofloodsam.model.sam.load_model", no_model)
    metrics = _run(root, tmp_path, methods=["index"])
    assert list(metrics["model"]) == ["index"] and list(metrics["method"]) == ["index"]


def test_photo_sets_keep_their_rows_and_auto_is_sam(tmp_path, write_photo_set):
    root = write_photo_set(tmp_path / "ds", ["test", "test"])
    metrics = _run(root, tmp_path, methods=["sam", "auto"], prompt_types=["none"])
    assert list(metrics["model"]) == ["pretrained", "auto/pretrained"]
    per = _per_image(tmp_path)
    assert set(per[per["method"] == "auto"]["chosen"]) == {"sam"}
    sam, auto = (per[per["model"] == m]["iou"].to_numpy() for m in metrics["model"])
    np.testing.assert_array_equal(sam, auto)  # rgb: auto is SAM promptless


# ---------------------------------------------------------------------------- skipping
def test_unusable_chips_are_skipped_with_a_warning(tmp_path, write_chip_set, capsys):
    root = write_chip_set(tmp_path / "chips", ("s1",), unusable=True)
    metrics = _run(root, tmp_path, methods=["index"])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "Warning: skipping Blank_3: its label has no valid pixel (all -1 / nodata).",
        "Warning: skipping Void_4: its image is all nodata/NaN.",
    ]
    assert metrics["n_images"].tolist() == [2]
    text = (tmp_path / "out" / "report.md").read_text()
    assert "2 images (2 skipped)" in text
    assert "- `Blank_3`: its label has no valid pixel" in text
    assert "- `Void_4`: its image is all nodata/NaN" in text


def test_nothing_usable_is_a_one_line_error(tmp_path, write_chip_set):
    root = write_chip_set(tmp_path / "chips", ("s1",), unusable=True)
    for name in ("Alpha_1", "Beta_2"):
        for folder in ("S1Hand", "LabelHand"):
            (root / folder / f"{name}_{folder}.tif").unlink()
    with pytest.raises(GeofloodsamError, match="no usable image left") as info:
        _run(root, tmp_path, methods=["index"])
    assert "\n" not in info.value.format_message()
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- splits
def test_chip_folders_are_scored_whole_by_default(tmp_path, write_chip_set, write_photo_set):
    chips = write_chip_set(tmp_path / "chips", ("s1", "s2"))
    photos = write_photo_set(tmp_path / "ds", ["test"])
    assert resolve_split(chips, "auto") is None
    assert resolve_split(chips / "S1Hand", "auto") is None
    assert resolve_split(photos, "auto") == "test"
    assert resolve_split(photos, "all") is None and resolve_split(chips, "val") == "val"


# ---------------------------------------------------------------------------- methods
def test_methods_are_checked_and_ordered():
    assert satellite.check_methods(["fused", "sam", "fused"]) == ["sam", "fused"]
    with pytest.raises(GeofloodsamError, match="unknown method"):
        satellite.check_methods(["magic"])


# ---------------------------------------------------------------------------- real data
@pytest.mark.slow
def test_real_s1_chips_index_row_is_the_scene_prior(tmp_path, shared, mobile_sam_path):
    root = shared("data/sen1floods11/S1Hand")
    metrics = evaluate(
        root, decoders=["satellite"], prompt_types=["none"], methods=["index", "fused"],
        out_dir=tmp_path / "out", checkpoint=mobile_sam_path, device="cpu", progress=False,
        cache_dir=tmp_path / "cache", examples=0,
    ).set_index("model")
    total = Confusion()
    for sample in open_dataset(root, splits_out=tmp_path / "s.csv"):
        if sample.unusable():
            continue
        with rasterio.open(sample.image) as ds:
            prior = scene_prior(ds, detect_sensor(ds))
        water, ok = _truth(sample.mask)
        with rasterio.open(sample.image) as ds:
            ok &= read_composite(ds, detect_sensor(ds))[1]
        total = total + confusion(prior.water(), water & ok, ok)
    assert metrics.loc["index", "n_images"] == 8  # Ghana_83483 and Paraguay_34417 skipped
    assert metrics.loc["index", "pooled_iou"] == pytest.approx(total.scores()["iou"], abs=1e-6)
    # the cross-validated defaults (benchmarks/satellite_cv.py): pooled 0.822, mean 0.508
    # over the 6 chips with water, the 2 dry chips apart
    assert metrics.loc["index", "pooled_iou"] == pytest.approx(0.822, abs=0.001)
    assert metrics.loc["index", "iou"] == pytest.approx(0.508, abs=0.001)
    assert metrics.loc["index", "n_no_water"] == 2
    assert metrics.loc["fused/satellite", "pooled_iou"] >= metrics.loc["index", "pooled_iou"] - 0.02
