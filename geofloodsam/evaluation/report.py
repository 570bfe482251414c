"""Evaluation outputs: aggregate tables, CSV files, plots and the Markdown report.

Everything here works on plain tables (one row per image × model × prompt) and small
thumbnails, so it knows nothing about models. Plots use matplotlib's ``Agg`` backend.
Outputs are written into a temporary folder beside the report folder and moved in only when
all of them are complete (:func:`atomic_outputs`), so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from geofloodsam.evaluation.metrics import METRICS, Confusion
from geofloodsam.files.atomic import replace_all
from geofloodsam.files.space import reporting_full_disk
from geofloodsam.files.workdirs import OWNER_FILE, check_output_dir, make_workdir, sweep_stale

#: the leading columns of ``metrics.csv``, in this order
HEAD_COLUMNS = ("model", "prompt", "n_images", *METRICS)
COUNT_COLUMNS = ("tp", "fp", "fn", "tn")
METRIC_TITLES = {"iou": "IoU", "dice": "Dice", "precision": "Precision", "recall": "Recall"}
#: overlay colours (RGB 0-1) of the comparison collages
COLOURS = {
    "water": (0.12, 0.47, 0.95),  # truth water; true positive in predictions
    "fp": (0.90, 0.15, 0.15),  # predicted water that is dry
    "fn": (1.00, 0.80, 0.00),  # missed water
    "nodata": (0.55, 0.55, 0.55),
}


# ---------------------------------------------------------------------------- outputs
@contextlib.contextmanager
def atomic_outputs(out_dir: str | Path) -> Iterator[Path]:
    """Yield a temporary folder; on success move its files into ``out_dir``.

    The temporary folder sits beside ``out_dir`` (same file system), so each file lands
    with an atomic ``os.replace``. On error the temporary folder is removed and ``out_dir``
    is left as it was (not even created).
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(out_dir.parent)
    tmp = make_workdir(out_dir.parent, f".{out_dir.name}.geofloodsam-")
    try:
        with reporting_full_disk({out_dir.parent: None}, "report files", work=tmp):
            yield tmp
        out_dir.mkdir(parents=True, exist_ok=True)
        replace_all([
            (src, out_dir / src.name) for src in sorted(tmp.iterdir()) if src.name != OWNER_FILE
        ])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------- tables
#: bootstrap resamples (over images) of the interval columns, and their seed
BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
#: the columns of images whose truth has no water, and of the 95 % bootstrap intervals
EXTRA_COLUMNS = ("n_no_water", "no_water_false_alarm", "iou_ci_low", "iou_ci_high",
                 "pooled_iou_ci_low", "pooled_iou_ci_high")


def aggregate(per_image: pd.DataFrame) -> pd.DataFrame:
    """One row per model × prompt: means (headline), then medians and pooled scores.

    ``per_image`` needs the columns ``model``, ``prompt``, the four metrics and the
    confusion counts. Pooled scores come from the summed counts (every pixel of every image
    weighs the same); the means and medians weigh every image whose truth has water the
    same. Images whose truth has no water (their IoU is 0 for any false alarm) are counted
    apart: ``n_no_water`` and their mean false-alarm area (``no_water_false_alarm``, the
    fraction of their valid pixels called water); they stay in the pooled scores (their
    false alarms count there). ``iou_ci_*`` and ``pooled_iou_ci_*``: 95 % percentile
    bootstrap intervals of the mean and pooled IoU over images (:data:`BOOTSTRAP`
    resamples, seeded). Rows keep the order in which models and prompts first appear. A
    ``method`` column of ``per_image`` is carried over (last column).
    """
    rows = []
    for (model, prompt), group in per_image.groupby(["model", "prompt"], sort=False):
        pooled = Confusion(*(int(group[c].sum()) for c in COUNT_COLUMNS)).scores()
        truth = group["tp"] + group["fn"]
        wet, dry = group[truth > 0], group[truth == 0]
        scored = wet if len(wet) else group
        row = {"model": model, "prompt": prompt, "n_images": len(group)}
        row.update({m: float(scored[m].mean()) for m in METRICS})
        row.update({f"median_{m}": float(scored[m].median()) for m in METRICS})
        row.update({f"pooled_{m}": pooled[m] for m in METRICS})
        row["n_no_water"] = len(dry)
        row["no_water_false_alarm"] = (
            float((dry["fp"] / (dry["fp"] + dry["tn"]).clip(lower=1)).mean()) if len(dry)
            else float("nan"))
        row.update(_bootstrap(scored["iou"].to_numpy(), group[list(COUNT_COLUMNS[:3])].to_numpy()))
        if "method" in group:
            row["method"] = str(group["method"].iloc[0])
        rows.append(row)
    columns = [*HEAD_COLUMNS, *(f"median_{m}" for m in METRICS), *(f"pooled_{m}" for m in METRICS),
               *EXTRA_COLUMNS]
    if "method" in per_image:
        columns.append("method")
    return pd.DataFrame(rows, columns=columns)


def _bootstrap(ious: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """95 % percentile bootstrap intervals of the mean IoU and the pooled IoU over images."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    mean_draws = ious[rng.integers(0, len(ious), (BOOTSTRAP, len(ious)))].mean(axis=1)
    tp, fp, fn = counts[rng.integers(0, len(counts), (BOOTSTRAP, len(counts)))].sum(axis=1).T
    pooled = np.where(tp + fp + fn > 0, tp / np.maximum(tp + fp + fn, 1), 1.0)
    lo, hi = np.percentile(mean_draws, [2.5, 97.5])
    plo, phi = np.percentile(pooled, [2.5, 97.5])
    return {"iou_ci_low": float(lo), "iou_ci_high": float(hi), "pooled_iou_ci_low": float(plo),
            "pooled_iou_ci_high": float(phi)}


def write_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a table as CSV (floats with 6 decimals)."""
    table.to_csv(path, index=False, float_format="%.6f")
    return Path(path)


def markdown_table(table: pd.DataFrame, columns: dict[str, str], digits: int = 3) -> str:
    """A Markdown table of ``columns`` (name -> header); floats rounded to ``digits``."""
    head = "| " + " | ".join(columns.values()) + " |"
    rule = "| " + " | ".join("---" if c in ("model", "prompt") else "---:" for c in columns) + " |"
    lines = [head, rule]
    for _, row in table.iterrows():
        cells = []
        for c in columns:
            v = row[c]
            cells.append(f"{v:.{digits}f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_table(metrics: pd.DataFrame) -> str:
    """The reference layout: Model, Prompt × IoU, Dice, Precision, Recall (means)."""
    return markdown_table(
        metrics, {"model": "Model", "prompt": "Prompt", **METRIC_TITLES}
    )


def iou_table(metrics: pd.DataFrame) -> str:
    """Mean, median (per image with water) and pooled (summed counts) IoU per model × prompt,
    with 95 % bootstrap intervals, image counts and the false alarms on images without water."""
    table = metrics.copy()
    table["mean_ci"] = [f"{a:.3f} [{b:.3f}, {c:.3f}]" for a, b, c in
                        zip(table["iou"], table["iou_ci_low"], table["iou_ci_high"], strict=True)]
    table["pooled_ci"] = [
        f"{a:.3f} [{b:.3f}, {c:.3f}]" for a, b, c in
        zip(table["pooled_iou"], table["pooled_iou_ci_low"], table["pooled_iou_ci_high"],
            strict=True)]
    table["dry"] = [f"{n}: {fa:.2%}" if n else "0" for n, fa in
                    zip(table["n_no_water"], table["no_water_false_alarm"], strict=True)]
    return markdown_table(
        table,
        {
            "model": "Model",
            "prompt": "Prompt",
            "n_images": "images",
            "mean_ci": "mean IoU [95% CI]",
            "median_iou": "median IoU",
            "pooled_ci": "pooled IoU [95% CI]",
            "dry": "no-water images: false alarm",
        },
    )


def robust_table(metrics: pd.DataFrame) -> str:
    """Median and pooled IoU / Dice per model × prompt."""
    return markdown_table(
        metrics,
        {
            "model": "Model",
            "prompt": "Prompt",
            "median_iou": "median IoU",
            "pooled_iou": "pooled IoU",
            "median_dice": "median Dice",
            "pooled_dice": "pooled Dice",
        },
    )


# ---------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 90, colours: int | None = None) -> Path:
    """Save a figure as PNG; ``colours`` quantises it to a palette (much smaller files)."""
    plt = _pyplot()
    if colours is None:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    else:
        from PIL import Image

        buf = io.BytesIO()
        fig.savefig(buf, dpi=dpi, bbox_inches="tight", format="png")
        buf.seek(0)
        with Image.open(buf) as im:
            im.convert("RGB").quantize(colours).save(path, optimize=True)
    plt.close(fig)
    return path


def _series_labels(metrics: pd.DataFrame) -> list[str]:
    return [f"{m} · {p}" for m, p in zip(metrics["model"], metrics["prompt"], strict=True)]


def _series_colours(metrics: pd.DataFrame) -> list:
    """One hue per model, lighter shades for its prompts."""
    plt = _pyplot()
    models = list(dict.fromkeys(metrics["model"]))
    prompts = list(dict.fromkeys(metrics["prompt"]))
    cmap = plt.get_cmap("tab10")
    out = []
    for m, p in zip(metrics["model"], metrics["prompt"], strict=True):
        base = np.array(cmap(models.index(m) % 10)[:3])
        shade = prompts.index(p) / max(len(prompts), 1) * 0.6
        out.append(tuple(base + (1 - base) * shade))
    return out


def plot_means(metrics: pd.DataFrame, path: str | Path) -> Path:
    """Grouped bar chart: the mean of each metric, one bar per model × prompt."""
    plt = _pyplot()
    n = len(metrics)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(METRICS) + 0.35 * n * len(METRICS)), 3.6))
    x = np.arange(len(METRICS))
    colours = _series_colours(metrics)
    labels = _series_labels(metrics)
    for i, (_, row) in enumerate(metrics.iterrows()):
        values = [row[m] for m in METRICS]
        bars = ax.bar(x - 0.4 + width * (i + 0.5), values, width, label=labels[i], color=colours[i])
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)
    ax.set_xticks(x, [METRIC_TITLES[m] for m in METRICS])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("mean over images")
    ax.legend(fontsize=7, ncol=min(n, 3), loc="upper center", bbox_to_anchor=(0.5, -0.1))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))


def plot_distributions(per_image: pd.DataFrame, metrics: pd.DataFrame, path: str | Path) -> Path:
    """Box plots (with the images as dots) of each metric per model × prompt."""
    plt = _pyplot()
    labels = _series_labels(metrics)
    colours = _series_colours(metrics)
    fig, axes = plt.subplots(1, len(METRICS), figsize=(3.0 * len(METRICS), 3.4), sharey=True)
    rng = np.random.default_rng(0)  # jitter of the dots only
    for ax, m in zip(np.atleast_1d(axes), METRICS, strict=True):
        data = [
            per_image.loc[(per_image["model"] == mo) & (per_image["prompt"] == pr), m].to_numpy()
            for mo, pr in zip(metrics["model"], metrics["prompt"], strict=True)
        ]
        box = ax.boxplot(data, widths=0.6, patch_artist=True, showfliers=False)
        for patch, c in zip(box["boxes"], colours, strict=True):
            patch.set_facecolor(c)
            patch.set_alpha(0.6)
        for i, values in enumerate(data):
            ax.scatter(1 + i + rng.uniform(-0.15, 0.15, len(values)), values, s=4, c="k",
                       alpha=0.5, linewidths=0)
        ax.set_title(METRIC_TITLES[m])
        ax.set_xticks(np.arange(1, len(labels) + 1), labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, Path(path))


@dataclass
class Panel:
    """One cell of a collage: an RGB thumbnail and its title."""

    image: np.ndarray  # (h, w, 3) uint8
    title: str


def overlay_truth(image: np.ndarray, water: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Truth water in blue (nodata grey) over a faded image."""
    out = _fade(image)
    out[water & valid] = _rgb("water")
    out[~valid] = _rgb("nodata")
    return out


def overlay_prediction(
    image: np.ndarray, pred: np.ndarray, water: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Prediction over a faded image: hits blue, false alarms red, misses yellow."""
    out = _fade(image)
    out[pred & water] = _rgb("water")
    out[pred & ~water] = _rgb("fp")
    out[~pred & water] = _rgb("fn")
    out[~valid] = _rgb("nodata")
    return out


def _fade(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * 0.45 + 255 * 0.35).astype(np.uint8)


def _rgb(name: str) -> np.ndarray:
    return (np.array(COLOURS[name]) * 255).astype(np.uint8)


def plot_collage(rows: Sequence[tuple[str, Sequence[Panel]]], path: str | Path, title: str) -> Path:
    """A grid of thumbnails: one row per image (id, panels), titles above each panel."""
    plt = _pyplot()
    n_rows = len(rows)
    n_cols = max(len(panels) for _, panels in rows)
    aspect = np.median([p.image.shape[0] / p.image.shape[1] for _, ps in rows for p in ps])
    cell = 1.9
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell * n_cols, cell * aspect * n_rows + 0.45 * n_rows + 0.3),
        squeeze=False,
    )
    for r, (_, panels) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < len(panels):
                ax.imshow(panels[c].image, interpolation="nearest")
                ax.set_title(panels[c].title, fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, Path(path), dpi=80, colours=96)


# ---------------------------------------------------------------------------- report.md
def evaluation_markdown(
    metrics: pd.DataFrame,
    context: dict[str, str],
    plots: dict[str, str],
    collages: Sequence[tuple[str, str, str]],
    skipped: Sequence[tuple[str, str]] = (),
) -> str:
    """The text of ``report.md``.

    ``context`` holds labelled facts (data set, split, model...), ``plots`` file names of the
    ``means`` and ``distributions`` plots, ``collages`` (heading, file name, caption) triples,
    ``skipped`` the (image id, reason) of the images left out as unusable.
    """
    lines = ["# Evaluation report", ""]
    lines += [f"- **{k}**: {v}" for k, v in context.items()]
    if skipped:
        lines += ["", f"Skipped ({len(skipped)}, not scored):", ""]
        lines += [f"- `{i}`: {why}" for i, why in skipped]
    lines += [
        "",
        "## IoU: mean over images and pooled",
        "",
        "*mean IoU*, *median IoU*: over the per-image IoUs of the images whose truth has "
        "water (every image weighs the same; `per_image.csv` has each image's IoU). *pooled "
        "IoU*: one IoU from the confusion counts summed over all images (every pixel weighs "
        "the same). Images whose truth has no water are not in the mean (any false alarm "
        "gives them IoU 0): the last column gives their count and mean false-alarm area "
        "(share of their valid pixels called water). Brackets: 95 % percentile bootstrap "
        f"intervals over images ({BOOTSTRAP} resamples, seed {BOOTSTRAP_SEED}); few images "
        "give wide intervals.",
        "",
        iou_table(metrics),
        "",
        "## Scores (mean over images)",
        "",
        headline_table(metrics),
        "",
        "Per-image scores are averaged (the reference study's figure). Median and pooled "
        "scores (from confusion counts summed over all images) are in `metrics.csv`:",
        "",
        robust_table(metrics),
        "",
        "Empty cases: no water in truth nor prediction scores 1 everywhere; an empty "
        "prediction has Precision 1 and Recall 0; an empty truth has Recall 1 and Precision 0. "
        "Nodata pixels are excluded.",
        "",
    ]
    if "means" in plots:
        lines += ["## Means", "", f"![Mean scores]({plots['means']})", ""]
    if "distributions" in plots:
        lines += ["## Distributions", "", f"![Score distributions]({plots['distributions']})", ""]
    if collages:
        lines += [
            "## Examples",
            "",
            "Truth water is blue; in the predictions blue is a hit, red a false alarm, yellow "
            "missed water, grey nodata.",
            "",
        ]
        for heading, name, caption in collages:
            lines += [f"### {heading}", "", caption, "", f"![{heading}]({name})", ""]
    return "\n".join(lines)
