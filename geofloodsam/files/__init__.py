"""Writing and hashing files safely: atomic writes with one file mode, all-or-nothing sets of
renames, content hashes, and hidden work folders that record their owner so that the ones a
killed run left are swept by later runs.

May import: ``errors`` (the bottom layer).
"""
