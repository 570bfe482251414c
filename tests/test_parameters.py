"""No public function of the package takes more than :data:`MAX_PARAMETERS` parameters:
options travel as one value (a config dataclass such as
:class:`~geofloodsam.segmentation.config.SegmentConfig`), not as long argument lists.

Constructors are not counted (a config dataclass's generated ``__init__`` has one parameter
per option); every public module-level function and public method is.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import geofloodsam

MAX_PARAMETERS = 8

#: offenders left for now: "module:qualname" -> why (remove the entry once fixed)
ALLOWED: dict[str, str] = {}


def _public_callables():
    """(``module:qualname``, function) of every public function and method the package
    defines (imported names are counted where they are defined)."""
    for info in pkgutil.walk_packages(geofloodsam.__path__, "geofloodsam."):
        if info.name.split(".")[-1].startswith("_") or info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{module.__name__}:{name}", obj
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    if not attr.startswith("_") and inspect.isfunction(member):
                        yield f"{module.__name__}:{name}.{attr}", member


def _count(function) -> int:
    names = list(inspect.signature(function).parameters)
    return len([n for n in names if n not in ("self", "cls")])


def test_no_public_function_takes_more_than_eight_parameters() -> None:
    found = {name: _count(f) for name, f in _public_callables()}
    assert len(found) > 100  # the walk reached the package
    over = sorted(f"{name} ({n})" for name, n in found.items()
                  if n > MAX_PARAMETERS and name not in ALLOWED)
    assert not over, "more than 8 parameters (pass a config value): " + ", ".join(over)


def test_the_allowed_offenders_still_offend() -> None:
    """An entry of ALLOWED whose function was fixed (or removed) must go."""
    found = dict(_public_callables())
    fixed = [name for name in ALLOWED if name not in found or _count(found[name]) <= MAX_PARAMETERS]
    assert not fixed, f"fixed: remove {', '.join(fixed)} from ALLOWED"


@pytest.mark.parametrize(
    "name", ["geofloodsam.segmentation.pipeline:segment",
             "geofloodsam.segmentation.outputs:finish_scene"],
)
def test_the_segment_entry_points_stay_short(name: str) -> None:
    module, attr = name.split(":")
    lines = inspect.getsource(getattr(importlib.import_module(module), attr)).splitlines()
    assert len(lines) < 60, f"{name} has {len(lines)} lines: split it"
