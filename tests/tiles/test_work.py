"""The per-tile work: cropped decoding gives what whole-tile decoding gives, in bounded memory;
the embedding keeper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geofloodsam.model.logits import sigmoid
from geofloodsam.model.sam import Embedding, Prediction
from geofloodsam.tiles.growth import PROMPTLESS_JOIN_PIXELS, Appearance, connected_water, dilated
from geofloodsam.tiles.store import PROB_EPS
from geofloodsam.tiles.tasks import ChunkResult, Seed
from geofloodsam.tiles.work import DECODE_CHUNK, RunEmbeddings, decode_seeds, featureless

H, W = 96, 128


def _blobs(seed: int) -> np.ndarray:
    """(H, W) logits: a few round bumps over a low floor (several components)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    out = np.full((H, W), -12.0, np.float32)
    for _ in range(3):
        cx, cy, r = rng.uniform(0, W), rng.uniform(0, H), rng.uniform(6, 30)
        out = np.maximum(out, (8.0 * (1 - np.hypot(xx - cx, yy - cy) / r)).astype(np.float32))
    return out


class FixedLogits:
    """A model whose k-th decoded prompt gets the k-th prepared logits."""

    def __init__(self, logits: list[np.ndarray]) -> None:
        self.logits, self.calls, self.next = logits, [], 0

    def decode(self, embedding, points=None, point_labels=None, boxes=None, mask_input=None,
               multimask=False):
        n = len(boxes) if boxes is not None else len(points)
        self.calls.append(n)
        out = np.stack(self.logits[self.next : self.next + n])[:, None]
        self.next += n
        return Prediction(out, np.ones((n, 1), np.float32), np.zeros((n, 1, 1, 1), np.float32))


def _seeds(n: int) -> list[Seed]:
    rng = np.random.default_rng(1)
    seeds = []
    for k in range(n):
        pts = rng.uniform([0, 0], [W, H], (2, 2))
        if k % 3 == 2:
            seeds.append(Seed(k + 1, box=np.array([0.0, 0.0, W, H])))
        else:
            # a negative point: never skipped as covered (see the test below)
            seeds.append(Seed(k + 1, pts, np.array([1, 0]), propagate=True, carried=k % 3 == 1))
    return seeds


def _whole_tile_growth(probs: np.ndarray, seeds: list[Seed], threshold: float) -> dict:
    """The growth rule written on whole tiles: each growing seed's water connected to its
    positive points; a carried seed's probability cut to that water, dilated (in place)."""
    connected = {}
    for k, seed in enumerate(seeds):
        if seed.propagate:
            water = connected_water(probs[k] > threshold, seed.points[seed.labels == 1])
            connected[k] = water
            if seed.carried:
                probs[k][~dilated(water)] = 0.0
    return connected


@pytest.mark.parametrize("threshold", [0.5, 0.001])
def test_cropped_decoding_equals_whole_tile_decoding(threshold) -> None:
    n = 2 * DECODE_CHUNK + 3
    seeds = _seeds(n)
    # the fake model is called per prompt kind: points first, then boxes
    order = [k for k, s in enumerate(seeds) if s.box is None] + [
        k for k, s in enumerate(seeds) if s.box is not None]
    logits = {k: _blobs(k) for k in range(n)}
    logits[0] = np.full((H, W), -20.0, np.float32)  # decodes to nothing
    model = FixedLogits([logits[k] for k in order])
    out = ChunkResult()
    emb = Embedding(None, (H, W), (H, W))
    crops, connected = decode_seeds(model, emb, seeds, out, threshold)
    assert out.prompt_decodes == n and max(model.calls) <= DECODE_CHUNK
    reference = np.stack([sigmoid(logits[k]) for k in range(n)])
    ref_connected = _whole_tile_growth(reference, seeds, threshold)
    floor = min(PROB_EPS, threshold)
    for k in range(n):
        c = crops[k]
        assert c.data.dtype == np.float16
        inside = np.zeros((H, W), bool)
        inside[c.r0 : c.r1, c.c0 : c.c1] = True
        # the crop is the bounding box of the pixels above the floor, with their values
        assert not (reference[k][~inside] > floor).any()
        np.testing.assert_array_equal(c.data, reference[k][inside].reshape(c.data.shape)
                                      .astype(np.float16))
        if c.data.size:
            above = reference[k][c.r0 : c.r1, c.c0 : c.c1] > floor
            assert above[0].any() and above[-1].any() and above[:, 0].any() and above[:, -1].any()
        if seeds[k].propagate:
            np.testing.assert_array_equal(connected[k].full((H, W)), ref_connected[k])
        else:
            assert k not in connected
    assert crops[0].data.size == 0 and connected[0].data.size == 0


def test_points_in_water_already_mapped_in_the_tile_are_not_decoded_again(monkeypatch) -> None:
    lake = np.full((H, W), -12.0, np.float32)
    lake[20:60, 30:90] = 9.0  # what every click in the lake decodes to
    clicks = [(40.5, 30.5), (60.5, 50.5), (85.5, 25.5)]  # three objects, all in the lake
    seeds = [Seed(k + 1, np.array([p]), np.array([1]), propagate=True)
             for k, p in enumerate(clicks)]
    seeds.append(Seed(9, np.array([(50.5, 40.5), (5.5, 5.5)]), np.array([1, 0]),
                      propagate=True))  # a negative point: decoded all the same
    seeds.append(Seed(10, np.array([(10.5, 80.5)]), np.array([1]), propagate=True))  # dry land
    model = FixedLogits([lake] * 40)
    out = ChunkResult()
    crops, connected = decode_seeds(model, Embedding(None, (H, W), (H, W)), seeds, out)
    # the first call takes POINT_CHUNK (4) single clicks: 1, 2, 3 and the dry one
    assert out.covered_seeds == 0 and out.prompt_decodes == 5
    # with one seed per call, clicks 2 and 3 find the lake mapped
    monkeypatch.setattr("geofloodsam.tiles.work.POINT_CHUNK", 1)
    out = ChunkResult()
    model = FixedLogits([lake] * 40)
    crops, connected = decode_seeds(model, Embedding(None, (H, W), (H, W)), seeds, out)
    assert out.covered_seeds == 2 and out.prompt_decodes == 3
    assert crops[0].data.size and not crops[1].data.size and not crops[2].data.size
    assert crops[3].data.size and connected[1].data.size == 0
    assert (crops[0].full((H, W)) > 0.5).sum() == 40 * 60


def test_featureless_tiles() -> None:
    flat = np.zeros((8, 8, 3), np.uint8)
    valid = np.ones((8, 8), bool)
    assert featureless(flat, valid)
    textured = flat.copy()
    textured[3, 4] = 9
    assert not featureless(textured, valid)
    valid[3, 4] = False  # the only other colour is nodata
    assert featureless(textured, valid)
    assert not featureless(flat, np.zeros((8, 8), bool))  # nothing valid: not "featureless"


def test_embedding_keeper_spills_beyond_its_cap(tmp_path) -> None:
    keeper = RunEmbeddings(tmp_path / "emb", max_bytes=3000)
    embs = {i: Embedding(torch.rand(4, 16, 16), (100, 90), (1024, 922)) for i in range(3)}
    for i, emb in embs.items():
        keeper.put(i, emb)
    assert len(list((tmp_path / "emb").glob("*.pt"))) == 2  # 2048 bytes each: one in memory
    for i, emb in embs.items():
        back = keeper.get(i)
        assert i in keeper and back.original_size == (100, 90) and back.input_size == (1024, 922)
        torch.testing.assert_close(back.features, emb.features, atol=1e-3, rtol=1e-3)
class ThreeCandidates:
    """A model whose point decodes give three candidates (the last, whole-tile water, with
    the highest predicted IoU) and whose whole-tile box gives ``promptless``."""

    def __init__(self, candidates: list[np.ndarray], promptless: np.ndarray) -> None:
        self.candidates, self.promptless = np.stack(candidates), promptless

    def decode(self, embedding, points=None, point_labels=None, boxes=None, mask_input=None,
               multimask=False):
        if points is None:
            n = len(boxes)
            out = np.repeat(self.promptless[None, None], n, axis=0)
            return Prediction(out, np.ones((n, 1), np.float32), np.zeros((n, 1, 1, 1)))
        n = len(points)
        out = np.repeat(self.candidates[None], n, axis=0)
        iou = np.tile(np.array([0.5, 0.6, 0.9], np.float32), (n, 1))
        return Prediction(out, iou, np.zeros((n, 3, 1, 1), np.float32))


def test_a_click_in_the_promptless_water_keeps_its_promptless_body() -> None:
    small = np.full((H, W), -12.0, np.float32)
    small[25:35, 40:50] = 9.0  # a candidate covering part of the lake
    everything = np.full((H, W), 9.0, np.float32)  # the highest predicted IoU: the whole tile
    promptless = np.full((H, W), -12.0, np.float32)
    promptless[20:60, 30:90] = 9.0  # the lake
    promptless[78:94, 100:120] = 9.0  # another body, not clicked, beyond the join gap
    model = ThreeCandidates([small, small, everything], promptless)
    seeds = [Seed(1, np.array([(40.5, 30.5)]), np.array([1]), propagate=True),
             Seed(2, np.array([(110.5, 10.5)]), np.array([1]), propagate=True)]  # dry there
    out = ChunkResult()
    emb = Embedding(None, (H, W), (H, W))
    evidence = promptless  # what run_chunk decodes with the whole-tile box
    crops, connected = decode_seeds(model, emb, seeds, out, evidence=evidence)
    lake = np.zeros((H, W), bool)
    lake[20:60, 30:90] = True
    np.testing.assert_array_equal(crops[0].full((H, W)) > 0.5, lake)
    np.testing.assert_array_equal(connected[0].full((H, W)), lake)
    # the dry click falls back to the candidate choice (no colours: the highest IoU) among
    # the candidates that do not flood the tile
    np.testing.assert_array_equal(crops[1].full((H, W)) > 0.5, small > 0)
    # without evidence the lake click also keeps the whole-tile candidate
    crops, _ = decode_seeds(model, emb, seeds, ChunkResult())
    assert (crops[0].full((H, W)) > 0.5).all()


@pytest.mark.parametrize(("gap", "carried"), [(6, False), (30, False), (6, True)])
def test_a_click_keeps_the_promptless_water_across_a_broken_channel(
    gap: int, carried: bool
) -> None:
    """A lake and a river whose joining channel the promptless map breaks: the click on the
    lake keeps the river when the gap is within twice ``PROMPTLESS_JOIN_PIXELS``, and its
    water for growth is both; a river further away is another body. A seed carried into
    a neighbour follows the water connected to it, as before: the join is the click's."""
    small = np.full((H, W), -12.0, np.float32)
    small[25:35, 30:40] = 9.0
    promptless = np.full((H, W), -12.0, np.float32)
    promptless[20:60, 10:50] = 9.0  # the lake
    promptless[35:45, 50 + gap :] = 9.0  # the river, to the tile's right edge
    model = ThreeCandidates([small, small, small], promptless)
    seeds = [Seed(1, np.array([(30.5, 30.5)]), np.array([1]), propagate=True, carried=carried)]
    crops, connected = decode_seeds(model, Embedding(None, (H, W), (H, W)), seeds,
                                    ChunkResult(), evidence=promptless)
    lake = np.zeros((H, W), bool)
    lake[20:60, 10:50] = True
    river = np.zeros((H, W), bool)
    river[35:45, 50 + gap :] = True
    joined = gap <= 2 * PROMPTLESS_JOIN_PIXELS and not carried
    expected = lake | river if joined else lake
    np.testing.assert_array_equal(crops[0].full((H, W)) > 0.5, expected)
    np.testing.assert_array_equal(connected[0].full((H, W)), expected)


@pytest.mark.parametrize("agree", [True, False])
def test_a_carried_seed_keeps_a_sea_of_another_colour_when_every_candidate_is_it(
    agree: bool
) -> None:
    """A sea whose colour changes from tile to tile: in this tile the promptless body of a
    carried seed floods 80 % of the tile with a colour the object's appearance does not
    know. It is the object's when SAM's three candidates at the seed are that body too; when
    one candidate is a small part (an ambiguous click, a decoder that calls the tile water),
    the seed maps nothing (no candidate under the cap, none of the object's colour)."""
    rgb, lake, _ = _lake_tile()
    promptless = np.where(lake, 9.0, -12.0).astype(np.float32)
    big = promptless.copy()
    small = np.full((H, W), -12.0, np.float32)
    small[30:50, 10:40] = 9.0
    model = ThreeCandidates([big if agree else small, big, big], promptless)
    sand = Appearance(np.array([[200.0, 200.0, 200.0]], np.float32), 28.0)  # not the sea's
    seed = Seed(1, np.array([(20.5, 40.5)]), np.array([1]), propagate=True, carried=True,
                appearance=sand)
    emb = Embedding(None, (H, W), (H, W))
    crops, _ = decode_seeds(model, emb, [seed], ChunkResult(), rgb=rgb, evidence=promptless)
    water = crops[0].full((H, W)) > 0.5
    if agree:
        np.testing.assert_array_equal(water, lake)
    else:
        assert not water.any()


def _lake_tile() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb, lake, promptless logits): a dark lake over 80 % of the tile (x < 102) and a bright
    shore; the promptless map sees only the lake's east half (x >= 64)."""
    rgb = np.full((H, W, 3), 200, np.uint8)
    rgb[:, :102] = 40
    lake = np.zeros((H, W), bool)
    lake[:, :102] = True
    promptless = np.full((H, W), -12.0, np.float32)
    promptless[:, 64:102] = 9.0
    return rgb, lake, promptless


@pytest.mark.parametrize(("promptless_half", "carried", "kept"), [
    (True, False, True),  # a user's click in the lake's middle: the lake
    (False, False, False),  # no promptless water in it: a block of land of the click's colour
    (True, True, False),  # a seed carried into a neighbour never takes a tile-flooding mask
])
def test_a_click_beside_the_promptless_water_keeps_a_lake_both_evidences_back(
    promptless_half, carried, kept
) -> None:
    """A click in the middle of a lake the promptless map sees only part of keeps the
    candidate that floods most of the tile when the click's colour and the promptless water
    back it; without promptless water in it, or for a carried seed, only the small one."""
    rgb, lake, promptless = _lake_tile()
    if not promptless_half:
        promptless[:] = -12.0
        promptless[:4, 120:] = 9.0  # some water elsewhere: the evidence exists
    small = np.full((H, W), -12.0, np.float32)
    small[30:50, 10:40] = 9.0
    big = np.where(lake, 9.0, -12.0).astype(np.float32)
    model = ThreeCandidates([small, big, big], promptless)
    seed = Seed(1, np.array([(20.5, 40.5)]), np.array([1]), propagate=True, carried=carried)
    emb = Embedding(None, (H, W), (H, W))
    crops, _ = decode_seeds(model, emb, [seed], ChunkResult(), rgb=rgb, evidence=promptless)
    water = crops[0].full((H, W)) > 0.5
    if kept:
        np.testing.assert_array_equal(water, lake)
    elif carried:
        assert not water[:, 40:].any()  # never the tile-flooding candidate
    else:
        np.testing.assert_array_equal(water, small > 0)


def _ponds_and_field() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(rgb, promptless logits, parts): two dark ponds and a brown field, all of them water
    to the promptless map, on bright land."""
    rgb = np.full((H, W, 3), 200, np.uint8)
    parts = {name: np.zeros((H, W), bool) for name in ("west", "east", "field")}
    parts["west"][10:40, 10:40] = True
    parts["east"][10:40, 80:110] = True
    parts["field"][60:90, 40:100] = True
    rgb[parts["west"] | parts["east"]] = (30, 40, 60)
    rgb[parts["field"]] = (120, 90, 40)
    wet = parts["west"] | parts["east"] | parts["field"]
    return rgb, np.where(wet, 9.0, -12.0).astype(np.float32), parts


@pytest.mark.parametrize("negative", [False, True])
def test_the_water_alike_keeps_the_promptless_water_of_the_clicked_colours(
    negative: bool,
) -> None:
    """A water-alike seed maps the tile's promptless water that looks like the scene's
    clicks (both dark ponds, not the brown field SAM also calls water), with no decode of
    its own; a negative point in a pond takes that pond out."""
    rgb, promptless, parts = _ponds_and_field()
    model = ThreeCandidates([promptless] * 3, promptless)
    dark = Appearance(np.array([[30.0, 40.0, 60.0]], np.float32), 28.0)
    points = np.array([(90.5, 20.5)]) if negative else np.zeros((0, 2))
    seed = Seed(1, points, np.zeros(len(points), np.int64), appearance=dark, alike=True)
    out = ChunkResult()
    crops, connected = decode_seeds(model, Embedding(None, (H, W), (H, W)), [seed], out,
                                    rgb=rgb, evidence=promptless)
    expected = parts["west"] if negative else parts["west"] | parts["east"]
    np.testing.assert_array_equal(crops[0].full((H, W)) > 0.5, expected)
    assert connected == {} and out.prompt_decodes == 0  # grows nowhere, costs no decode


def test_the_water_alike_maps_nothing_without_promptless_evidence() -> None:
    rgb, promptless, _ = _ponds_and_field()
    dark = Appearance(np.array([[30.0, 40.0, 60.0]], np.float32), 28.0)
    seed = Seed(1, np.zeros((0, 2)), np.zeros(0, np.int64), appearance=dark, alike=True)
    crops, _ = decode_seeds(ThreeCandidates([promptless] * 3, promptless),
                            Embedding(None, (H, W), (H, W)), [seed], ChunkResult(), rgb=rgb)
    assert crops[0].data.size == 0
