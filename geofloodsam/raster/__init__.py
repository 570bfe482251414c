"""TODO raster."""
