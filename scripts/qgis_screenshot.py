"""Render geofloodsam's outputs the way QGIS shows them on load, headless, into a PNG.

Run with QGIS's own Python (Debian: ``/usr/bin/python3`` with python3-qgis), not the venv::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 scripts/qgis_screenshot.py \\
        --scene sample_tiles/riverside_rgb.tif --mask out/riverside_mask.tif \\
        --polygons out/riverside_flood.gpkg --out docs/qgis_riverside.png

Two panels over the scene, each with the style QGIS loads by itself (nothing is restyled
here): left the water mask (its ``.qml``: water blue, dry transparent), right the flood
polygons (the GeoPackage's default style: translucent blue). Rendered with
``QgsMapRendererParallelJob`` on the scene's extent.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GDAL_PAM_ENABLED", "NO")  # no .aux.xml statistics beside the inputs

from qgis.core import (
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter


def render(layers: list, extent, crs, width: int, height: int) -> QImage:
    """Render ``layers`` (top first) over ``extent`` into a ``width`` x ``height`` image."""
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(crs)
    settings.setExtent(extent)
    settings.setOutputSize(QSize(width, height))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, start QGIS, render the two panels into ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scene", required=True)
    parser.add_argument("--mask", required=True)
    parser.add_argument("--polygons", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--width", type=int, default=600, help="width of one panel (px)")
    args = parser.parse_args(argv)

    app = QgsApplication([], False)
    app.initQgis()
    try:
        return screenshot(args)
    finally:
        app.exitQgis()


def screenshot(args: argparse.Namespace) -> int:
    """Load the layers (with their default styles) and write the PNG; 0 on success."""
    scene = QgsRasterLayer(args.scene, "scene")
    mask = QgsRasterLayer(args.mask, "mask")
    polygons = QgsVectorLayer(args.polygons, "polygons", "ogr")
    for layer in (scene, mask, polygons):
        if not layer.isValid():
            print(f"error: QGIS cannot open {layer.source()}", file=sys.stderr)
            return 1
    extent = scene.extent()
    height = round(args.width * extent.height() / extent.width())
    panels = [
        ("water mask (default style)", render([mask, scene], extent, scene.crs(), args.width,
                                              height)),
        ("flood polygons (default style)", render([polygons, scene], extent, scene.crs(),
                                                  args.width, height)),
    ]
    gap, caption = 12, 28
    image = QImage(2 * args.width + gap, height + caption, QImage.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setFont(QFont("DejaVu Sans", 11))
    for i, (title, panel) in enumerate(panels):
        x = i * (args.width + gap)
        painter.drawImage(x, caption, panel)
        painter.setPen(QColor("black"))
        painter.drawText(x, 0, args.width, caption, int(Qt.AlignCenter), title)
    painter.end()
    if not image.save(args.out, "PNG"):
        print(f"error: cannot write {args.out}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({image.width()} x {image.height()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
