"""Where tile work runs: the :class:`Executor` contract and the in-process executor.

An executor maps a *work function* over (:class:`SceneSpec`, payload) items and hands back a
:class:`TileOutcome` per item, in the order of the items, whatever order they ran in. A work
function is called ``work(model, scene, stretch, payload)``: ``scene`` the open raster of
the item's spec, ``stretch`` its scene-level stretch; with ``map(..., cache=True)`` it also
gets the executor's :class:`~geofloodsam.tiles.work.RunEmbeddings`. Work functions and
payloads must be picklable (module-level functions, dataclasses): a cluster sends them to
its workers.

* :class:`LocalExecutor` runs the work in this process, one item after the other, with no
  Dask at all (``segment`` without ``--scheduler`` / ``--workers``);
* :class:`geofloodsam.segmentation.distributed.DaskExecutor` sends it to a Dask cluster.

Both implement :class:`Executor`, the only thing the pipeline knows of them.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from geofloodsam.tiles.work import RunEmbeddings

#: ``work(model, scene, stretch, payload[, keeper])`` -> the payload's result
WorkFunction = Callable[..., Any]
#: open rasters kept per thread (in-process or on a worker)
SCENE_CACHE = 4


@dataclass(frozen=True)
class SceneSpec:
    """A scene as a task sees it: path, band selection, the scene-level stretch, and the
    sensor found when the scene was planned (tasks do not detect it again)."""

    path: str
    bands: tuple[int, ...]
    stretch: dict = field(hash=False)  # Stretch.to_dict()
    sensor: dict | None = field(default=None, hash=False)  # SensorInfo.to_dict()
    composite: bool = False  # tiles read as the sensor's composite (bands = its bands)

    @classmethod
    def of(cls, scene, stretch) -> SceneSpec:
        """From an open :class:`~geofloodsam.raster.scene.Scene` and its ``Stretch``."""
        sensor = None if scene.sensor is None else scene.sensor.to_dict()
        return cls(str(Path(scene.path).resolve()), tuple(scene.bands), stretch.to_dict(),
                   sensor, bool(scene.composite))

    def open(self):
        """Open the scene as it was planned (an open :class:`~geofloodsam.raster.scene.Scene`)."""
        from geofloodsam.raster.scene import Scene
        from geofloodsam.raster.sensors import SensorInfo

        info = None if self.sensor is None else SensorInfo.from_dict(self.sensor)
        return Scene.open(self.path, None if self.composite else self.bands, sensor=info)


@dataclass
class TileOutcome:
    """A tile's result and where/how long it was computed."""

    result: Any
    seconds: float  # time spent in the work function
    worker: str  # worker address, or "local"
    pid: int


class OpenScenes:
    """Rasters kept open between tasks: a few per thread, the least recently used closed."""

    def __init__(self, size: int = SCENE_CACHE) -> None:
        self.size = size
        self._local = threading.local()

    def get(self, spec: SceneSpec):
        """(open Scene, Stretch) for ``spec``."""
        from geofloodsam.raster.scene import Stretch

        cache: OrderedDict = getattr(self._local, "scenes", None) or OrderedDict()
        self._local.scenes = cache
        key = (spec.path, spec.bands, spec.composite)
        scene = cache.pop(key, None) or spec.open()
        cache[key] = scene
        while len(cache) > self.size:
            cache.popitem(last=False)[1].close()
        return scene, Stretch.from_dict(spec.stretch)

    def close(self) -> None:
        """Close this thread's rasters."""
        cache = getattr(self._local, "scenes", None) or {}
        while cache:
            cache.popitem()[1].close()


@runtime_checkable
class Executor(Protocol):
    """What runs tile work: in this process (:class:`LocalExecutor`) or on a Dask cluster
    (:class:`~geofloodsam.segmentation.distributed.DaskExecutor`)."""

    def map(
        self, work: WorkFunction, items: Iterable[tuple[SceneSpec, Any]], *, cache: bool = False
    ) -> Iterator[TileOutcome]:
        """``work(model, scene, stretch, payload[, keeper])`` for each (scene, payload), the
        outcomes in the order of ``items``; with ``cache`` the work also gets kept embeddings."""
        ...

    def forget(self, keys: Iterable[Hashable]) -> None:
        """Drop the kept embeddings of ``keys`` (a finished scene's tiles), if it keeps any."""
        ...


class LocalExecutor:
    """The :class:`Executor` of this process: the work runs here, item after item, no Dask.

    ``cache_dir``: where kept embeddings beyond the in-memory cap are spilled.
    """

    def __init__(self, model, cache_dir: Path | None = None) -> None:
        self.model = model
        self.keeper = RunEmbeddings(cache_dir)
        self.scenes = OpenScenes()

    def map(
        self, work: WorkFunction, items: Iterable[tuple[SceneSpec, Any]], *, cache: bool = False
    ) -> Iterator[TileOutcome]:
        """``work(model, scene, stretch, payload[, keeper])`` for each item, one by one."""
        extra = (self.keeper,) if cache else ()
        for scene, payload in items:
            raster, stretch = self.scenes.get(scene)
            start = time.perf_counter()
            result = work(self.model, raster, stretch, payload, *extra)
            yield TileOutcome(result, time.perf_counter() - start, "local", os.getpid())

    def forget(self, keys: Iterable[Hashable]) -> None:
        """Drop the kept embeddings of ``keys`` (a finished scene's tiles)."""
        self.keeper.forget(keys)

    def close(self) -> None:
        """Close the rasters this executor opened."""
        self.scenes.close()
