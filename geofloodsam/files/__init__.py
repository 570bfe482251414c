"""Writing and hashing files safely: atomic writes with one file mode, and content hashes.

The bottom layer: imports nothing of geofloodsam but :mod:`geofloodsam.errors`.
"""
