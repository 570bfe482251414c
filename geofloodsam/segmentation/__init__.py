"""TODO segmentation."""
