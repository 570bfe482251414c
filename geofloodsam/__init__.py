"""geofloodsam: map flood water in georeferenced imagery with Segment Anything."""

__version__ = "0.1.0"
