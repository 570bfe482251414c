"""Writing and hashing files safely: atomic writes with one file mode, and content hashes.

May import: ``errors`` (the bottom layer).
"""
