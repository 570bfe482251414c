"""Training/evaluation data sets: images with ground-truth water masks, split train/val/test.

:func:`open_dataset` recognises three layouts:

* a folder with ``splits.csv`` (columns ``id,image,mask,split``; paths relative to the
  folder), as ``../shared/data/flood-area-segmentation``;
* plain ``images/`` + ``masks/`` (or ``labels/``) folders, paired by file stem; the split is
  drawn by the tool (seeded) and written to a ``splits.csv`` so it can be reused;
* Sen1Floods11-style GeoTIFF chips: ``S2Hand/<chip>_S2Hand.tif`` (or ``S1Hand``) with
  ``LabelHand/<chip>_LabelHand.tif`` (1 water, 0 dry, -1 / nodata excluded). A folder with
  both ``S1Hand/`` and ``S2Hand/`` needs ``sensor="s1"`` or ``"s2"`` to choose one (or the
  sub-folder itself as ``path``: ``.../S1Hand`` finds ``../LabelHand``).

Photos are opened with Pillow and converted to RGB (the files behind ``.jpg`` may really be
WEBP, PNG or GIF); masks are water where the 8-bit value is > 127. GeoTIFF chips are read
as their sensor's fixed physical composite (:func:`geofloodsam.raster.sensors.detect_sensor`
per chip, then :func:`~geofloodsam.raster.sensors.read_composite`), as ``segment`` reads
them; with ``bands`` or a ``stretch`` other than ``auto`` given, they are read as before
those existed, with ``segment``'s plain band selection and the stretch computed over each
chip (:mod:`geofloodsam.raster.scene`).

:meth:`Sample.unusable` says why a sample cannot be scored at all (a label without any valid
pixel, an image that is all nodata): callers skip those with a warning.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from geofloodsam.errors import GeofloodsamError
from geofloodsam.files.atomic import atomic_open
from geofloodsam.raster.sensors import SENSORS, Rgb, SensorInfo, base_sensor, parse_sensor_spec

SPLITS = ("train", "val", "test")
SPLIT_FILE = "splits.csv"
SPLIT_COLUMNS = ("id", "image", "mask", "split")
#: fractions of a tool-made split (train, val, test)
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
RASTER_SUFFIXES = (".tif", ".tiff")
MASK_DIRS = ("masks", "labels", "mask", "label")
CHIP_SUFFIX = re.compile(r"_(S1Hand|S2Hand|LabelHand|S1|S2|Label|label|mask)$")
#: photo masks are 8-bit with anti-aliased edges: water above this value
MASK_THRESHOLD = 127


@dataclass
class Sample:
    """One image with its ground-truth water mask.

    ``image`` and ``mask`` are file paths. For GeoTIFF images: ``sensor`` (``auto`` or a
    forced :data:`~geofloodsam.raster.sensors.SENSORS` name) and ``composite`` choose the
    sensor's fixed composite; ``bands`` and ``stretch`` given (1 or 3 1-based band numbers;
    stretch ``(MIN, MAX)`` or ``none``) read the chip with ``segment``'s plain band selection
    and stretch instead, as before sensors existed.
    """

    id: str
    split: str | None
    image: Path
    mask: Path
    bands: tuple[int, ...] | None = None
    stretch: str | tuple[float, float] = "auto"
    sensor: str = "auto"
    composite: str | None = None
    _size: tuple[int, int] | None = field(default=None, repr=False, compare=False)
    _info: SensorInfo | None = field(default=None, repr=False, compare=False)

    @property
    def is_raster(self) -> bool:
        """True for GeoTIFF chips (read as a sensor composite, or with bands and stretch)."""
        return self.image.suffix.lower() in RASTER_SUFFIXES

    @property
    def reads_composite(self) -> bool:
        """True for a GeoTIFF chip read as its sensor's composite (no bands/stretch given)."""
        return self.is_raster and self.bands is None and self.stretch == "auto"

    def sensor_info(self) -> SensorInfo | None:
        """The chip's sensor (:func:`~geofloodsam.raster.sensors.detect_sensor`), None for
        photos. A forced ``sensor`` that does not fit the chip is a one-line error."""
        if not self.is_raster:
            if base_sensor(self.sensor) not in ("auto", Rgb.name):
                raise GeofloodsamError(
                    f"--sensor {self.sensor} needs GeoTIFF chips with that sensor's bands, but "
                    f"{self.image.name} is a photo (RGB): use --sensor auto or rgb."
                )
            return None
        if self._info is None:
            from geofloodsam.raster.sensors import detect_sensor

            with _open_raster(self.image, "image") as ds:
                self._info = detect_sensor(ds, self.sensor, self.composite)
        return self._info

    @property
    def sensor_name(self) -> str:
        """``s2``, ``s1``, ``sar``, ``naip`` or ``rgb`` (photos: read as :class:`Rgb`)."""
        info = self.sensor_info()
        return Rgb.name if info is None else info.sensor

    def load_image(self) -> np.ndarray:
        """The image as HxWx3 uint8 RGB."""
        if self.is_raster:
            if self.reads_composite:
                return self._read_composite()[0]
            return _read_chip_rgb(self.image, self.bands, self.stretch)[0]
        with _open_pil(self.image, "image") as im:
            try:
                return np.array(im.convert("RGB"))
            except OSError as exc:
                raise _unreadable(self.image, "image", exc) from None

    def image_valid(self) -> np.ndarray:
        """(H, W) bool: the image's pixels with data (all True for photos)."""
        if not self.is_raster:
            return np.ones(self.size(), dtype=bool)
        if self.reads_composite:
            return self._read_composite()[1]
        return _read_chip_valid(self.image, self.bands)

    def _read_composite(self) -> tuple[np.ndarray, np.ndarray]:
        from geofloodsam.raster.sensors import read_composite

        info = self.sensor_info()
        with _open_raster(self.image, "image") as ds:
            try:
                return read_composite(ds, info)
            except Exception as exc:  # noqa: BLE001 - a damaged file: one line
                raise _unreadable(self.image, "image", exc) from None

    def load_truth(self) -> tuple[np.ndarray, np.ndarray]:
        """(water, valid) boolean HxW arrays at the image's full resolution."""
        if self.mask.suffix.lower() in RASTER_SUFFIXES:
            water, valid = _read_label(self.mask)
            if self.is_raster and water.shape == self.size():
                valid &= self.image_valid()
                water &= valid
        else:
            with _open_pil(self.mask, "mask") as im:
                try:
                    water = np.asarray(im.convert("L")) > MASK_THRESHOLD
                except OSError as exc:
                    raise _unreadable(self.mask, "mask", exc) from None
            valid = np.ones(water.shape, dtype=bool)
        size = self.size()
        if water.shape != size:
            raise _size_mismatch(self, size, water.shape)
        return water, valid

    def unusable(self) -> str | None:
        """Why this sample cannot be scored at all, or None.

        A label raster without any valid pixel (all -1 / nodata), an image that is all
        nodata/NaN, or no pixel valid in both. Photos with 8-bit masks are always usable
        (nothing is read for them).
        """
        if self.mask.suffix.lower() not in RASTER_SUFFIXES and not self.is_raster:
            return None
        if self.mask.suffix.lower() in RASTER_SUFFIXES and not _read_label(self.mask)[1].any():
            return "its label has no valid pixel (all -1 / nodata)"
        if self.is_raster and not self.image_valid().any():
            return "its image is all nodata/NaN"
        if not self.load_truth()[1].any():
            return "no pixel is valid in both its label and its image"
        return None

    def size(self) -> tuple[int, int]:
        """(height, width) of the image, read from its header."""
        if self._size is None:
            self._size = _header_size(self.image, "image")
        return self._size

    def image_key(self) -> str:
        """Stable identity of the source: resolved path, byte size, mtime, how it is read."""
        parts = []
        for path in (self.image,):
            st = path.stat()
            parts.append(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}")
        if self.reads_composite:
            parts.append(f"sensor={self.sensor}|composite={self.composite}")
        elif self.is_raster:
            parts.append(f"bands={self.bands}|stretch={self.stretch}")
        return "|".join(parts)

    def check(self) -> None:
        """Headers only: both files readable and of the same size (one-line errors otherwise).

        GeoTIFF chips read as composites get their sensor detected here (a forced sensor
        that does not fit is found before any work); the others are checked as ``segment``
        checks a scene (CRS, band selection, dtype).
        """
        if self.reads_composite or not self.is_raster or base_sensor(self.sensor) != "auto":
            self.sensor_info()
        if not self.reads_composite and self.is_raster:
            from geofloodsam.raster.scene import Scene

            Scene.open(self.image, self.bands).close()  # CRS, band selection, dtype
        image_size = self.size()
        mask_size = _header_size(self.mask, "mask")
        if image_size != mask_size:
            raise _size_mismatch(self, image_size, mask_size)


# ---------------------------------------------------------------------------- opening
def open_dataset(
    path: str | Path,
    split: str | None = None,
    bands: str | tuple[int, ...] | list[int] | None = None,
    stretch: str | tuple[float, float] = "auto",
    seed: int = 0,
    splits_out: str | Path | None = None,
    sensor: str = "auto",
    composite: str | None = None,
) -> list[Sample]:
    """Open a data set folder and return its samples (of one ``split`` if given).

    Args:
        path: a folder (or its ``splits.csv``) in one of the layouts of this module.
        split: ``train``, ``val``, ``test`` or None for all samples.
        bands: GeoTIFF images: 1 or 3 1-based band numbers (``"4,3,2"``), as in ``segment``
            (given: the chips are read with this selection, not as the sensor composite).
        stretch: GeoTIFF images: ``auto`` (the sensor composite's fixed stretch; with
            ``bands``, 2-98 percentiles per chip), ``none`` or ``(MIN, MAX)``.
        seed: seed of the tool-made split for folders without ``splits.csv``.
        splits_out: where a tool-made split is written (default: the user cache folder).
        sensor: GeoTIFF images: ``auto`` (detected per chip) or a forced sensor; ``s1`` /
            ``s2`` also choose ``S1Hand/`` or ``S2Hand/`` in a chip folder holding both.
        composite: GeoTIFF images: the composite of ``s2`` / ``naip`` (default per sensor).

    Every sample's image and mask headers are checked (readable, same size; chips: sensor).
    """
    root = Path(path)
    if not root.exists():
        raise GeofloodsamError(f"data set {root} does not exist: give a data set folder.")
    if split is not None and split not in SPLITS:
        raise GeofloodsamError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}.")
    parse_sensor_spec(sensor)  # one-line errors for --sensor, --sar-units, --s2-offset
    from geofloodsam.raster.scene import parse_bands, parse_stretch

    band_tuple = parse_bands(bands)
    stretch = parse_stretch(stretch)
    how = {"bands": band_tuple, "stretch": stretch, "sensor": sensor, "composite": composite}
    if root.is_file() or (root / SPLIT_FILE).is_file():
        csv_path = root if root.is_file() else root / SPLIT_FILE
        samples = _read_split_file(csv_path, how)
    else:
        pairs = _find_pairs(root, base_sensor(sensor))
        assignment = make_split([pid for pid, _, _ in pairs], seed)
        samples = [Sample(pid, assignment[pid], img, msk, **how) for pid, img, msk in pairs]
        write_split_file(_splits_out(root, seed, splits_out), samples, root)
    if split is not None:
        samples = [s for s in samples if s.split == split]
        if not samples:
            raise GeofloodsamError(
                f"data set {root} has no images in split {split!r}: check the split column "
                "of its splits.csv."
            )
    for s in samples:
        s.check()
    return samples


def is_chip_folder(path: str | Path) -> bool:
    """Whether ``path`` is a Sen1Floods11-style chip folder without a ``splits.csv``
    (``LabelHand/`` beside ``S1Hand/`` / ``S2Hand/``, or one of those image folders)."""
    root = Path(path)
    if root.is_file() or (root / SPLIT_FILE).is_file():
        return False
    if (root / "LabelHand").is_dir():
        return any((root / d).is_dir() for d in chip_dirs().values())
    return root.name in chip_dirs().values() and (root.parent / "LabelHand").is_dir()


def _read_split_file(csv_path: Path, how: dict) -> list[Sample]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise GeofloodsamError(f"cannot read split file {csv_path}: {exc}.") from None
    missing = [c for c in SPLIT_COLUMNS if c not in columns]
    if missing:
        raise GeofloodsamError(
            f"split file {csv_path} lacks column(s) {', '.join(missing)}: it needs the header "
            f"{','.join(SPLIT_COLUMNS)}."
        )
    if not rows:
        raise GeofloodsamError(
            f"split file {csv_path} lists no images: add rows id,image,mask,split."
        )
    base = csv_path.parent
    samples, seen = [], set()
    for n, row in enumerate(rows, start=2):
        sid, split = row["id"], row["split"] or None
        if not sid or not row["image"] or not row["mask"]:
            raise GeofloodsamError(
                f"{csv_path} line {n} has an empty id, image or mask: fill in every column."
            )
        if split is not None and split not in SPLITS:
            raise GeofloodsamError(
                f"{csv_path} line {n}: unknown split {split!r}; use {', '.join(SPLITS)}."
            )
        if sid in seen:
            raise GeofloodsamError(
                f"{csv_path} line {n}: duplicate id {sid!r}; ids must be unique."
            )
        seen.add(sid)
        img, msk = base / row["image"], base / row["mask"]
        for p, what in ((img, "image"), (msk, "mask")):
            if not p.is_file():
                raise GeofloodsamError(
                    f"{csv_path} line {n}: {what} file {p} does not exist; fix the path "
                    "(relative to the split file's folder)."
                )
        samples.append(Sample(sid, split, img, msk, **how))
    return samples


def _stem_id(path: Path) -> str:
    return CHIP_SUFFIX.sub("", path.stem)


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def chip_dirs() -> dict[str, str]:
    """The image folders of a Sen1Floods11-style chip set, by the sensor they hold (each
    sensor's ``chip_folder``: ``S2Hand``, ``S1Hand``)."""
    return {s.name: s.chip_folder for s in SENSORS if s.chip_folder}


def _chip_dir(root: Path, sensor: str) -> Path | None:
    """The image folder of a chip set: the only one there, or the one ``sensor`` names."""
    found = {s: root / d for s, d in chip_dirs().items() if (root / d).is_dir()}
    if len(found) < 2:
        return next(iter(found.values()), None)
    if sensor in found:
        return found[sensor]
    raise GeofloodsamError(
        f"{root} holds both S1Hand/ and S2Hand/ chips: choose one with --sensor s1 or s2, or "
        f"give --data {root / 'S1Hand'} (or S2Hand), which finds ../LabelHand."
    )


def _find_pairs(root: Path, sensor: str = "auto") -> list[tuple[str, Path, Path]]:
    """(id, image, mask) pairs of an images/masks or Sen1Floods11-style folder."""
    if (root / "LabelHand").is_dir():
        image_dir = _chip_dir(root, sensor)
        mask_dir = root / "LabelHand"
    elif root.name in chip_dirs().values() and (root.parent / "LabelHand").is_dir():
        image_dir, mask_dir = root, root.parent / "LabelHand"
    else:
        image_dir = root / "images" if (root / "images").is_dir() else None
        mask_dir = next((root / d for d in MASK_DIRS if (root / d).is_dir()), None)
    if image_dir is None or mask_dir is None:
        raise GeofloodsamError(
            f"{root} is not a data set: it needs a splits.csv (id,image,mask,split), "
            "images/ + masks/ folders, or S2Hand/ (or S1Hand/) + LabelHand/ GeoTIFF chips."
        )
    masks = {_stem_id(p): p for p in _list_images(mask_dir)}
    pairs, unmatched = [], []
    for img in _list_images(image_dir):
        pid = _stem_id(img)
        if pid in masks:
            pairs.append((pid, img, masks[pid]))
        else:
            unmatched.append(img.name)
    if not pairs:
        raise GeofloodsamError(
            f"no image/mask pairs in {root}: {image_dir.name}/ and {mask_dir.name}/ share no "
            "file names (masks must be named like their images)."
        )
    if unmatched:  # never train or score on fewer images than the user thinks
        names = ", ".join(unmatched[:5]) + (", ..." if len(unmatched) > 5 else "")
        raise GeofloodsamError(
            f"{len(unmatched)} image(s) in {image_dir} have no mask in {mask_dir}: {names}; "
            "add their masks (named like the images) or move them out of the folder."
        )
    return pairs


# ---------------------------------------------------------------------------- splitting
def make_split(ids: list[str], seed: int = 0) -> dict[str, str]:
    """A seeded train/val/test assignment of ``ids`` (same ids and seed -> same split)."""
    ordered = sorted(ids)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(ordered))
    n = len(ordered)
    n_val = int(round(n * SPLIT_FRACTIONS[1])) if n >= 3 else 0
    n_test = int(round(n * SPLIT_FRACTIONS[2])) if n >= 3 else 0
    n_val, n_test = max(n_val, 1 if n >= 3 else 0), max(n_test, 1 if n >= 3 else 0)
    out = {}
    for rank, idx in enumerate(order):
        out[ordered[idx]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return out


def _splits_out(root: Path, seed: int, splits_out: str | Path | None) -> Path:
    if splits_out is not None:
        return Path(splits_out)
    from geofloodsam.files.home import usable_home_folder

    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    folder = usable_home_folder("splits", "split record folder")
    return folder / f"{root.resolve().name}-{tag}-seed{seed}.csv"


def write_split_file(path: Path, samples: list[Sample], root: Path) -> Path:
    """Write ``id,image,mask,split`` (absolute paths) atomically."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(SPLIT_COLUMNS)
        for s in samples:
            w.writerow([s.id, s.image.resolve(), s.mask.resolve(), s.split or ""])
    return path


# ---------------------------------------------------------------------------- file helpers
def _open_pil(path: Path, what: str) -> Image.Image:
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise _unreadable(path, what, exc) from None


def _unreadable(path: Path, what: str, exc: Exception) -> GeofloodsamError:
    return GeofloodsamError(
        f"cannot read {what} {path} ({type(exc).__name__}): the file is corrupt or not an "
        "image; replace it or remove it from the data set."
    )


def _header_size(path: Path, what: str) -> tuple[int, int]:
    if path.suffix.lower() in RASTER_SUFFIXES:
        with _open_raster(path, what) as ds:
            return ds.height, ds.width
    with _open_pil(path, what) as im:
        return im.height, im.width


def _size_mismatch(sample: Sample, image_size, mask_size) -> GeofloodsamError:
    return GeofloodsamError(
        f"sample {sample.id}: image {sample.image.name} is {image_size[1]}x{image_size[0]} but "
        f"mask {sample.mask.name} is {mask_size[1]}x{mask_size[0]} (WxH); masks must have "
        "their image's size."
    )


# ---------------------------------------------------------------------------- GeoTIFF chips
def _open_raster(path: Path, what: str):
    import rasterio

    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioError as exc:
        raise _unreadable(path, what, exc) from None


def _read_chip_rgb(
    path: Path, bands: tuple[int, ...] | None, stretch: str | tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """A whole chip as (HxWx3 uint8, valid HxW), through :mod:`geofloodsam.raster.scene`.

    Band selection and stretch are ``segment``'s; the stretch is computed over the chip. A
    chip without any valid pixel comes back black and all invalid.
    """
    from rasterio.windows import Window

    from geofloodsam.raster.scene import Scene, compute_stretch

    with Scene.open(path, bands) as scene:
        window = Window(0, 0, scene.width, scene.height)
        valid = scene.read_valid(window)
        if not valid.any():
            return np.zeros((scene.height, scene.width, 3), dtype=np.uint8), valid
        return scene.read_rgb(window, compute_stretch(scene, stretch))


def _read_chip_valid(path: Path, bands: tuple[int, ...] | None) -> np.ndarray:
    from rasterio.windows import Window

    from geofloodsam.raster.scene import Scene

    with Scene.open(path, bands) as scene:
        return scene.read_valid(Window(0, 0, scene.width, scene.height))


def _read_label(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(water, valid) from a label raster: 1 water, 0 dry, negative or nodata invalid."""
    with _open_raster(path, "mask") as ds:
        try:
            label = ds.read(1, masked=True)
        except Exception as exc:  # noqa: BLE001
            raise _unreadable(path, "mask", exc) from None
    values = np.ma.getdata(label).astype(np.float64)
    valid = ~np.ma.getmaskarray(label) & np.isfinite(values) & (values >= 0)
    return (values == 1) & valid, valid
