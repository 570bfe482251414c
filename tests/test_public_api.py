"""Every subpackage lists its public names in ``__all__``; each of them imports, and importing
the subpackages themselves loads neither torch nor GDAL (the names are imported on first use)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "geofloodsam"
SUBPACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
PUBLIC = [
    (sub, name)
    for sub in SUBPACKAGES
    for name in getattr(importlib.import_module(f"geofloodsam.{sub}"), "__all__", ())
]


@pytest.mark.parametrize("sub", SUBPACKAGES)
def test_every_subpackage_has_a_nonempty_all_without_repeats(sub: str) -> None:
    names = getattr(importlib.import_module(f"geofloodsam.{sub}"), "__all__", None)
    assert names, f"geofloodsam/{sub}/__init__.py needs __all__"
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(("sub", "name"), PUBLIC, ids=[f"{s}.{n}" for s, n in PUBLIC])
def test_every_public_name_imports_as_the_object_its_module_defines(sub: str, name: str) -> None:
    package = importlib.import_module(f"geofloodsam.{sub}")
    value = getattr(package, name)
    assert not isinstance(value, types.ModuleType), f"{sub}.{name} is shadowed by a module"
    assert name in dir(package)
    namespace: dict = {}
    exec(f"from geofloodsam.{sub} import {name}", namespace)  # the form users write
    assert namespace[name] is value
    module = getattr(package, "_API", {}).get(name)
    if module is not None:  # listed lazily: defined (or imported) in that module
        assert getattr(importlib.import_module(f"geofloodsam.{sub}.{module}"), name) is value


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        importlib.import_module("geofloodsam.tiles").nothing_here  # noqa: B018


def test_importing_every_subpackage_loads_neither_torch_nor_gdal() -> None:
    code = (
        "import importlib, sys\n"
        f"for sub in {SUBPACKAGES!r}:\n"
        "    importlib.import_module('geofloodsam.' + sub)\n"
        "heavy = [m for m in ('torch', 'rasterio', 'osgeo') if m in sys.modules]\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
