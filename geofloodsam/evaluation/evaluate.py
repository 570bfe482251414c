"""Score methods × decoders × prompt types on a data set with ground truth
(``geofloodsam evaluate``).

* The base model is loaded once; every decoder (``pretrained``, ``flood`` or a fine-tuned
  file) is a copy of the mask decoder swapped in for its turn, and image embeddings come from
  the shared :class:`~geofloodsam.model.embedding_cache.PersistentEmbeddingCache` (on disk,
  kept between runs), so several decoders cost one encoder pass per image.
* Prompts are derived once per image from the ground truth
  (:mod:`geofloodsam.datasets.truth_prompts`:
  ``box`` = box of all water, ``point`` = deepest pixel of the largest water body, ``none`` =
  the whole-image box used when segmenting without prompts). They are deterministic and
  saved to ``prompts.json``; a saved file can be given back to score on exactly those prompts.
* ``--method`` chooses the rows (:mod:`geofloodsam.evaluation.satellite`): ``sam`` =
  every decoder × prompt type (the default, and the only rows before satellite methods);
  ``index`` = the chips' water index alone; ``fused`` / ``auto`` = one promptless row per
  decoder (the guarded gate of SAM and the index; what ``--method auto`` runs for each
  image's sensor). GeoTIFF chips are read as their sensor's composite, the sensor detected
  per chip (:mod:`geofloodsam.datasets.reading`).
* Chips that cannot be scored (label all -1 / nodata, image all nodata) are skipped with a
  one-line warning each and listed in ``report.md``.
* Scores are computed at the image's full resolution with nodata (label -1, label and image
  nodata) excluded (:mod:`geofloodsam.evaluation.metrics`); :mod:`geofloodsam.evaluation.report`
  turns them into tables (mean of the per-image scores, and pooled: counts summed over the
  images) and plots.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from geofloodsam.datasets.truth_prompts import default_prompts
from geofloodsam.errors import GeofloodsamError
from geofloodsam.evaluation import report, satellite
from geofloodsam.evaluation.config import EvaluateConfig
from geofloodsam.evaluation.metrics import confusion
from geofloodsam.files.workdirs import check_output_dir
from geofloodsam.model.decoders import Decoder, load_decoders
from geofloodsam.model.sam import Embedding, SamModel
from geofloodsam.vector.prompts import NO_PROMPT, PROMPT_TYPES, whole_image_box

PROMPTS_FORMAT = "geofloodsam-prompts/1"
#: what the model labels of the rows mean, per method (report.md, when not only ``sam``)
ROWS_LEGEND = {
    "sam": "`<decoder>`: SAM with that prompt (`none`: the whole-image box)",
    "index": "`index`: the water index alone (one scene threshold, no SAM)",
    "fused": "`fused/<decoder>`: SAM promptless through the guarded gate with the index "
    "(as `segment --method fused`; `agreement` in per_image.csv)",
    "auto": "`auto/<decoder>`: what `--method auto` runs promptless for the image's sensor "
    "(`chosen` in per_image.csv)",
}
#: longest side of the collage thumbnails, pixels
THUMB_SIDE = 200
#: samples whose embeddings are fetched from the cache together (batched encoding on misses)
CHUNK = 8


# ---------------------------------------------------------------------------- prompts
def image_prompts(water: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
    """All prompt types of one image, from its valid water pixels, plus its ``size``."""
    h, w = water.shape
    prompts = default_prompts(np.asarray(water, bool) & np.asarray(valid, bool))
    prompts[NO_PROMPT] = {"box": list(whole_image_box(w, h))}
    return {"size": [int(h), int(w)], **prompts}


def prompts_document(prompts: dict[str, dict[str, Any]], source: dict[str, Any]) -> dict[str, Any]:
    """The content of ``prompts.json``: format marker, where the prompts came from, prompts."""
    return {
        "format": PROMPTS_FORMAT,
        "source": source,
        "description": {
            "box": "x0, y0, x1, y1 pixel edges of the box around all water",
            "point": "x, y pixel centre of the deepest pixel of the largest water body (label 1)",
            NO_PROMPT: "the whole-image box, as segmenting without prompts",
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
    elif prompt_type in ("box", NO_PROMPT):
        if prompt.get("box") is None:
            return np.zeros((h, w), dtype=bool), None
        pred = model.decode(embedding, boxes=np.asarray([prompt["box"]], dtype=np.float64))
    else:
        raise GeofloodsamError(
            f"unknown prompt type {prompt_type!r}: use {', '.join(PROMPT_TYPES)}."
        )
    best = int(pred.best_index()[0])
    return pred.best_logits()[0] > 0, float(pred.iou[0, best])


# ---------------------------------------------------------------------------- scoring
def score_samples(
    model: SamModel | None,
    decoders: Sequence[Decoder],
    samples: Sequence[Any],
    cache: Any,
    prompt_types: Sequence[str],
    prompts: dict[str, dict[str, Any]] | None = None,
    progress: bool = False,
    methods: Sequence[str] = ("sam",),
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Score every method row (see :mod:`geofloodsam.evaluation.satellite`) on every sample.

    With ``methods=("sam",)`` (the default) the rows are every decoder × prompt type.
    Returns the per-image table (one row per image × row of the metrics table) and the
    prompts used, keyed by sample id (derived from the truth unless ``prompts`` is given).
    ``model`` and ``cache`` may be None when only ``index`` is scored.
    """
    from tqdm.auto import tqdm

    methods = satellite.check_methods(methods)
    need_sam = model is not None and any(m != "index" for m in methods)
    need_prior = any(m != "sam" for m in methods)
    used: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(samples), desc="evaluating", unit="img", disable=not progress)
    for start in range(0, len(samples), CHUNK):
        chunk = list(samples[start : start + CHUNK])
        embeddings = cache.get_many(chunk, progress=False) if need_sam else [None] * len(chunk)
        for sample, emb in zip(chunk, embeddings, strict=True):
            water, valid = sample.load_truth()
            used[sample.id] = prompts[sample.id] if prompts else image_prompts(water, valid)
            water_fraction = float(np.count_nonzero(water & valid)) / max(
                int(np.count_nonzero(valid)), 1
            )
            sensor = _sensor(sample)
            prior = satellite.sample_prior(sample) if need_prior else None
            image = satellite.ImageInputs(emb, used[sample.id], sensor, prior)
            for r in satellite.method_predictions(
                model, decoders, image, methods, prompt_types, predict
            ):
                c = confusion(r.mask, water, valid)
                rows.append(
                    {
                        "id": sample.id,
                        "model": r.model,
                        "prompt": r.prompt,
                        **c.scores(),
                        "tp": c.tp, "fp": c.fp, "fn": c.fn, "tn": c.tn,
                        "predicted_iou": r.predicted_iou,
                        "truth_water_fraction": water_fraction,
                        "method": r.method,
                        "sensor": sensor,
                        "agreement": r.agreement,
                        "chosen": r.chosen,
                    }
                )
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows), used


def _sensor(sample: Any) -> str:
    """The sensor of a sample (``rgb`` for photos and plain arrays)."""
    name = getattr(sample, "sensor_name", None)
    return name if isinstance(name, str) else "rgb"


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
    model: SamModel | None,
    decoders: Sequence[Decoder],
    cache: Any,
    sample: Any,
    prompt_types: Sequence[str],
    prompts: dict[str, Any],
    per_image: pd.DataFrame,
    methods: Sequence[str] = ("sam",),
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
    methods = satellite.check_methods(methods)
    need_sam = model is not None and any(m != "index" for m in methods)
    emb = cache.get(sample) if need_sam else None
    prior = satellite.sample_prior(sample) if any(m != "sam" for m in methods) else None
    image = satellite.ImageInputs(emb, prompts, _sensor(sample), prior)
    for r in satellite.method_predictions(model, decoders, image, methods, prompt_types, predict):
        iou = float(scores.loc[(r.model, r.prompt)])
        panels[f"{r.model}|{r.prompt}"] = report.Panel(
            report.overlay_prediction(small, _shrink_mask(r.mask, size), w_s, v_s),
            f"{r.model} · {r.prompt}\nIoU {iou:.2f}",
        )
    return panels


# ---------------------------------------------------------------------------- the command
def resolve_split(data: str | Path, split: str | None) -> str | None:
    """``auto`` -> ``test``, or every chip (None) for a Sen1Floods11-style chip folder
    without ``splits.csv``; ``all`` -> None; anything else as given."""
    from geofloodsam.datasets.reading import is_chip_folder

    if split == "auto":
        return None if is_chip_folder(data) else "test"
    return None if split == "all" else split


def usable_samples(samples: Sequence[Any]) -> tuple[list[Any], list[tuple[str, str]]]:
    """(samples that can be scored, [(id, why) skipped]); one warning line each on stderr."""
    import click

    kept, skipped = [], []
    for s in samples:
        why = s.unusable()
        if why is None:
            kept.append(s)
        else:
            skipped.append((s.id, why))
            click.echo(f"Warning: skipping {s.id}: {why}.", err=True)
    return kept, skipped


def _check_priors(samples: Sequence[Any], methods: Sequence[str], data: str | Path) -> None:
    """One-line error when index/fused is asked and no image has index bands; a warning per
    image without them otherwise."""
    import click

    asked = [m for m in methods if m in satellite.PRIOR_METHODS]
    if not asked:
        return
    without = [s for s in samples if _sensor(s) == "rgb"]
    names = " / ".join(asked)
    if len(without) == len(samples):
        raise GeofloodsamError(
            f"--method {names} needs a water index, and no image of {data} has the bands for "
            "one (photos and RGB rasters have no NIR, SWIR or radar band): use --method sam, "
            "or give Sentinel-1, Sentinel-2 or R,G,B,NIR GeoTIFF chips."
        )
    for s in without:
        click.echo(
            f"Warning: {s.id} is an RGB image without a water index: no {names} row for it.",
            err=True,
        )


def evaluate(
    data: str | Path,
    out_dir: str | Path = "evaluation",
    config: EvaluateConfig | None = None,
    **overrides: Any,
) -> pd.DataFrame:
    """Run the whole evaluation and write the report folder; returns the metrics table.

    ``config``: the run's settings (:class:`~geofloodsam.evaluation.config.EvaluateConfig`,
    whose fields document every option and its default); ``overrides``: its fields to
    replace, e.g. ``decoders=["flood"]``, ``methods=["index"]`` (an unknown name is a
    one-line error). Unusable chips (label all -1, image all nodata) are skipped with a
    warning and listed in ``report.md``.

    Writes ``metrics.csv``, ``per_image.csv``, ``prompts.json``, ``report.md`` and PNG
    plots into ``out_dir`` (all at once at the end, nothing on error).
    """
    config = EvaluateConfig.with_overrides(config, **overrides)
    prompt_types = list(config.prompt_types)
    methods = satellite.check_methods(config.methods)
    check_output_dir(out_dir)  # before any scoring: a bad -o is found first
    split, samples, skipped = _samples(data, config)
    _check_priors(samples, methods, data)
    prompts_file = config.prompts_file
    given = read_prompts_file(prompts_file, samples) if prompts_file else None
    model, decs, cache = None, [], None
    if config.need_sam:
        from geofloodsam.model.embedding_cache import PersistentDecodersCache

        model = config.model_spec().load()
        decs = load_decoders(model, list(config.decoders))
        # adapted models: their own encoders
        cache = PersistentDecodersCache(config.cache_dir, model, decs)
    progress = config.progress
    per_image, used = score_samples(
        model, decs, samples, cache, prompt_types, given, progress, methods
    )
    metrics = report.aggregate(per_image)
    source = {
        "data": str(data),
        "split": split,
        "derived_from": str(prompts_file) if prompts_file else "ground truth",
    }
    context = {"data": f"`{data}`, split `{split or 'all'}`, {len(samples)} images"
               + (f" ({len(skipped)} skipped)" if skipped else "")}
    context["sensors"] = _sensor_summary(samples)
    context["methods"] = ", ".join(f"`{m}`" for m in methods)
    if methods != ["sam"]:
        context["rows"] = "; ".join(ROWS_LEGEND[m] for m in methods)
    if model is not None:
        info = model.info()
        context["model"] = (
            f"{info['model']} (checkpoint SHA-256 {str(info['checkpoint_sha256'])[:12]}…; "
            f"encoder {info.get('precision')} on {info.get('runtime')}, {info.get('device')})"
        )
        context["decoders"] = ", ".join(
            f"`{d.label}`" + (f" ({d.sha256[:12]}…" if d.sha256 else "")
            + (f"; adapted encoder {d.encoder_sha256[:12]}…" if d.encoder_sha256 else "")
            + (")" if d.sha256 else "") for d in decs
        )
    context["prompts"] = (
        (", ".join(prompt_types) if "sam" in methods else "none (promptless methods only)")
        + " — `prompts.json` "
        + (f"(from `{prompts_file}`)" if prompts_file else "(derived from the truth)")
    )
    if cache is not None:
        context["embedding cache"] = f"{cache.stats}"
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
            tmp, model, decs, cache, by_id, prompt_types, used, per_image, metrics,
            config.examples, progress, methods,
        )
        (tmp / "report.md").write_text(
            report.evaluation_markdown(metrics, context, plots, collages, skipped),
            encoding="utf-8",
        )
    return metrics


def _samples(data: str | Path, config: EvaluateConfig) -> tuple[str | None, list, list]:
    """(the split read, the usable samples, [(id, why) skipped]); one-line errors when
    none is left."""
    from geofloodsam.datasets.reading import open_dataset

    split = resolve_split(data, config.split)
    samples = open_dataset(
        data, split=split, bands=config.bands, stretch=config.stretch, seed=config.seed,
        sensor=config.sensor,
    )
    if not samples:
        raise GeofloodsamError(f"data set {data} has no images to evaluate: check --data/--split.")
    samples, skipped = usable_samples(samples)
    if not samples:
        raise GeofloodsamError(
            f"no usable image left in {data} (split {split or 'all'}): all {len(skipped)} "
            f"were skipped ({'; '.join(f'{i}: {why}' for i, why in skipped[:3])}"
            f"{'; ...' if len(skipped) > 3 else ''}); give other data."
        )
    return split, samples, skipped


def _sensor_summary(samples: Sequence[Any]) -> str:
    """'s1: 8 chips (composite vv-vh-ratio, fixed physical stretch)' per sensor, or photos."""
    groups: dict[str, list[Any]] = {}
    for s in samples:
        groups.setdefault(_sensor(s), []).append(s)
    parts = []
    for name, group in groups.items():
        first = group[0]
        if not first.is_raster:
            parts.append(f"{len(group)} photos (RGB as is)")
            continue
        if not first.reads_composite:
            how = f"--bands {first.bands or 'default'} / --stretch {first.stretch}, per chip"
        else:
            info = first.sensor_info()
            how = f"composite {info.composite}, " + (
                "fixed physical stretch" if info.physical else "2-98 % stretch of each chip"
            )
        parts.append(f"`{name}`: {len(group)} chips ({how})")
    return "; ".join(parts)


def _write_collages(
    tmp: Path,
    model: SamModel | None,
    decs: Sequence[Decoder],
    cache: Any,
    by_id: dict[str, Any],
    prompt_types: Sequence[str],
    prompts: dict[str, dict[str, Any]],
    per_image: pd.DataFrame,
    metrics: pd.DataFrame,
    k: int,
    progress: bool,
    methods: Sequence[str] = ("sam",),
) -> list[tuple[str, str, str]]:
    """Comparison collages and failure galleries per prompt type; (heading, file, caption).

    One pair per prompt type of the metrics table: its rows side by side, images chosen by
    the ``pretrained`` row's IoU (else the first row with that prompt).
    """
    if k <= 0:
        return []
    from tqdm.auto import tqdm

    keys = list(zip(metrics["model"], metrics["prompt"], strict=True))
    by_prompt: dict[str, list[str]] = {}
    for m, p in keys:
        by_prompt.setdefault(p, []).append(m)
    refs = {p: "pretrained" if "pretrained" in ms else ms[0] for p, ms in by_prompt.items()}
    picks = {
        p: (spread_examples(per_image, refs[p], p, k), worst_examples(per_image, refs[p], p, k))
        for p in by_prompt
    }
    wanted = list(dict.fromkeys(i for a, b in picks.values() for i in (*a, *b)))
    panels = {
        i: example_panels(
            model, decs, cache, by_id[i], prompt_types, prompts[i], per_image, methods
        )
        for i in tqdm(wanted, desc="examples", unit="img", disable=not progress)
    }
    out = []
    for ptype, (spread, worst) in picks.items():
        ref = refs[ptype]
        for kind, ids in (("comparison", spread), ("failures", worst)):
            rows = [
                (f"{i}", [panels[i]["image"], panels[i]["truth"]]
                 + [panels[i][f"{m}|{ptype}"] for m in by_prompt[ptype]
                    if f"{m}|{ptype}" in panels[i]])
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
