"""TODO tiles."""
