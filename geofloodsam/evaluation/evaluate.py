"""Score decoders × prompt types on a data set with ground truth (``geofloodsam evaluate``).

* The base model is loaded once; every decoder (``pretrained``, ``flood`` or a fine-tuned
  file) is a copy of the mask decoder swapped in for its turn, and image embeddings come from
  the shared :class:`~geofloodsam.model.embedding_cache.EmbeddingCache`, so several decoders cost
  one encoder pass per image.
* Prompts are derived once per image from the ground truth
  (:mod:`geofloodsam.datasets.truth_prompts`:
  ``box`` = box of all water, ``point`` = deepest pixel of the largest water body, ``none`` =
  the whole-image box used when segmenting without prompts). They are deterministic and
  saved to ``prompts.json``; a saved file can be given back to score on exactly those prompts.
* Scores are computed at the image's full resolution with nodata excluded
  (:mod:`geofloodsam.evaluation.metrics`); :mod:`geofloodsam.evaluation.report` turns them
  into tables and plots.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from geofloodsam.datasets.truth_prompts import default_prompts
from geofloodsam.errors import GeofloodsamError
from geofloodsam.evaluation import report
from geofloodsam.evaluation.metrics import confusion
from geofloodsam.model.decoders import Decoder, load_decoders, use_decoder
from geofloodsam.model.sam import Embedding, SamModel
from geofloodsam.vector.prompts import WHOLE_IMAGE, whole_image_box

PROMPT_TYPES = ("point", "box", WHOLE_IMAGE)
PROMPTS_FORMAT = "geofloodsam-prompts/1"
#: longest side of the collage thumbnails, pixels
THUMB_SIDE = 200
#: samples whose embeddings are fetched from the cache together (batched encoding on misses)
CHUNK = 8


# ---------------------------------------------------------------------------- prompts
def image_prompts(water: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
    """All prompt types of one image, from its valid water pixels, plus its ``size``."""
    h, w = water.shape
    prompts = default_prompts(np.asarray(water, bool) & np.asarray(valid, bool))
    prompts[WHOLE_IMAGE] = {"box": whole_image_box(w, h).tolist()}
    return {"size": [int(h), int(w)], **prompts}


def prompts_document(prompts: dict[str, dict[str, Any]], source: dict[str, Any]) -> dict[str, Any]:
    """The content of ``prompts.json``: format marker, where the prompts came from, prompts."""
    return {
        "format": PROMPTS_FORMAT,
        "source": source,
        "description": {
            "box": "x0, y0, x1, y1 pixel edges of the box around all water",
            "point": "x, y pixel centre of the deepest pixel of the largest water body (label 1)",
            WHOLE_IMAGE: "the whole-image box, as segmenting without prompts",
            "coordinates": "x = column, y = row, pixel centres at +0.5, full-resolution image",
        },
        "images": prompts,
    }


def read_prompts_file(path: str | Path, samples: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Prompts of ``samples`` from a saved ``prompts.json``; one-line errors if they do not fit."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeofloodsamError(
            f"cannot read prompts file {path} ({type(exc).__name__}): give a prompts.json "
            "written by `geofloodsam evaluate`."
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != PROMPTS_FORMAT:
        raise GeofloodsamError(
            f"{path} is not a geofloodsam prompts file (no '{PROMPTS_FORMAT}' marker): give a "
            "prompts.json written by `geofloodsam evaluate`."
        )
    images = doc.get("images", {})
    out = {}
    for s in samples:
        entry = images.get(s.id)
        if entry is None:
            raise GeofloodsamError(
                f"prompts file {path} has no prompts for image {s.id!r}: it was made for "
                "another data set or split; drop --prompts-file to derive new prompts."
            )
        if list(entry.get("size", [])) != list(s.size()):
            raise GeofloodsamError(
                f"prompts file {path} was made for a {entry.get('size')} (HxW) image {s.id!r}, "
                f"but it is {list(s.size())}: drop --prompts-file to derive new prompts."
            )
        out[s.id] = entry
    return out


# ---------------------------------------------------------------------------- decoding
def predict(
    model: SamModel, embedding: Embedding, prompt_type: str, prompt: dict[str, Any]
) -> tuple[np.ndarray, float | None]:
    """Water mask (at the image's resolution) and predicted IoU for one prompt.

    ``point`` decodes three masks and keeps the one with the highest predicted IoU; ``box``
    and ``none`` decode one mask. Without a prompt (no water in the truth) the prediction is
    empty and the predicted IoU None.
    """
    h, w = embedding.original_size
    if prompt_type == "point":
        if not prompt.get("points"):
            return np.zeros((h, w), dtype=bool), None
        pred = model.decode(
            embedding,
            points=np.asarray(prompt["points"], dtype=np.float64)[None],
            point_labels=np.asarray(prompt["labels"])[None],
            multimask=True,
        )
    elif prompt_type in ("box", WHOLE_IMAGE):
        if prompt.get("box") is None:
            return np.zeros((h, w), dtype=bool), None
        pred = model.decode(embedding, boxes=np.asarray([prompt["box"]], dtype=np.float64))
    else:
        raise GeofloodsamError(
            f"unknown prompt type {prompt_type!r}: use {', '.join(PROMPT_TYPES)}."
        )
    best = int(pred.best_index()[0])
    return pred.best_logits()[0] > 0, float(pred.iou[0, best])


def predict_all(
    model: SamModel,
    decoders: Sequence[Decoder],
    embedding: Embedding,
    prompt_types: Sequence[str],
    prompts: dict[str, Any],
) -> Iterator[tuple[Decoder, str, np.ndarray, float | None]]:
    """(decoder, prompt type, mask, predicted IoU) for every decoder × prompt type."""
    for dec in decoders:
        with use_decoder(model, dec):
            for ptype in prompt_types:
                mask, score = predict(model, embedding, ptype, prompts[ptype])
                yield dec, ptype, mask, score


# ---------------------------------------------------------------------------- scoring
def score_samples(
    model: SamModel,
    decoders: Sequence[Decoder],
    samples: Sequence[Any],
    cache: Any,
    prompt_types: Sequence[str],
    prompts: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Score every decoder × prompt type on every sample.

    Returns the per-image table (one row per image × decoder × prompt type) and the prompts
    used, keyed by sample id (derived from the truth unless ``prompts`` is given).
    """
    from tqdm.auto import tqdm

    used: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(samples), desc="evaluating", unit="img", disable=not progress)
    for start in range(0, len(samples), CHUNK):
        chunk = list(samples[start : start + CHUNK])
        embeddings = cache.get_many(chunk, progress=False)
        for sample, emb in zip(chunk, embeddings, strict=True):
            water, valid = sample.load_truth()
            used[sample.id] = prompts[sample.id] if prompts else image_prompts(water, valid)
            water_fraction = float(np.count_nonzero(water & valid)) / max(
                int(np.count_nonzero(valid)), 1
            )
            for dec, ptype, mask, score in predict_all(
                model, decoders, emb, prompt_types, used[sample.id]
            ):
                c = confusion(mask, water, valid)
                rows.append(
                    {
                        "id": sample.id,
                        "model": dec.label,
                        "prompt": ptype,
                        **c.scores(),
                        "tp": c.tp, "fp": c.fp, "fn": c.fn, "tn": c.tn,
                        "predicted_iou": score,
                        "truth_water_fraction": water_fraction,
                    }
                )
            bar.update(1)
    bar.close()
    per_image = pd.DataFrame(rows)
    return per_image, used


# ---------------------------------------------------------------------------- examples
def spread_examples(per_image: pd.DataFrame, model: str, prompt: str, k: int) -> list[str]:
    """``k`` image ids spread evenly over ``model``'s IoU ranking under ``prompt`` (best first)."""
    ranked = _ranked(per_image, model, prompt, ascending=False)
    if not ranked:
        return []
    idx = np.unique(np.round(np.linspace(0, len(ranked) - 1, min(k, len(ranked)))).astype(int))
    return [ranked[i] for i in idx]


def worst_examples(per_image: pd.DataFrame, model: str, prompt: str, k: int) -> list[str]:
    """The ``k`` image ids where ``model`` scores the lowest IoU under ``prompt``."""
    return _ranked(per_image, model, prompt, ascending=True)[:k]


def _ranked(per_image: pd.DataFrame, model: str, prompt: str, ascending: bool) -> list[str]:
    sel = per_image[(per_image["model"] == model) & (per_image["prompt"] == prompt)]
    sel = sel.sort_values(["iou", "id"], ascending=[ascending, True], kind="stable")
    return [str(i) for i in sel["id"]]


def thumbnail_size(shape: tuple[int, int], side: int = THUMB_SIDE) -> tuple[int, int]:
    """(h, w) of a thumbnail whose longest side is at most ``side``."""
    h, w = shape
    scale = min(1.0, side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _shrink_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    rows = ((np.arange(size[0]) + 0.5) * mask.shape[0] / size[0]).astype(int)
    cols = ((np.arange(size[1]) + 0.5) * mask.shape[1] / size[1]).astype(int)
    return mask[np.ix_(rows, cols)]


def example_panels(
    model: SamModel,
    decoders: Sequence[Decoder],
    cache: Any,
    sample: Any,
    prompt_types: Sequence[str],
    prompts: dict[str, Any],
    per_image: pd.DataFrame,
) -> dict[str, report.Panel]:
    """Thumbnails of one image: ``image``, ``truth`` and ``<model>|<prompt>`` predictions."""
    image = sample.load_image()
    water, valid = sample.load_truth()
    size = thumbnail_size(water.shape)
    small = np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.LANCZOS))
    w_s, v_s = _shrink_mask(water, size), _shrink_mask(valid, size)
    panels = {
        "image": report.Panel(small, f"image {sample.id}"),
        "truth": report.Panel(report.overlay_truth(small, w_s, v_s), "truth"),
    }
    scores = per_image[per_image["id"] == sample.id].set_index(["model", "prompt"])["iou"]
    emb = cache.get(sample)
    for dec, ptype, mask, _ in predict_all(model, decoders, emb, prompt_types, prompts):
        iou = float(scores.loc[(dec.label, ptype)])
        panels[f"{dec.label}|{ptype}"] = report.Panel(
            report.overlay_prediction(small, _shrink_mask(mask, size), w_s, v_s),
            f"{dec.label} · {ptype}\nIoU {iou:.2f}",
        )
    return panels


# ---------------------------------------------------------------------------- the command
def evaluate(
    data: str | Path,
    decoders: Sequence[str] = ("pretrained", "flood"),
    prompt_types: Sequence[str] = ("point", "box"),
    out_dir: str | Path = "evaluation",
    split: str | None = "test",
    prompts_file: str | Path | None = None,
    model_name: str = "vit_t",
    checkpoint: str | Path | None = None,
    device: str = "auto",
    precision: str = "auto",
    runtime: str = "auto",
    cache_dir: str | Path | None = None,
    bands: Sequence[int] | None = None,
    stretch: str = "auto",
    seed: int = 0,
    examples: int = 4,
    progress: bool = True,
) -> pd.DataFrame:
    """Run the whole evaluation and write the report folder; returns the metrics table.

    Writes ``metrics.csv``, ``per_image.csv``, ``prompts.json``, ``report.md`` and PNG
    plots into ``out_dir`` (all at once at the end, nothing on error).
    """
    from geofloodsam.datasets.reading import open_dataset
    from geofloodsam.model.embedding_cache import EmbeddingCache
    from geofloodsam.model.sam import load_model

    prompt_types = list(dict.fromkeys(prompt_types))
    bad = [p for p in prompt_types if p not in PROMPT_TYPES]
    if bad or not prompt_types:
        raise GeofloodsamError(
            f"unknown prompt type {bad[0] if bad else '(none given)'}: use one or more of "
            f"{', '.join(PROMPT_TYPES)}."
        )
    if not decoders:
        raise GeofloodsamError(
            "no decoder to evaluate: give --decoder pretrained, flood or a decoder file."
        )
    report.check_output_dir(out_dir)  # before any scoring: a bad -o is found first
    samples = open_dataset(data, split=split, bands=bands, stretch=stretch, seed=seed)
    if not samples:
        raise GeofloodsamError(f"data set {data} has no images to evaluate: check --data/--split.")
    given = read_prompts_file(prompts_file, samples) if prompts_file else None
    model = load_model(
        model_name, checkpoint=checkpoint, decoder="pretrained", device=device,
        precision=precision, runtime=runtime,
    )
    decs = load_decoders(model, decoders)
    cache = EmbeddingCache(cache_dir, model)

    per_image, used = score_samples(model, decs, samples, cache, prompt_types, given, progress)
    metrics = report.aggregate(per_image)
    info = model.info()
    source = {
        "data": str(data),
        "split": split,
        "derived_from": str(prompts_file) if prompts_file else "ground truth",
    }
    context = {
        "data": f"`{data}`, split `{split or 'all'}`, {len(samples)} images",
        "model": f"{info['model']} (checkpoint SHA-256 {str(info['checkpoint_sha256'])[:12]}…)",
        "decoders": ", ".join(
            f"`{d.label}`" + (f" ({d.sha256[:12]}…)" if d.sha256 else "") for d in decs
        ),
        "prompts": ", ".join(prompt_types) + " — `prompts.json` "
        + (f"(from `{prompts_file}`)" if prompts_file else "(derived from the truth)"),
        "embedding cache": f"{cache.stats}",
    }
    by_id = {s.id: s for s in samples}
    with report.atomic_outputs(out_dir) as tmp:
        report.write_csv(metrics, tmp / "metrics.csv")
        report.write_csv(per_image, tmp / "per_image.csv")
        (tmp / "prompts.json").write_text(
            json.dumps(prompts_document(used, source), indent=1), encoding="utf-8"
        )
        plots = {
            "means": report.plot_means(metrics, tmp / "means.png").name,
            "distributions": report.plot_distributions(
                per_image, metrics, tmp / "distributions.png"
            ).name,
        }
        collages = _write_collages(
            tmp, model, decs, cache, by_id, prompt_types, used, per_image, examples, progress
        )
        (tmp / "report.md").write_text(
            report.evaluation_markdown(metrics, context, plots, collages), encoding="utf-8"
        )
    return metrics


def _write_collages(
    tmp: Path,
    model: SamModel,
    decs: Sequence[Decoder],
    cache: Any,
    by_id: dict[str, Any],
    prompt_types: Sequence[str],
    prompts: dict[str, dict[str, Any]],
    per_image: pd.DataFrame,
    k: int,
    progress: bool,
) -> list[tuple[str, str, str]]:
    """Comparison collages and failure galleries per prompt type; (heading, file, caption)."""
    if k <= 0:
        return []
    from tqdm.auto import tqdm

    ref = next((d.label for d in decs if d.spec == "pretrained"), decs[0].label)
    picks = {
        ptype: (spread_examples(per_image, ref, ptype, k), worst_examples(per_image, ref, ptype, k))
        for ptype in prompt_types
    }
    wanted = list(dict.fromkeys(i for a, b in picks.values() for i in (*a, *b)))
    panels = {
        i: example_panels(model, decs, cache, by_id[i], prompt_types, prompts[i], per_image)
        for i in tqdm(wanted, desc="examples", unit="img", disable=not progress)
    }
    out = []
    for ptype, (spread, worst) in picks.items():
        for kind, ids in (("comparison", spread), ("failures", worst)):
            rows = [
                (f"{i}", [panels[i]["image"], panels[i]["truth"]]
                 + [panels[i][f"{d.label}|{ptype}"] for d in decs])
                for i in ids
            ]
            name = f"{kind}_{ptype}.png"
            if kind == "comparison":
                heading = f"Comparison, {ptype} prompt"
                caption = f"Images spread over the `{ref}` IoU ranking, best first."
            else:
                heading = f"Failures of `{ref}`, {ptype} prompt"
                caption = (
                    f"The {len(ids)} images where `{ref}` scores its lowest IoU, others beside."
                )
            report.plot_collage(rows, tmp / name, heading.replace("`", ""))
            out.append((heading, name, caption))
    return out

