"""Writing and hashing files safely: atomic writes with one file mode, all-or-nothing sets of
renames, content hashes, hidden work folders that record their owner so that the ones a
killed run left are swept by later runs, a full disk reported as one line (folder, space left,
space needed), and the cache root ``GEOFLOODSAM_HOME`` with its temporary stand-in.

May import: ``errors`` (the bottom layer).
"""

from geofloodsam import lazy_api

#: the public names, each imported from its module on first use
_API = {
    "atomic_write": "atomic",
    "atomic_open": "atomic",
    "atomic_write_text": "atomic",
    "check_targets": "atomic",
    "replace_all": "atomic",
    "sha256_file": "hashing",
    "home_root": "home",
    "usable_home_folder": "home",
    "reporting_full_disk": "space",
    "free_bytes": "space",
    "human_bytes": "space",
    "make_workdir": "workdirs",
    "sweep_stale": "workdirs",
    "check_output_dir": "workdirs",
}
__all__ = [*_API]
__getattr__, __dir__ = lazy_api(__name__, _API)
