"""``geofloodsam evaluate`` on a tiny synthetic data set with the tiny random SAM."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from geofloodsam.cli import main
from geofloodsam.evaluation.evaluate import (
    image_prompts,
    predict,
    score_samples,
    spread_examples,
    worst_examples,
)
from geofloodsam.evaluation.report import HEAD_COLUMNS, aggregate, atomic_outputs
from geofloodsam.model.decoders import load_decoders, save_decoder
from geofloodsam.model.embedding_cache import PersistentEmbeddingCache

H, W = 48, 64
#: id -> (row0, row1, col0, col1) water rectangle (end exclusive), None = no water
RECTS = {
    "a": (10, 30, 20, 50),
    "b": (0, 48, 0, 16),
    "c": (30, 40, 5, 60),
    "dry": None,
    "t1": (5, 20, 5, 20),
}
SPLIT = {"a": "test", "b": "test", "c": "test", "dry": "test", "t1": "train"}


def _truth(rect) -> np.ndarray:
    water = np.zeros((H, W), dtype=bool)
    if rect is not None:
        r0, r1, c0, c1 = rect
        water[r0:r1, c0:c1] = True
    return water


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Five small photos with rectangular water, masks and a splits.csv."""
    root = tmp_path_factory.mktemp("data")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(1)
    with open(root / "splits.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "image", "mask", "split"])
        for sid, rect in RECTS.items():
            water = _truth(rect)
            img = rng.integers(90, 160, (H, W, 3), dtype=np.uint8)
            img[water] = (30, 60, 140)
            Image.fromarray(img).save(root / "images" / f"{sid}.jpg", quality=95)
            Image.fromarray(water.astype(np.uint8) * 255).save(root / "masks" / f"{sid}.png")
            w.writerow([sid, f"images/{sid}.jpg", f"masks/{sid}.png", SPLIT[sid]])
    return root


def _random_decoder(model, path: Path, seed: int) -> Path:
    """A decoder file for the tiny model: its pretrained weights plus seeded noise."""
    gen = torch.Generator().manual_seed(seed)
    state = {
        k: v + 0.5 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
        for k, v in model.sam.mask_decoder.state_dict().items()
    }
    meta = {"base_model": model.name, "base_sha256": model.checkpoint_sha256}
    return save_decoder(path, state, meta)


@pytest.fixture(scope="module")
def decoder_files(tmp_path_factory, tiny_model) -> list[Path]:
    d = tmp_path_factory.mktemp("decoders")
    return [_random_decoder(tiny_model, d / f"rand{i}.pt", i) for i in (1, 2)]


@pytest.fixture
def samples(dataset):
    from geofloodsam.datasets.reading import open_dataset

    return open_dataset(dataset, split="test")


# ---------------------------------------------------------------------------- decoders
def test_decoders_are_copies_and_the_model_is_restored(tiny_model, decoder_files):
    before = {k: v.clone() for k, v in tiny_model.sam.mask_decoder.state_dict().items()}
    original = tiny_model.sam.mask_decoder
    decs = load_decoders(tiny_model, ["pretrained", *map(str, decoder_files), "pretrained"])
    assert [d.label for d in decs] == ["pretrained", "rand1", "rand2"]
    assert decs[0].module is original
    assert len({id(d.module) for d in decs}) == 3
    saved = torch.load(decoder_files[0], weights_only=True)["decoder"]
    for k, v in decs[1].module.state_dict().items():
        torch.testing.assert_close(v, saved[k])
    assert tiny_model.sam.mask_decoder is original
    assert tiny_model.decoder_name == "pretrained" and tiny_model.decoder_sha256 is None
    for k, v in original.state_dict().items():
        torch.testing.assert_close(v, before[k])


# ---------------------------------------------------------------------------- prompts
def test_image_prompts_by_hand():
    water = _truth(RECTS["a"])  # rows 10-29, columns 20-49
    valid = np.ones_like(water)
    valid[:, 45:] = False  # nodata cuts the water: the box stops at column 45
    p = image_prompts(water, valid)
    assert p["size"] == [H, W]
    assert p["box"]["box"] == [20.0, 10.0, 45.0, 30.0]
    assert p["none"]["box"] == [0.0, 0.0, float(W), float(H)]
    (x, y), = p["point"]["points"]
    assert p["point"]["labels"] == [1]
    assert 20 < x < 45 and 10 < y < 30


def test_no_water_means_no_prompt_and_an_empty_prediction(tiny_model):
    water = np.zeros((H, W), dtype=bool)
    p = image_prompts(water, np.ones_like(water))
    emb = tiny_model.encode(np.zeros((H, W, 3), np.uint8))
    for ptype in ("point", "box"):
        mask, score = predict(tiny_model, emb, ptype, p[ptype])
        assert mask.shape == (H, W) and not mask.any() and score is None
    mask, score = predict(tiny_model, emb, "none", p["none"])
    assert mask.shape == (H, W) and score is not None


@pytest.mark.slow
def test_every_decoder_sees_the_same_prompts(tiny_model, decoder_files, samples, tmp_path,
                                             monkeypatch):
    decs = load_decoders(tiny_model, ["pretrained", *map(str, decoder_files)])
    calls: dict[int, list] = {id(d.module): [] for d in decs}
    real_decode = tiny_model.decode

    def spy(embedding, points=None, point_labels=None, boxes=None, **kw):
        calls[id(tiny_model.sam.mask_decoder)].append(
            (None if points is None else points.tolist(), None if boxes is None else boxes.tolist())
        )
        return real_decode(embedding, points=points, point_labels=point_labels, boxes=boxes, **kw)

    monkeypatch.setattr(tiny_model, "decode", spy)
    cache = PersistentEmbeddingCache(tmp_path / "cache", tiny_model)
    per_image, used = score_samples(
        tiny_model, decs, samples, cache, ["point", "box", "none"], progress=False
    )
    seqs = list(calls.values())
    # 4 test images, 3 prompt types, minus the point and box of the dry image
    assert len(seqs[0]) == 4 * 3 - 2
    assert seqs[0] == seqs[1] == seqs[2]
    assert cache.stats.misses == 4  # one encoder pass per image for the three decoders
    assert used["a"]["box"]["box"] == [20.0, 10.0, 50.0, 30.0]
    assert len(per_image) == 4 * 3 * 3
    # the decoders differ, so their predictions do
    by_model = per_image.groupby("model")["predicted_iou"].apply(lambda s: tuple(s.fillna(-1)))
    assert len(set(by_model)) == 3


# ---------------------------------------------------------------------------- tables
def test_aggregate_means_medians_pooled_by_hand():
    per_image = pd.DataFrame(
        [
            # model m, prompt box: IoU 1 and 1/4 (tp=1 fp=3) -> mean 5/8, pooled 2/5
            {"id": "x", "model": "m", "prompt": "box", "iou": 1.0, "dice": 1.0,
             "precision": 1.0, "recall": 1.0, "tp": 1, "fp": 0, "fn": 0, "tn": 3},
            {"id": "y", "model": "m", "prompt": "box", "iou": 0.25, "dice": 0.4,
             "precision": 0.25, "recall": 1.0, "tp": 1, "fp": 3, "fn": 0, "tn": 0},
        ]
    )
    agg = aggregate(per_image)
    assert tuple(agg.columns[: len(HEAD_COLUMNS)]) == HEAD_COLUMNS
    row = agg.iloc[0]
    assert row["n_images"] == 2
    assert row["iou"] == pytest.approx(5 / 8) and row["median_iou"] == pytest.approx(5 / 8)
    assert row["pooled_iou"] == pytest.approx(2 / 5)
    assert row["pooled_precision"] == pytest.approx(2 / 5)
    assert row["pooled_dice"] == pytest.approx(4 / 7)
    assert row["n_no_water"] == 0


def test_aggregate_counts_no_water_images_apart_with_bootstrap_intervals():
    """A chip whose truth has no water is not an IoU 0 in the mean: its false-alarm area is
    reported; it stays in the pooled IoU; the intervals hold the estimates."""
    rows = [  # IoU 1/2, 1/4 on chips with water; a dry chip with 10 false alarms out of 100
        {"id": "a", "tp": 2, "fp": 1, "fn": 1, "tn": 0, "iou": 0.5},
        {"id": "b", "tp": 1, "fp": 3, "fn": 0, "tn": 0, "iou": 0.25},
        {"id": "c", "tp": 0, "fp": 10, "fn": 0, "tn": 90, "iou": 0.0},
    ]
    per_image = pd.DataFrame([{**r, "model": "m", "prompt": "none", "dice": 0.0,
                               "precision": 0.0, "recall": 0.0} for r in rows])
    row = aggregate(per_image).iloc[0]
    assert row["n_images"] == 3 and row["n_no_water"] == 1
    assert row["iou"] == pytest.approx(0.375) and row["median_iou"] == pytest.approx(0.375)
    assert row["no_water_false_alarm"] == pytest.approx(0.1)
    assert row["pooled_iou"] == pytest.approx(3 / 18)
    assert 0.25 <= row["iou_ci_low"] <= 0.375 <= row["iou_ci_high"] <= 0.5
    assert row["pooled_iou_ci_low"] <= 3 / 18 <= row["pooled_iou_ci_high"]
    again = aggregate(per_image).iloc[0]
    assert again["iou_ci_low"] == row["iou_ci_low"]  # seeded


def test_example_selection():
    per_image = pd.DataFrame(
        {"id": list("pqrst"), "model": "m", "prompt": "box", "iou": [0.5, 0.1, 0.9, 0.3, 0.7]}
    )
    assert worst_examples(per_image, "m", "box", 2) == ["q", "s"]
    assert spread_examples(per_image, "m", "box", 3) == ["r", "p", "q"]
    assert spread_examples(per_image, "m", "point", 3) == []


def test_atomic_outputs_leave_nothing_on_error(tmp_path):
    out = tmp_path / "report"
    with pytest.raises(RuntimeError), atomic_outputs(out) as tmp:
        (tmp / "metrics.csv").write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with atomic_outputs(out) as tmp:
        (tmp / "metrics.csv").write_text("done")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "metrics.csv"]


# ---------------------------------------------------------------------------- end to end
def _run(*args):
    return CliRunner().invoke(main, ["evaluate", "--model", "tiny", "--device", "cpu", "-q", *args])


@pytest.mark.slow
def test_evaluate_end_to_end_and_prompts_file(dataset, decoder_files, tmp_path):
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    common = ["--data", str(dataset), "--cache-dir", str(cache), "--examples", "2"]
    res = _run(*common, "--decoder", "pretrained", "--decoder", str(decoder_files[0]),
               "--prompt", "point", "--prompt", "box", "--prompt", "none", "-o", str(out))
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert {"metrics.csv", "per_image.csv", "prompts.json", "report.md", "means.png",
            "distributions.png"} <= names
    for ptype in ("point", "box", "none"):
        assert {f"comparison_{ptype}.png", f"failures_{ptype}.png"} <= names

    metrics = pd.read_csv(out / "metrics.csv", keep_default_na=False)
    assert tuple(metrics.columns[:7]) == HEAD_COLUMNS
    assert len(metrics) == 6 and set(metrics["n_images"]) == {4}
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 4 * 6 and set(per_image["id"].astype(str)) == {"a", "b", "c", "dry"}
    # the mean IoU is over the images whose truth has water; the dry one is reported apart
    wet = per_image[per_image["tp"] + per_image["fn"] > 0]
    assert set(wet["id"].astype(str)) == {"a", "b", "c"}
    means = wet.groupby(["model", "prompt"])["iou"].mean()
    for row in metrics.itertuples():
        assert row.iou == pytest.approx(means[(row.model, row.prompt)], abs=1e-6)
        assert row.n_no_water == 1
    # the dry image has no point/box prompt: empty prediction on empty truth scores 1
    dry = per_image[(per_image["id"] == "dry") & (per_image["prompt"] != "none")]
    assert (dry["iou"] == 1.0).all()

    text = (out / "report.md").read_text()
    assert "| Model | Prompt | IoU | Dice | Precision | Recall |" in text
    for name in names - {"report.md", "metrics.csv", "per_image.csv", "prompts.json"}:
        assert f"]({name})" in text

    # reuse the prompts, with one point moved: the new run scores exactly those prompts
    doc = json.loads((out / "prompts.json").read_text())
    doc["images"]["a"]["point"]["points"] = [[21.5, 11.5]]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(doc))
    out2 = tmp_path / "out2"
    res = _run(*common, "--decoder", "pretrained", "--prompt", "box", "--prompt", "point",
               "--prompts-file", str(edited), "-o", str(out2), "--examples", "0")
    assert res.exit_code == 0, res.output
    assert json.loads((out2 / "prompts.json").read_text())["images"] == doc["images"]
    again = pd.read_csv(out2 / "per_image.csv")
    first = per_image[per_image["model"] == "pretrained"].set_index(["id", "prompt"])
    second = again.set_index(["id", "prompt"])
    for sid in ("b", "c"):  # untouched prompts, cached embeddings: identical scores
        for ptype in ("box", "point"):
            assert second.loc[(sid, ptype), "iou"] == first.loc[(sid, ptype), "iou"]


# ---------------------------------------------------------------------------- bad input
@pytest.fixture
def bad_prompts(tmp_path) -> Path:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"format": "geofloodsam-prompts/1", "images": {"zz": {}}}))
    return path


@pytest.fixture
def foreign_decoder(tmp_path, tiny_model) -> Path:
    """A decoder made for another base model (different checkpoint hash)."""
    path = tmp_path / "foreign.pt"
    meta = {"base_model": "tiny", "base_sha256": "tiny-seed-7"}
    return save_decoder(path, tiny_model.sam.mask_decoder.state_dict(), meta)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--decoder", "no_such_decoder.pt"], "does not exist"),
        (["--decoder", "flood"], "no flood decoder is shipped"),
        (["--decoder", "{foreign}"], "was fine-tuned for base model"),
        (["--split", "val"], "no images in split"),
        (["--prompts-file", "{bad_prompts}"], "has no prompts for image"),
        (["--prompts-file", "missing.json"], "cannot read prompts file"),
        (["--data", "{tmp}/nowhere"], "does not exist"),
        (["--model", "vit_q"], "unknown model"),
    ],
)
def test_bad_input_one_line_error_nothing_written(
    args, message, dataset, tmp_path, bad_prompts, foreign_decoder
):
    out = tmp_path / "out"
    args = [
        a.format(foreign=foreign_decoder, bad_prompts=bad_prompts, tmp=tmp_path) for a in args
    ]
    base = ["--data", str(dataset)] if "--data" not in args else []
    if "--decoder" not in args:
        base += ["--decoder", "pretrained"]
    res = _run(*base, "--cache-dir", str(tmp_path / "cache"), "-o", str(out), *args)
    assert res.exit_code != 0
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], res.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))


def test_an_unwritable_output_is_found_before_scoring(dataset, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")

    def no_scoring(*a, **k):
        raise AssertionError("the data set was read before checking -o")

    monkeypatch.setattr("geofloodsam.datasets.reading.open_dataset", no_scoring)
    res = _run("--data", str(dataset), "--decoder", "pretrained", "-o", str(blocker / "out"))
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "a_file" in lines[0]
    assert blocker.read_text() == "x"


def test_an_unusable_geofloodsam_home_still_evaluates(dataset, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(home))
    out = tmp_path / "out"
    res = _run("--data", str(dataset), "--decoder", "pretrained", "--prompt", "box",
               "--examples", "0", "-o", str(out))
    assert res.exit_code == 0, res.output
    warnings = [x for x in res.output.splitlines() if x.startswith("Warning:")]
    assert len(warnings) == 1 and f"GEOFLOODSAM_HOME={home}" in warnings[0], res.output
    assert (out / "metrics.csv").is_file() and home.read_text() == "not a folder"
