"""The encoder's precision and runtime (``--precision`` / ``--runtime``) and the cut decoder.

The table of :func:`resolve_encoder` is tested row by row with given CPU flags and OpenVINO
present or not, so the path without the optional extra is exercised wherever the extra is
installed (CI installs it, so that the OpenVINO tests run there instead of skipping).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model import precision as precision_mod
from geofloodsam.model.embedding_cache import PersistentEmbeddingCache, pixel_sha256
from geofloodsam.model.precision import EncoderPlan, cpu_has_bf16, resolve_encoder
from geofloodsam.model.sam import load_model
from tests.conftest import FP32_TORCH

ZEN3 = frozenset({"avx2", "fma", "avx512f"} - {"avx512f"})  # AVX2 only, no bf16 units
SAPPHIRE = frozenset({"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
COOPER = frozenset({"avx2", "avx512f", "avx512_bf16"})
VNNI = frozenset({"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"})  # the measured ISA
HAS_OPENVINO = precision_mod.openvino_available()
needs_openvino = pytest.mark.skipif(
    not HAS_OPENVINO, reason="the optional OpenVINO extra is not installed"
)
needs_int8 = pytest.mark.skipif(
    not (HAS_OPENVINO and precision_mod.nncf_available()),
    reason="the optional int8 extra (OpenVINO and NNCF) is not installed",
)


# --------------------------------------------------------------------------- the table
@pytest.mark.parametrize(
    "flags, openvino, precision, runtime, expected",
    [
        (ZEN3, False, "auto", "auto", ("fp32", "torch")),
        (ZEN3, True, "auto", "auto", ("fp32", "openvino")),
        # bf16 units: still fp32 (bf16 moved masks to IoU 0.69-0.96 of fp32)
        (SAPPHIRE, False, "auto", "auto", ("fp32", "torch")),
        (SAPPHIRE, True, "auto", "auto", ("fp32", "openvino")),
        (COOPER, False, "auto", "torch", ("fp32", "torch")),
        (SAPPHIRE, False, "bf16", "torch", ("bf16", "torch")),
        (SAPPHIRE, True, "fp32", "torch", ("fp32", "torch")),
        (ZEN3, True, "bf16", "auto", ("bf16", "openvino")),
        (ZEN3, False, "fp32", "auto", ("fp32", "torch")),
    ],
)
def test_cpu_rows_of_the_table(flags, openvino, precision, runtime, expected) -> None:
    plan = resolve_encoder(precision, runtime, "cpu", flags=flags, openvino=openvino)
    assert (plan.precision, plan.runtime) == expected
    assert plan.signature == "-".join(expected[::-1])
    assert plan.reason


@pytest.mark.parametrize("flags", [VNNI, ZEN3, SAPPHIRE])
@pytest.mark.parametrize("runtime", ["auto", "openvino"])
def test_int8_only_when_asked(flags, runtime) -> None:
    """``auto`` never takes int8 (IoU 0.92 of fp32 at 16384², docs/performance.md);
    asked for, it runs on OpenVINO wherever that is installed."""
    assert resolve_encoder("auto", runtime, "cpu", flags=flags, openvino=True).precision == "fp32"
    plan = resolve_encoder("int8", runtime, "cpu", flags=flags, openvino=True)
    assert (plan.precision, plan.runtime, plan.signature) == ("int8", "openvino", "openvino-int8")


@pytest.mark.parametrize("bf16, expected", [(True, "bf16"), (False, "fp16")])
def test_cuda_auto_is_autocast(bf16: bool, expected: str) -> None:
    plan = resolve_encoder("auto", "auto", "cuda", cuda_bf16=bf16, openvino=True)
    assert (plan.precision, plan.runtime) == (expected, "torch")
    assert resolve_encoder("fp32", "torch", "cuda").precision == "fp32"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precision": "fp8"}, "unknown precision"),
        ({"precision": "int8", "runtime": "torch"}, "runs on OpenVINO only"),
        ({"precision": "int8", "openvino": False}, "pip install geofloodsam[int8]"),
        ({"precision": "int8", "device_type": "cuda"}, "CPU only"),
        ({"runtime": "tensorrt"}, "unknown runtime"),
        ({"runtime": "openvino", "device_type": "cuda"}, "CPU only"),
        ({"runtime": "openvino", "openvino": False}, "pip install geofloodsam[openvino]"),
    ],
)
def test_impossible_choices_are_one_line_errors(kwargs, message) -> None:
    with pytest.raises(GeofloodsamError, match=message.replace("[", r"\[")):
        resolve_encoder(**{"flags": ZEN3, **kwargs})


def test_bf16_units_from_cpu_flags() -> None:
    assert not cpu_has_bf16(ZEN3)
    assert cpu_has_bf16(SAPPHIRE) and cpu_has_bf16(COOPER)


def test_without_openvino_auto_is_torch(monkeypatch) -> None:
    monkeypatch.setattr(precision_mod, "openvino_available", lambda: False)
    model = load_model("tiny", device="cpu", precision="auto", runtime="auto")
    assert model.runtime == "torch"
    assert model.info()["runtime"] == "torch"
    assert model.info()["precision"] in ("fp32", "bf16")


# --------------------------------------------------------------------------- cache signature
@pytest.mark.parametrize("first, second", [("fp32", "bf16"), ("bf16", "fp32")])
def test_cached_embedding_is_not_reused_across_precisions(tmp_path, first, second) -> None:
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    a = load_model("tiny", device="cpu", precision=first, runtime="torch")
    b = load_model("tiny", device="cpu", precision=second, runtime="torch")
    PersistentEmbeddingCache(tmp_path, a).get(image)
    cache = PersistentEmbeddingCache(tmp_path, b)
    cache.get(image)
    # not reused: each encoder path keeps its own entries (an entry of another path found at
    # this path would be refused as stale: tests/model/test_embedding_cache.py)
    assert (cache.stats.hits, cache.stats.misses, cache.stats.stale) == (0, 1, 0)
    again = PersistentEmbeddingCache(tmp_path, b)
    again.get(image)
    assert again.stats.hits == 1
    for model, precision in ((a, first), (b, second)):
        path = PersistentEmbeddingCache(tmp_path, model).entry_path(pixel_sha256(image), "none")
        entry = torch.load(path, weights_only=True)
        assert entry["signature"]["encoder"] == f"torch-{precision}"


def test_cpu_bf16_autocast_runs_the_encoder_in_bf16(tiny_model) -> None:
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    bf16 = load_model("tiny", device="cpu", precision="bf16", runtime="torch")
    a, b = tiny_model.encode(image).features, bf16.encode(image).features
    assert b.dtype == torch.float32
    assert not torch.equal(a, b)  # rounded through bfloat16 ...
    assert torch.allclose(a, b, atol=0.1, rtol=0.1)  # ... but the same embedding


# --------------------------------------------------------------------------- the decoder
def _reference_lowres(model, features, prompts, multimask):
    """segment-anything's own decoder path (what geofloodsam ran before)."""
    pts = prompts.get("points")
    sparse, dense = model.sam.prompt_encoder(
        points=None if pts is None else (pts, prompts["labels"]),
        boxes=prompts.get("boxes"), masks=prompts.get("mask_input"),
    )
    return model.sam.mask_decoder(
        image_embeddings=features[None], image_pe=model.sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
        multimask_output=multimask,
    )


PROMPTS = {
    "one point, multimask": ({"points": [[[20.5, 12.5]]], "point_labels": [[1]]}, True),
    "points of 3 objects": ({"points": [[[5.5, 5.5], [30.5, 20.5]], [[9.5, 30.5], [1.5, 1.5]],
                                        [[40.5, 8.5], [0, 0]]],
                             "point_labels": [[1, 0], [1, 1], [1, -1]]}, False),
    "boxes": ({"boxes": [[2, 3, 30, 40], [10, 10, 50, 30]]}, False),
    "mask input": ({"points": [[[20.5, 12.5]]], "point_labels": [[1]],
                    "mask_input": np.random.default_rng(2).normal(size=(1, 1, 256, 256))},
                   False),
}


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_cut_decoder_equals_segment_anything(tiny_model, name) -> None:
    kwargs, multimask = PROMPTS[name]
    image = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    emb = tiny_model.encode(image)
    prompts = tiny_model.prompt_tensors(emb.original_size, **kwargs)
    with torch.inference_mode():
        ref_masks, ref_iou = _reference_lowres(tiny_model, emb.features, prompts, multimask)
        masks, iou = tiny_model.decode_lowres(emb.features, prompts, multimask)
    assert masks.shape == ref_masks.shape and iou.shape == ref_iou.shape
    torch.testing.assert_close(masks, ref_masks, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(iou, ref_iou, atol=1e-5, rtol=1e-5)


def test_cut_decoder_stays_differentiable(tiny_model) -> None:
    emb = tiny_model.encode(np.zeros((32, 32, 3), np.uint8))
    prompts = tiny_model.prompt_tensors(emb.original_size, boxes=[[2, 2, 20, 20]])
    weight = tiny_model.sam.mask_decoder.iou_token.weight
    weight.requires_grad_(True)
    try:
        masks, iou = tiny_model.decode_lowres(emb.features, prompts)
        (masks.mean() + iou.sum()).backward()
        assert weight.grad is not None and torch.isfinite(weight.grad).all()
    finally:
        weight.requires_grad_(False)
        weight.grad = None


def test_dense_pe_is_cached_and_follows_the_weights() -> None:
    model = load_model("tiny", device="cpu", seed=4, **FP32_TORCH)
    first = model.dense_pe()
    assert model.dense_pe() is first
    torch.testing.assert_close(first, model.sam.prompt_encoder.get_dense_pe())
    with torch.no_grad():
        model.sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.mul_(2)
    second = model.dense_pe()
    assert second is not first
    torch.testing.assert_close(second, model.sam.prompt_encoder.get_dense_pe())


# --------------------------------------------------------------------------- OpenVINO
@needs_openvino
def test_openvino_matches_torch_and_caches_its_graphs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path))
    torch_model = load_model("tiny", device="cpu", seed=5, **FP32_TORCH)
    ov_model = load_model("tiny", device="cpu", seed=5, precision="fp32", runtime="openvino")
    assert ov_model.info()["runtime"] == "openvino"
    graphs = sorted(p.name.split("-")[0] for p in (tmp_path / "openvino").glob("*.xml"))
    assert graphs == ["encoder"]  # the mask decoder stays in torch
    image = np.random.default_rng(6).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    a, b = torch_model.encode(image), ov_model.encode(image)
    torch.testing.assert_close(a.features, b.features, atol=1e-4, rtol=1e-4)
    for kwargs, multimask in PROMPTS.values():  # one embedding: the same torch decoder
        pa = torch_model.decode(a, multimask=multimask, **kwargs)
        pb = ov_model.decode(a, multimask=multimask, **kwargs)
        np.testing.assert_array_equal(pa.low_res, pb.low_res)
        np.testing.assert_array_equal(pa.iou, pb.iou)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "openvino").glob("*.xml")}
    load_model("tiny", device="cpu", seed=5, precision="fp32", runtime="openvino")  # read only
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


@pytest.mark.slow
@needs_openvino
@pytest.mark.parametrize("decoder", ["satellite", "satellite-decoder-only"])
def test_early_encoder_is_the_one_that_runs(tmp_path, monkeypatch, mobile_sam_path, decoder):
    """The graph compiled while torch builds the model is that of the model's own encoder
    (an adapted model's adapters included): loading and a first encode compile it once."""
    from geofloodsam.model import openvino_runtime

    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path))
    load_model("vit_t", checkpoint=mobile_sam_path, decoder=decoder, device="cpu",
               runtime="openvino")  # converts the IR, once
    compiled: list[str] = []
    compile_graph = openvino_runtime._OpenVinoGraph._compile

    def counted(graph, config):
        compiled.append(graph.path.name)
        return compile_graph(graph, config)

    monkeypatch.setattr(openvino_runtime._OpenVinoGraph, "_compile", counted)
    model = load_model("vit_t", checkpoint=mobile_sam_path, decoder=decoder, device="cpu",
                       runtime="openvino")
    model.encode(np.zeros((64, 64, 3), np.uint8))
    assert len(compiled) == 1
    assert model._openvino_encoders[model.encoder_sha256] is model._openvino
    assert (model.encoder_sha256 is not None) == (decoder == "satellite")


@needs_openvino
def test_early_encoder_compile_recovers_from_a_broken_cached_ir(tmp_path, monkeypatch) -> None:
    """MobileSAM's cached encoder IR compiles while torch builds the model; a broken entry
    is converted again from the module once it is there."""
    from geofloodsam.model import sam, tinyvit
    from geofloodsam.model.openvino_runtime import OpenVinoEncoder
    from geofloodsam.model.precision import EncoderPlan

    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path))
    plan = EncoderPlan("fp32", "openvino", "test")
    assert sam._early_openvino_encoder("vit_t", "abc", plan, None) is None  # nothing cached
    probe = OpenVinoEncoder(lambda: None, 1024, "fp32", "vit_t", "abc", source=tinyvit)
    probe.graph.path.parent.mkdir(parents=True, exist_ok=True)
    probe.graph.path.write_text("not an IR")
    probe.graph.path.with_suffix(".bin").write_bytes(b"")
    early = sam._early_openvino_encoder("vit_t", "abc", plan, None)
    assert early is not None and early.graph.path == probe.graph.path
    tiny = load_model("tiny", device="cpu", seed=3, **FP32_TORCH)
    early.use_module(tiny.sam.image_encoder)
    early.prepare()
    x = torch.rand(1, 3, 1024, 1024, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = tiny.sam.image_encoder(x)
    torch.testing.assert_close(early(x), expected, atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------- int8
def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@needs_int8
def test_int8_encoder_is_compressed_cached_and_signed(tmp_path, monkeypatch) -> None:
    """``--precision int8`` through the same code path with a tiny random SAM: the cached IR
    holds int8 weights, its signature is checked, a stale entry is refused and made again."""
    from geofloodsam.model.openvino_int8 import INT8_RECIPE

    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path))
    ref = load_model("tiny", device="cpu", seed=5, **FP32_TORCH)
    model = load_model("tiny", device="cpu", seed=5, precision="int8", runtime="openvino")
    assert (model.precision, model.runtime, model.encoder_signature) == (
        "int8", "openvino", "openvino-int8")
    [xml] = (tmp_path / "openvino").glob("encoder-*.xml")
    assert 'element_type="u8"' in xml.read_text()  # int8 weights (asymmetric: u8 + zero point)
    signature = json.loads(xml.with_suffix(".json").read_text())
    assert json.loads(signature["recipe"])["mode"] == INT8_RECIPE["mode"]
    image = np.random.default_rng(6).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    a, b = ref.encode(image).features, model.encode(image).features
    assert not torch.allclose(a, b, atol=1e-5)  # not the fp32 graph
    assert _cosine(a, b) > 0.99
    stamp = xml.stat().st_mtime_ns
    load_model("tiny", device="cpu", seed=5, precision="int8", runtime="openvino")
    assert xml.stat().st_mtime_ns == stamp  # signed entry read, not made again
    bin_path = xml.with_suffix(".bin")
    data = bytearray(bin_path.read_bytes())
    data[-1] ^= 0xFF  # weights that do not match the signature
    bin_path.write_bytes(bytes(data))
    again = load_model("tiny", device="cpu", seed=5, precision="int8", runtime="openvino")
    assert bin_path.read_bytes() != bytes(data)  # refused and made again
    torch.testing.assert_close(again.encode(image).features, b, atol=1e-5, rtol=1e-5)


@needs_int8
def test_int8_graph_apart_from_fp32(tmp_path, monkeypatch) -> None:
    """fp32 and int8 of one encoder are two cache entries, and its embeddings are signed
    ``openvino-int8`` (never reused for fp32)."""
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path))
    for precision in ("fp32", "int8"):
        load_model("tiny", device="cpu", seed=4, precision=precision, runtime="openvino")
    assert len(list((tmp_path / "openvino").glob("encoder-*.xml"))) == 2
    assert len(list((tmp_path / "openvino").glob("encoder-*.json"))) == 1  # int8's signature


@needs_int8
def test_int8_graph_made_once_runs_without_nncf(tmp_path, monkeypatch) -> None:
    """NNCF makes the graph; a cached graph runs without it; without it and no cached
    graph, one line says what to install."""
    from geofloodsam.model import openvino_int8

    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path / "made"))
    load_model("tiny", device="cpu", seed=2, precision="int8", runtime="openvino")
    monkeypatch.setattr(openvino_int8, "nncf_available", lambda: False)
    model = load_model("tiny", device="cpu", seed=2, precision="int8", runtime="openvino")
    assert model.encode(np.zeros((32, 32, 3), np.uint8)).features.shape[0] > 0
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path / "fresh"))
    with pytest.raises(GeofloodsamError, match=r"pip install geofloodsam\[int8\]"):
        load_model("tiny", device="cpu", seed=2, precision="int8", runtime="openvino")


def test_int8_on_torch_is_a_one_line_cli_error(tmp_path) -> None:
    from click.testing import CliRunner

    from geofloodsam.cli import main

    scene = Path(__file__).resolve().parents[2] / "sample_tiles" / "riverside_rgb.tif"
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["segment", str(scene), "-o", str(out), "--model", "tiny",
                                       "--device", "cpu", "--precision", "int8", "--runtime",
                                       "torch", "-q"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: --precision int8 runs on OpenVINO only: use --runtime openvino (or auto), or "
        "--precision fp32 / bf16 with --runtime torch."]
    assert not out.exists()


# --------------------------------------------------------------------------- real weights
def _water_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def riverside_tile() -> np.ndarray:
    root = Path(__file__).resolve().parents[2]
    with rasterio.open(root / "sample_tiles" / "riverside_rgb.tif") as ds:
        data = ds.read([1, 2, 3], window=((128, 1152), (768, 1792)))  # 40 % water
    return np.ascontiguousarray(data.transpose(1, 2, 0)).astype(np.uint8)


#: the least mask IoU against torch fp32 on the demo tile: the ``auto`` path (OpenVINO fp32)
#: must keep the issue's 0.98; the opt-in int8 path is held to 0.95, as bf16 with adapters is
#: (the ``flood`` file of stop 31 gives 0.964 for its point mask on a Zen 5 with VNNI, the
#: first adapted file 0.979-0.985; a guard against a broken quantisation, set after seeing
#: these figures on this tile, not a figure validated on other data)
LEAST_IOU = {"fp32": 0.98, "bf16": 0.98, "int8": 0.95}


def _paths() -> list:
    """(precision, runtime, model): the decoder-only model on every faster path, the adapted
    ``flood`` and ``satellite`` models (adapters merged) on the OpenVINO ones."""
    paths = [pytest.param(("bf16", "torch", "flood-decoder-only"), id="torch-bf16")]
    for model in ("flood-decoder-only", "flood", "satellite"):
        paths.append(pytest.param(("fp32", "openvino", model), id=f"openvino-fp32-{model}",
                                  marks=needs_openvino))
        paths.append(pytest.param(("int8", "openvino", model), id=f"openvino-int8-{model}",
                                  marks=needs_int8))
    return paths


#: the two prompts of :func:`_mask_ious` (decode kwargs, multimask)
TILE_PROMPTS = [({"points": [[[800.5, 597.5]]], "point_labels": [[1]]}, True),
           ({"boxes": [[480, 0, 1024, 1024]]}, False)]
#: torch fp32 masks of the riverside tile per model, made once for the module's tests
_REFERENCE: dict[str, list[np.ndarray]] = {}


def _reference_masks(mobile_sam_path, tile, decoder) -> list[np.ndarray]:
    """The masks of :data:`TILE_PROMPTS` on ``tile`` with torch fp32 (the reference path)."""
    if decoder not in _REFERENCE:
        ref = load_model("vit_t", checkpoint=mobile_sam_path, decoder=decoder, device="cpu",
                         precision="fp32", runtime="torch")
        emb = ref.encode(tile)
        _REFERENCE[decoder] = [ref.decode(emb, multimask=multimask, **kwargs).best_logits()[0] > 0
                               for kwargs, multimask in TILE_PROMPTS]
    return _REFERENCE[decoder]


def _mask_ious(mobile_sam_path, tile, precision, runtime, decoder) -> list[float]:
    """IoU of the masks of one real tile (a point and a box prompt) on a faster path against
    torch fp32, for the model ``decoder``."""
    masks = _reference_masks(mobile_sam_path, tile, decoder)
    other = load_model("vit_t", checkpoint=mobile_sam_path, decoder=decoder, device="cpu",
                       precision=precision, runtime=runtime)
    assert other.encoder_plan == EncoderPlan(precision, runtime, other.encoder_plan.reason)
    emb = other.encode(tile)
    ious = []
    for a, (kwargs, multimask) in zip(masks, TILE_PROMPTS, strict=True):
        b = other.decode(emb, multimask=multimask, **kwargs).best_logits()[0] > 0
        assert a.any()
        ious.append(_water_iou(a, b))
    print(f"{precision}/{runtime}/{decoder}: mask IoU vs fp32 {ious}")
    return ious


@pytest.mark.slow
@pytest.mark.parametrize("path", _paths())
def test_faster_paths_keep_masks_close_to_fp32(
    mobile_sam_path, riverside_tile, path, tmp_path, monkeypatch
) -> None:
    """The faster paths keep one real tile's masks close to torch fp32 (a tile of the README
    demo, a point and a box prompt), for the decoder-only model and, on OpenVINO, for the
    adapted models with their adapters merged: within IoU 0.98 on the ``auto`` path and bf16,
    0.95 on int8 (:data:`LEAST_IOU`). ``auto`` does not take bf16, which passes here but not
    on the tiled synthetic scenes, nor int8 (int8 weights on OpenVINO), which is 0.964-0.999
    here on an AVX-512 VNNI CPU (0.964: the adapted ``flood`` model's point mask), 0.979 on
    an AVX2 one with the first adapted file, and 0.92 at 16384² (docs/performance.md)."""
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path))
    least = LEAST_IOU[path[0]]
    assert min(_mask_ious(mobile_sam_path, riverside_tile, *path)) >= least


@pytest.mark.slow
def test_bf16_runs_the_adapted_model_less_faithfully(
    mobile_sam_path, riverside_tile, tmp_path, monkeypatch
) -> None:
    """bf16 runs the adapted ``flood`` model (adapters merged into weights that autocast
    rounds to bf16), but its masks are less faithful to fp32 than the decoder-only model's:
    IoU 0.975 on this tile against the 0.98 of the faster paths (docs/performance.md). It is
    not an ``auto`` path; this checks that it works and stays close."""
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(tmp_path))
    assert min(_mask_ious(mobile_sam_path, riverside_tile, "bf16", "torch", "flood")) >= 0.95


@pytest.mark.parametrize("size", [(1024, 1024), (1024, 696), (864, 1024), (37, 53), (600, 600)])
def test_cropped_upscale_equals_the_full_interpolation(tiny_model, size) -> None:
    from geofloodsam.geo import transforms
    from geofloodsam.model.sam import Embedding

    low = torch.from_numpy(np.random.default_rng(8).normal(size=(2, 1, 256, 256))).float()
    emb = Embedding(torch.zeros(1), size, transforms.resized_size(size, 1024))
    full = torch.nn.functional.interpolate(low, (1024, 1024), mode="bilinear",
                                           align_corners=False)
    full = full[..., : emb.input_size[0], : emb.input_size[1]]
    if tuple(emb.input_size) != size:
        full = torch.nn.functional.interpolate(full, size, mode="bilinear", align_corners=False)
    out = tiny_model.upscale(low, emb)
    assert out.shape == full.shape
    torch.testing.assert_close(out, full, atol=1e-6, rtol=1e-6)
