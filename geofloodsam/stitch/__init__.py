"""TODO stitch."""
