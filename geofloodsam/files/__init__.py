"""Writing and hashing files safely: atomic writes with one file mode, all-or-nothing sets of
renames, content hashes, hidden work folders that record their owner so that the ones a
killed run left are swept by later runs, a full disk reported as one line (folder, space left,
space needed), and the cache root ``GEOFLOODSAM_HOME`` with its temporary stand-in.

May import: ``errors`` (the bottom layer).
"""
