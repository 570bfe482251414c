"""Processing algorithms ``geofloodsam:segment``, ``geofloodsam:flood`` and
``geofloodsam:evaluate_raster``.

Each one calls the geofloodsam CLI of the configured environment as a child process
(:mod:`.tasks`, :mod:`.runner`): its progress goes to the feedback bar, its messages to the
log, and cancelling kills it. The outputs are written beside the chosen paths and moved
there at the end; QGIS loads them with their own styles (the mask's ``.qml``, the
GeoPackage's default style).
"""

from __future__ import annotations

import os
from pathlib import Path

from qgis.core import (
    QgsFeature,
    QgsFeatureRequest,
    QgsFields,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsVectorFileWriter,
    QgsWkbTypes,
)

from . import tasks
from .provider import command
from .runner import Cancelled, RunError


def raster_file(layer, what: str) -> str:
    """The file behind a GDAL raster layer, or a QgsProcessingException."""
    if layer is None:
        raise QgsProcessingException(f"{what}: no raster layer given.")
    source = layer.source().split("|")[0]
    if layer.providerType() != "gdal" or not os.path.isfile(source):
        raise QgsProcessingException(
            f"{what} must be a raster file on disk (GDAL), got {layer.source()!r}.")
    return source


class DefaultStyle(QgsProcessingLayerPostProcessorInterface):
    """Apply a loaded output's default style (Processing loads outputs without it).

    The mask's is the ``.qml`` beside it, the polygons' the GeoPackage's ``layer_styles``.
    """

    def postProcessLayer(self, layer, context, feedback) -> None:
        message, ok = layer.loadDefaultStyle()
        if not ok:
            feedback.pushInfo(f"{layer.name()}: no default style ({message})")
        layer.triggerRepaint()

    _instance = None

    @classmethod
    def shared(cls) -> DefaultStyle:
        """The one instance: it must outlive the algorithm copy that set it (QGIS's rule)."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance


class _Algorithm(QgsProcessingAlgorithm):
    """What both algorithms share: running the CLI with feedback and cancel."""

    def group(self) -> str:
        return ""

    def groupId(self) -> str:
        return ""

    def _callbacks(self, feedback) -> dict:
        last = {"desc": None}

        def on_progress(desc: str, fraction: float | None) -> None:
            if desc != last["desc"]:
                last["desc"] = desc
                feedback.setProgressText(desc)
            if fraction is not None:
                feedback.setProgress(100.0 * fraction)

        def on_start(pid: int) -> None:
            feedback.pushDebugInfo(f"geofloodsam child process: pid {pid}")

        return {
            "on_progress": on_progress,
            "on_message": feedback.pushConsoleInfo,
            "is_cancelled": feedback.isCanceled,
            "on_start": on_start,
        }

    def _command(self, feedback) -> list[str]:
        try:
            cmd = command()
        except RunError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(f"geofloodsam: {' '.join(cmd)}")
        return cmd


class SegmentAlgorithm(_Algorithm):
    """Map flood water in a raster with SAM: a water mask and flood polygons."""

    INPUT = "INPUT"
    PROMPTS = "PROMPTS"
    CLICKED_ONLY = "CLICKED_ONLY"
    DECODER = "DECODER"
    SENSOR = "SENSOR"
    METHOD = "METHOD"
    SAR_UNITS = "SAR_UNITS"
    BANDS = "BANDS"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    OUTPUT_MASK = "OUTPUT_MASK"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"

    def name(self) -> str:
        return "segment"

    def displayName(self) -> str:
        return "Segment flood water (SAM)"

    def createInstance(self):
        return SegmentAlgorithm()

    def shortHelpString(self) -> str:
        return (
            "Maps flood water in a georeferenced raster with Segment Anything, tile by tile, "
            "through geofloodsam in its own Python environment (set up with `geofloodsam qgis "
            "install`). PROMPTS: water points (optional `label` 1/0, `object` columns) and "
            "boxes (polygons) in any CRS; without them the whole scene is mapped. Sentinel-1, "
            "other SAR (one band, or HH/HV; SAR UNITS), Sentinel-2 and NAIP rasters are "
            "recognised (SENSOR) and, promptless, mapped by their water index (METHOD: index "
            "alone, SAM alone, fused; auto: the index, cross-validated). Writes the "
            "mask (1 water, 0 dry, 255 nodata; its style beside it as .qml) and the flood "
            "polygons (GeoPackage, layer `flood`, area_m2)."
        )

    def initAlgorithm(self, config=None) -> None:
        menus = tasks.menu_choices(command)
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.PROMPTS, "Prompts (water points, boxes); none: promptless",
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.CLICKED_ONLY, "Only the clicked water bodies (else also the scene's water of "
            "their colours, RGB)", False))
        self.addParameter(QgsProcessingParameterString(
            self.DECODER, "Decoder (flood, satellite, flood-decoder-only, satellite-decoder-only, "
            "pretrained or a decoder file; empty: "
            "satellite)", "", optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.SENSOR, "Sensor (auto: detected)", options=list(menus["sensor"]),
            defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.METHOD, "Method (auto: the water index for promptless SAR/Sentinel-2/NAIP, "
            "else SAM)", options=list(menus["method"]), defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.SAR_UNITS, "SAR units (auto: from metadata and values; amplitude DN: "
            "relative)", options=list(menus["sar_units"]), defaultValue=0))
        self.addParameter(QgsProcessingParameterString(
            self.BANDS, "Bands (1 or 3 band numbers, e.g. 4,3,2; empty: 1,2,3)", "",
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.TILE_SIZE, "Tile size (px)", QgsProcessingParameterNumber.Integer, 1024,
            minValue=64))
        self.addParameter(QgsProcessingParameterNumber(
            self.OVERLAP, "Tile overlap (px)", QgsProcessingParameterNumber.Integer, 256,
            minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.THRESHOLD, "Water probability threshold", QgsProcessingParameterNumber.Double,
            0.5, minValue=0.001, maxValue=0.999))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_AREA, "Drop polygons below (m²)", QgsProcessingParameterNumber.Double,
            0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_MASK, "Water mask"))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT_POLYGONS, "Flood polygons", QgsProcessing.TypeVectorPolygon))

    def processAlgorithm(self, parameters, context, feedback) -> dict:
        menus = tasks.menu_choices(command)
        scene = raster_file(self.parameterAsRasterLayer(parameters, self.INPUT, context),
                            "INPUT")
        out_mask = self.parameterAsOutputLayer(parameters, self.OUTPUT_MASK, context)
        out_polygons = self.parameterAsOutputLayer(parameters, self.OUTPUT_POLYGONS, context)
        options = {
            "decoder": self.parameterAsString(parameters, self.DECODER, context).strip(),
            "sensor": menus["sensor"][self.parameterAsEnum(parameters, self.SENSOR, context)],
            "method": menus["method"][self.parameterAsEnum(parameters, self.METHOD, context)],
            "sar_units": menus["sar_units"][self.parameterAsEnum(parameters, self.SAR_UNITS,
                                                                 context)],
            "bands": self.parameterAsString(parameters, self.BANDS, context).strip(),
            "tile_size": self.parameterAsInt(parameters, self.TILE_SIZE, context),
            "overlap": self.parameterAsInt(parameters, self.OVERLAP, context),
            "threshold": self.parameterAsDouble(parameters, self.THRESHOLD, context),
            "min_area": self.parameterAsDouble(parameters, self.MIN_AREA, context),
            "clicked_only": self.parameterAsBoolean(parameters, self.CLICKED_ONLY, context),
        }
        cmd = self._command(feedback)
        try:
            with tasks.work_folder(out_mask) as work:
                prompts = None
                source = self.parameterAsSource(parameters, self.PROMPTS, context)
                if source is not None:
                    prompts = export_prompts(source, work / "prompts.gpkg", context)
                    feedback.pushInfo(f"prompts: {source.featureCount()} feature(s)")
                tasks.segment_to(cmd, scene, out_mask, out_polygons, work, prompts, options,
                                 **self._callbacks(feedback))
        except Cancelled as exc:
            feedback.reportError(str(exc))
            return {}
        except RunError as exc:
            raise QgsProcessingException(str(exc)) from None
        for key, name in ((self.OUTPUT_MASK, "flood mask"),
                          (self.OUTPUT_POLYGONS, "flood polygons")):
            dest = out_mask if key == self.OUTPUT_MASK else out_polygons
            if context.willLoadLayerOnCompletion(dest):
                details = context.layerToLoadOnCompletionDetails(dest)
                details.name = f"{Path(scene).stem} {name}"
                details.setPostProcessor(DefaultStyle.shared())
        return {self.OUTPUT_MASK: out_mask, self.OUTPUT_POLYGONS: out_polygons}


def export_prompts(source, path: Path, context) -> Path:
    """Write the prompt features (any QGIS layer, memory layers too) to a GeoPackage."""
    fields = QgsFields()
    names = []
    for field in source.fields():
        if field.name().lower() != "fid":  # the GeoPackage's own key
            fields.append(field)
            names.append(field.name())
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.layerName = "prompts"
    writer = QgsVectorFileWriter.create(
        str(path), fields, QgsWkbTypes.Unknown, source.sourceCrs(),  # points and boxes
        context.transformContext(), options)
    if writer.hasError() != QgsVectorFileWriter.NoError:
        raise QgsProcessingException(f"cannot write the prompts: {writer.errorMessage()}")
    for feature in source.getFeatures(QgsFeatureRequest()):
        out = QgsFeature(fields)
        out.setGeometry(feature.geometry())
        out.setAttributes([feature[name] for name in names])
        writer.addFeature(out)
    del writer  # flush and close
    return path


class FloodAlgorithm(_Algorithm):
    """Flood extent: water in AFTER that was dry in BEFORE (or in a reference water layer)."""

    AFTER = "AFTER"
    BEFORE = "BEFORE"
    REFERENCE_WATER = "REFERENCE_WATER"
    REFERENCE_MIN = "REFERENCE_MIN"
    PROMPTS = "PROMPTS"
    BEFORE_PROMPTS = "BEFORE_PROMPTS"
    DECODER = "DECODER"
    SENSOR = "SENSOR"
    METHOD = "METHOD"
    CHANGE = "CHANGE"
    ALLOW_MIXED = "ALLOW_MIXED_SENSORS"
    MIN_AREA = "MIN_AREA"
    OUTPUT_CLASSES = "OUTPUT_CLASSES"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"

    def name(self) -> str:
        return "flood"

    def displayName(self) -> str:
        return "Flood extent (before / after)"

    def createInstance(self):
        return FloodAlgorithm()

    def shortHelpString(self) -> str:
        return (
            "Maps water in AFTER and in BEFORE exactly as geofloodsam:segment does (same "
            "method, sensor rules and decoder) and compares them on AFTER's grid; BEFORE may "
            "have another CRS, resolution and extent. Instead of BEFORE, REFERENCE_WATER: a "
            "water raster (water where the value >= REFERENCE_MIN, e.g. an occurrence layer in "
            "percent) or water polygons. Writes the class raster (1 flood, 2 permanent water, 3 "
            "receded, 0 dry, 255 nodata; styled) and the class polygons (GeoPackage layers "
            "flood, permanent_water, receded), and the run record beside the raster."
        )

    def initAlgorithm(self, config=None) -> None:
        menus = tasks.menu_choices(command)
        self.addParameter(QgsProcessingParameterRasterLayer(self.AFTER, "After (flood) raster"))
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.BEFORE, "Before raster (or give a reference water layer)", optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.REFERENCE_WATER, "Reference water (raster or polygons; instead of Before)",
            optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.REFERENCE_MIN, "Reference raster: water where value >=",
            QgsProcessingParameterNumber.Double, 1.0))
        for key, label in ((self.PROMPTS, "Prompts of After"),
                           (self.BEFORE_PROMPTS, "Prompts of Before")):
            self.addParameter(QgsProcessingParameterFeatureSource(
                key, f"{label} (water points, boxes); none: promptless",
                [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon],
                optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.DECODER, "Decoder (empty: by sensor and method, as for segment)", "",
            optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.SENSOR, "Sensor (auto: detected)", options=list(menus["sensor"]),
            defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.METHOD, "Method (auto: as for segment)", options=list(menus["method"]),
            defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.CHANGE, "Change (auto: log-ratio for Sentinel-1 pairs when measured, else "
            "water)", options=list(tasks.CHANGES), defaultValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.ALLOW_MIXED, "Allow a radar scene against an optical one", False))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_AREA, "Drop class polygons below (m²)", QgsProcessingParameterNumber.Double,
            0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT_CLASSES, "Flood classes"))
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT_POLYGONS, "Flood class polygons", QgsProcessing.TypeVectorPolygon))

    def _prompts(self, parameters, key, context, work, feedback) -> Path | None:
        source = self.parameterAsSource(parameters, key, context)
        if source is None:
            return None
        feedback.pushInfo(f"{key}: {source.featureCount()} feature(s)")
        return export_prompts(source, work / f"{key.lower()}.gpkg", context)

    def processAlgorithm(self, parameters, context, feedback) -> dict:
        menus = tasks.menu_choices(command)
        after = raster_file(self.parameterAsRasterLayer(parameters, self.AFTER, context),
                            "AFTER")
        before_layer = self.parameterAsRasterLayer(parameters, self.BEFORE, context)
        before = None if before_layer is None else raster_file(before_layer, "BEFORE")
        reference = self.parameterAsFile(parameters, self.REFERENCE_WATER, context) or None
        out_classes = self.parameterAsOutputLayer(parameters, self.OUTPUT_CLASSES, context)
        out_polygons = self.parameterAsOutputLayer(parameters, self.OUTPUT_POLYGONS, context)
        options = {
            "decoder": self.parameterAsString(parameters, self.DECODER, context).strip(),
            "sensor": menus["sensor"][self.parameterAsEnum(parameters, self.SENSOR, context)],
            "method": menus["method"][self.parameterAsEnum(parameters, self.METHOD, context)],
            "change": tasks.CHANGES[self.parameterAsEnum(parameters, self.CHANGE, context)],
            "reference_min": self.parameterAsDouble(parameters, self.REFERENCE_MIN, context),
            "min_area": self.parameterAsDouble(parameters, self.MIN_AREA, context),
        }
        mixed = self.parameterAsBool(parameters, self.ALLOW_MIXED, context)
        cmd = self._command(feedback)
        try:
            with tasks.work_folder(out_classes) as work:
                prompts = self._prompts(parameters, self.PROMPTS, context, work, feedback)
                before_prompts = self._prompts(parameters, self.BEFORE_PROMPTS, context, work,
                                               feedback)
                job = tasks.FloodJob(after, out_classes, out_polygons, before, reference,
                                     prompts, before_prompts, options, mixed)
                tasks.flood_to(cmd, job, work, **self._callbacks(feedback))
        except Cancelled as exc:
            feedback.reportError(str(exc))
            return {}
        except RunError as exc:
            raise QgsProcessingException(str(exc)) from None
        stem = Path(after).stem
        if context.willLoadLayerOnCompletion(out_classes):
            details = context.layerToLoadOnCompletionDetails(out_classes)
            details.name = f"{stem} flood classes"
            details.setPostProcessor(DefaultStyle.shared())
        if context.willLoadLayerOnCompletion(out_polygons):
            details = context.layerToLoadOnCompletionDetails(out_polygons)
            details.name = f"{stem} flood"
            details.setPostProcessor(DefaultStyle.shared())
            for layer in tasks.FLOOD_LAYERS[1:]:  # the other class layers, styled too
                extra = QgsProcessingContext.LayerDetails(
                    f"{stem} {layer.replace('_', ' ')}", details.project, self.OUTPUT_POLYGONS)
                extra.setPostProcessor(DefaultStyle.shared())
                context.addLayerToLoadOnCompletion(f"{out_polygons}|layername={layer}", extra)
        return {self.OUTPUT_CLASSES: out_classes, self.OUTPUT_POLYGONS: out_polygons}


class EvaluateRasterAlgorithm(_Algorithm):
    """Score a water mask against a ground-truth raster (IoU, Dice, Precision, Recall)."""

    PREDICTION = "PREDICTION"
    TRUTH = "TRUTH"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    SCORES = ("iou", "dice", "precision", "recall")

    def name(self) -> str:
        return "evaluate_raster"

    def displayName(self) -> str:
        return "Evaluate a water mask against ground truth"

    def createInstance(self):
        return EvaluateRasterAlgorithm()

    def shortHelpString(self) -> str:
        return (
            "Scores a water mask (1 water, 0 dry, 255 nodata, e.g. from geofloodsam:segment) "
            "against a truth raster (1 water) on the mask's grid, any CRS. Writes metrics.csv "
            "and report.md into the report folder."
        )

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.PREDICTION, "Water mask"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.TRUTH, "Ground truth"))
        self.addParameter(QgsProcessingParameterFolderDestination(
            self.OUTPUT_REPORT, "Report folder"))
        for key in self.SCORES:
            self.addOutput(QgsProcessingOutputNumber(key.upper(), key))

    def processAlgorithm(self, parameters, context, feedback) -> dict:
        pred = raster_file(self.parameterAsRasterLayer(parameters, self.PREDICTION, context),
                           "PREDICTION")
        truth = raster_file(self.parameterAsRasterLayer(parameters, self.TRUTH, context),
                            "TRUTH")
        out_dir = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context)
        cmd = self._command(feedback)
        try:
            scores = tasks.evaluate_to(cmd, pred, truth, out_dir, **self._callbacks(feedback))
        except Cancelled as exc:
            feedback.reportError(str(exc))
            return {}
        except RunError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(", ".join(f"{k} {scores[k]:.3f}" for k in self.SCORES if k in scores))
        return {self.OUTPUT_REPORT: out_dir,
                **{k.upper(): scores.get(k) for k in self.SCORES}}
