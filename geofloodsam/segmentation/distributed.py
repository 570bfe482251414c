"""Where tile work runs: in-process, or on a Dask cluster with the model loaded once per worker.

Dask is an optional extra (``pip install 'geofloodsam[dask]'``): this module imports without
it, and :func:`open_session` says how to install it when it is missing. Typical use::

    with open_session(scheduler="tcp://head:8786") as session:   # or workers=4: local cluster
        report = preflight(session.client, ModelSpec("vit_t"), scene_paths)
        executor = DaskExecutor(session.client, report.plugin)
        for outcome in executor.map(work, [(scene_spec, payload), ...]):
            ...   # outcomes come back in the order of the items, whatever order tasks finish

* :class:`ModelPlugin`, a Dask ``WorkerPlugin``, loads the model on a worker the first time a
  task asks for it (model name, checkpoint, decoder, device) and keeps it; the rasters a worker
  reads stay open between its tasks.
* A task carries a tile's work function (by reference), a small :class:`SceneSpec` (path, band
  selection, the scene-level stretch) and the tile's payload (its window and prompts): never
  weights or pixel arrays. It returns a :class:`TileOutcome` (the work's result, the seconds it
  took, the worker).
* :func:`preflight` checks every worker before any tile is sent: it can import geofloodsam (the
  client's version), find the weights without downloading them, read the scenes, and load the
  model; the checkpoint and decoder hashes must agree everywhere. A failure is one line naming
  the worker and what it lacks.
* :class:`DaskExecutor` submits tasks with ``retries`` (a task whose worker dies is recomputed
  elsewhere; Dask also reschedules the tasks of a lost worker), keeps a bounded number in
  flight, collects them with ``as_completed`` and hands them back in submission order, so that
  the client blends tiles in exactly the order of an in-process run.

* :class:`DaskExecutor` and :class:`~geofloodsam.tiles.executor.LocalExecutor` (in
  :mod:`geofloodsam.tiles.executor`, so that an in-process run never imports Dask) both
  implement :class:`~geofloodsam.tiles.executor.Executor`, the contract of a work function
  ``work(model, scene, stretch, payload)``; with ``map(..., cache=True)`` it also gets the
  executor's :class:`~geofloodsam.tiles.work.RunEmbeddings` (in-process: one that spills
  to disk; on a worker: a bounded memory cache kept between tasks).

Scene paths must be readable at the same path on every worker (shared storage).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geofloodsam.errors import GeofloodsamError, children_ignore_sigint
from geofloodsam.model.spec import ModelSpec
from geofloodsam.tiles.executor import (
    OpenScenes,
    SceneSpec,
    TileOutcome,
    WorkFunction,
)
from geofloodsam.tiles.work import WORKER_EMBEDDING_BYTES, RunEmbeddings

try:  # the optional extra
    from distributed import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover - exercised only without the extra
    _WorkerPluginBase = object
    HAVE_DASK = False
else:
    HAVE_DASK = True

DASK_HINT = "install the Dask extra: pip install 'geofloodsam[dask]'"
#: seconds to wait for the scheduler to answer
CONNECT_TIMEOUT = 10.0
#: seconds each worker gets to pass the preflight (import, find weights, load the model)
PREFLIGHT_TIMEOUT = 300.0
#: times a failed tile task is resubmitted (on top of Dask rescheduling a lost worker's tasks)
RETRIES = 3

log = logging.getLogger(__name__)


def require_dask() -> None:
    """Raise a one-line error when the Dask extra is not installed."""
    if not HAVE_DASK:
        raise GeofloodsamError(f"--scheduler / --workers need Dask: {DASK_HINT}.")


# --------------------------------------------------------------------------- worker side
class ModelPlugin(_WorkerPluginBase):
    """Keeps one loaded model (and the open rasters) on a worker for all its tasks."""

    idempotent = False

    def __init__(
        self,
        spec: ModelSpec,
        torch_threads: int | None = None,
        threads_by_host: dict[str, int] | None = None,
    ) -> None:
        self.spec = spec
        self.name = spec.plugin_name
        self.torch_threads = torch_threads
        self.threads_by_host = dict(threads_by_host or {})

    def setup(self, worker) -> None:
        """Called by Dask when the plugin reaches a worker: nothing heavy happens here."""
        self.worker = worker
        self.loads = 0
        self.load_seconds = 0.0
        self._model = None
        self._embeddings = None
        self._lock = threading.Lock()
        self.scenes = OpenScenes()

    def teardown(self, worker) -> None:
        """Drop the model and the kept embeddings, close this thread's rasters."""
        self._model = None
        self._embeddings = None
        self.scenes.close()

    def model(self):
        """The worker's model, loaded on first use (once, whatever the number of threads)."""
        with self._lock:
            if self._model is None:
                import torch

                start = time.perf_counter()
                model = self.spec.load()
                if model.device.type == "cpu":
                    torch.set_num_threads(self._threads())
                self.load_seconds = time.perf_counter() - start
                self.loads += 1
                self._model = model
            return self._model

    def _threads(self) -> int:
        """Torch threads per task: given, else this host's cores shared by all task threads.

        :func:`preflight` counts the task threads of every worker on each host; a worker on a
        host it has not seen divides the host's cores by its own task threads.
        """
        import socket

        from geofloodsam.model.device import cpu_count

        if self.torch_threads:
            return self.torch_threads
        if socket.gethostname() in self.threads_by_host:
            return self.threads_by_host[socket.gethostname()]
        nthreads = max(1, int(getattr(self.worker.state, "nthreads", 1)))
        return max(1, cpu_count() // nthreads)

    def scene(self, spec: SceneSpec):
        """(open Scene, Stretch) for ``spec``; rasters stay open per thread (a few at most)."""
        return self.scenes.get(spec)

    def embeddings(self):
        """The worker's cache of kept embeddings (bounded; shared by its task threads)."""
        with self._lock:
            if self._embeddings is None:
                self._embeddings = RunEmbeddings(None, WORKER_EMBEDDING_BYTES)
            return self._embeddings


def _plugin(name: str) -> ModelPlugin:
    from distributed import get_worker

    worker = get_worker()
    plugin = worker.plugins.get(name)
    if plugin is None:
        raise RuntimeError(f"worker {worker.address} has no plugin {name}: run preflight first")
    return plugin


def run_tile(
    plugin_name: str, work: WorkFunction, scene: SceneSpec, payload: Any, cache: bool = False
) -> TileOutcome:
    """The Dask task: ``work(model, scene, stretch, payload[, keeper])`` on the worker."""
    plugin = _plugin(plugin_name)
    model = plugin.model()
    raster, stretch = plugin.scene(scene)
    extra = (plugin.embeddings(),) if cache else ()
    start = time.perf_counter()
    result = work(model, raster, stretch, payload, *extra)
    return TileOutcome(result, time.perf_counter() - start, plugin.worker.address, os.getpid())


def _probe(spec: ModelSpec, scene_paths: Sequence[str]) -> dict[str, Any]:
    """Worker-side checks that need no model: version, weights, scenes."""
    import socket

    import geofloodsam
    from geofloodsam.model.device import cpu_count

    problems = []
    missing = spec.missing()
    if missing:
        problems.append(missing)
    for path in scene_paths:
        if not os.access(path, os.R_OK):
            problems.append(
                f"cannot read scene {path}: put the scenes on storage every worker sees at the "
                "same path"
            )
            break
    return {
        "version": geofloodsam.__version__,
        "problems": problems,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "cpus": cpu_count(),
    }


def _warm(plugin_name: str) -> dict[str, Any]:
    """Worker-side: load the model through the plugin; its info and how long loading took."""
    import torch

    plugin = _plugin(plugin_name)
    model = plugin.model()
    return {
        **model.info(),
        "load_seconds": plugin.load_seconds,
        "loads": plugin.loads,
        "batch_size": int(getattr(model, "batch_size", 1)),
        "torch_threads": torch.get_num_threads(),
    }


def plugin_loads(client, plugin_name: str) -> dict[str, int]:
    """How many times each worker has loaded the model (for tests and run records)."""

    def loads(dask_worker, name=plugin_name):
        plugin = dask_worker.plugins.get(name)
        return getattr(plugin, "loads", 0)

    return client.run(loads)


# --------------------------------------------------------------------------- client side
@dataclass
class DaskSession:
    """A client connected to a scheduler, and the local cluster it started (if any)."""

    client: Any
    cluster: Any = None
    scheduler: str = ""  # the address given, or "local"

    def workers(self) -> dict[str, dict]:
        """Worker address -> its scheduler record (name, nthreads, ...)."""
        return dict(self.client.scheduler_info(n_workers=-1)["workers"])

    def describe(self) -> dict[str, Any]:
        """For run records: scheduler, worker count, task threads."""
        workers = self.workers()
        return {
            "scheduler": self.scheduler,
            "address": self.client.scheduler.address,
            "workers": len(workers),
            "threads": sum(int(w.get("nthreads", 1)) for w in workers.values()),
        }

    def close(self) -> None:
        """Close the client, then the local cluster (its workers quietened first)."""
        if self.cluster is not None:
            quiet_cluster_logs(self.client)
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_session(
    scheduler: str | None = None,
    workers: int | None = None,
    *,
    threads_per_worker: int = 1,
    connect_timeout: float = CONNECT_TIMEOUT,
    cluster_kwargs: dict | None = None,
) -> DaskSession:
    """Connect to ``scheduler`` or start a local cluster of ``workers`` processes.

    A local cluster gets ``threads_per_worker`` task threads per process (1: each worker
    encodes one tile at a time with its share of the cores). Raises a one-line
    :class:`GeofloodsamError` for an unreachable scheduler or a bad worker count.
    """
    if scheduler is None and workers is None:
        raise GeofloodsamError("open_session needs a scheduler address or a worker count.")
    check_session_args(scheduler, workers)
    if scheduler is not None:
        return DaskSession(_connect(scheduler, connect_timeout), None, scheduler)
    from distributed import Client, LocalCluster

    kwargs = {
        "n_workers": workers,
        "threads_per_worker": threads_per_worker,
        "processes": True,
        "dashboard_address": ":0",
        "silence_logs": logging.ERROR,
        **(cluster_kwargs or {}),
    }
    with children_ignore_sigint():  # Ctrl-C: this process stops them, without tracebacks
        cluster = LocalCluster(**kwargs)
    try:
        client = Client(cluster, set_as_default=False)
    except BaseException:
        cluster.close()
        raise
    return DaskSession(client, cluster, "local")


def _quiet_distributed_logs() -> None:
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


def quiet_cluster_logs(client) -> None:
    """Silence Dask's own logs in every worker process of a cluster about to be closed.

    A worker whose heartbeat is in flight when the scheduler closes logs an ERROR with a
    traceback ("Failed to communicate with scheduler during heartbeat"): noise on a local
    cluster this process is stopping (e.g. after Ctrl-C), which must end with one line.
    Only the worker processes are touched (a local cluster's nannies and scheduler live in
    this process, whose logging stays the caller's). A worker that no longer answers is
    left as it is.
    """
    try:
        client.run(_quiet_distributed_logs)
    except Exception as exc:  # noqa: BLE001 - a lost worker: nothing to quieten
        log.debug("could not quieten the cluster's logs: %s", exc)


def check_session_args(scheduler: str | None, workers: int | None) -> None:
    """One-line errors for ``--scheduler`` / ``--workers`` before anything is started.

    Neither given is fine (the work runs in-process); either needs the Dask extra.
    """
    if scheduler is None and workers is None:
        return
    require_dask()
    if scheduler is not None and workers is not None:
        raise GeofloodsamError(
            "give either --scheduler ADDRESS (an existing Dask cluster) or --workers N "
            "(a local cluster), not both."
        )
    if workers is not None and workers < 1:
        raise GeofloodsamError(f"--workers must be at least 1, got {workers}.")


def _connect(address: str, timeout: float):
    """A client of the scheduler at ``address``; one-line error if it cannot be reached."""
    from distributed import Client

    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, garbage from a non-Dask port
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise GeofloodsamError(
            f"cannot reach the Dask scheduler at {address} ({reason}): check the address "
            "(e.g. tcp://host:8786) and that `dask scheduler` runs there and its port is open."
        ) from None


def _label(address: str, info: dict) -> str:
    name = info.get("name")
    return address if name in (None, address) else f"{address} (name {name})"


@dataclass
class PreflightReport:
    """What :func:`preflight` found: the plugin name and each worker's model info."""

    plugin: str
    workers: dict[str, dict]  # address -> probe + model info

    @property
    def model_info(self) -> dict[str, Any]:
        """The model's info as one worker reports it (hashes are equal on all)."""
        first = self.workers[min(self.workers)]
        keys = (
            "model", "checkpoint", "checkpoint_sha256", "decoder", "decoder_sha256", "device",
            "precision", "runtime",
        )
        return {k: first.get(k) for k in keys}

    @property
    def batch_size(self) -> int:
        """Tiles per encoder call: the smallest of the workers' (1 on CPU workers)."""
        return min(int(w.get("batch_size", 1)) for w in self.workers.values())

    @property
    def torch_threads(self) -> list[int]:
        """The torch thread counts the workers use (sorted, distinct)."""
        return sorted({int(w.get("torch_threads", 0)) for w in self.workers.values()})

    @property
    def load_seconds(self) -> float:
        """The longest model load among the workers."""
        return max(float(w.get("load_seconds", 0.0)) for w in self.workers.values())


def _gather_per_worker(client, futures: dict[str, Any], timeout: float, what: str) -> dict:
    """Wait for one pinned future per worker; results or exceptions, by worker address."""
    from distributed import wait

    try:
        with client.as_current():
            wait(list(futures.values()), timeout=timeout)
    except TimeoutError:
        late = [a for a, f in futures.items() if not f.done()]
        client.cancel([futures[a] for a in late])
        raise GeofloodsamError(
            f"worker {late[0]} did not {what} within {timeout:g} s"
            f"{f' (nor {len(late) - 1} more)' if len(late) > 1 else ''}: check that it is "
            "alive and not overloaded."
        ) from None
    out = {}
    for address, fut in futures.items():
        out[address] = fut.exception() if fut.status == "error" else fut.result()
    return out


def _fail(problems: list[tuple[str, str]]) -> None:
    if problems:
        label, what = problems[0]
        more = f" ({len(problems) - 1} more worker(s) fail too)" if len(problems) > 1 else ""
        raise GeofloodsamError(f"worker {label} {what}{more}.")


def _import_problem(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, ImportError) or "ModuleNotFoundError" in text or "ImportError" in text:
        return (
            f"cannot import geofloodsam ({text[:120]}): install geofloodsam[dask] (the client's "
            "version) in the workers' environment"
        )
    return f"failed its check ({type(exc).__name__}: {text[:160]})"


def _threads_by_host(workers: dict[str, dict], probes: dict[str, dict]) -> dict[str, int]:
    """Torch threads per task on each host: its cores over the task threads of its workers."""
    threads: dict[str, int] = {}
    cpus: dict[str, int] = {}
    for address, probe in probes.items():
        host = probe["host"]
        threads[host] = threads.get(host, 0) + max(1, int(workers[address].get("nthreads", 1)))
        cpus[host] = int(probe["cpus"])
    return {host: max(1, cpus[host] // n) for host, n in threads.items()}


def preflight(
    client,
    spec: ModelSpec,
    scene_paths: Sequence[str | Path] = (),
    *,
    torch_threads: int | None = None,
    timeout: float = PREFLIGHT_TIMEOUT,
) -> PreflightReport:
    """Check every worker, register :class:`ModelPlugin` and load the model on each.

    Raises a one-line :class:`GeofloodsamError` naming the first worker that cannot import
    geofloodsam (or runs another version), lacks the weights or a scene, fails to load the
    model, or loads a checkpoint/decoder with another hash than the others.
    """
    import geofloodsam

    try:
        client.wait_for_workers(1, timeout=timeout)
    except TimeoutError:
        raise GeofloodsamError(
            f"the Dask scheduler at {client.scheduler.address} has no workers: start some "
            f"(`dask worker {client.scheduler.address}`)."
        ) from None
    workers = dict(client.scheduler_info(n_workers=-1)["workers"])
    labels = {a: _label(a, w) for a, w in workers.items()}
    paths = [str(Path(p).resolve()) for p in scene_paths]
    token = uuid.uuid4().hex[:8]

    def pinned(fn, *args) -> dict[str, Any]:
        return {
            a: client.submit(
                fn, *args, workers=[a], allow_other_workers=False, pure=False,
                key=f"geofloodsam-{fn.__name__.strip('_')}-{token}-{i}",
            )
            for i, a in enumerate(workers)
        }

    # client.run, not a task: a worker that cannot unpickle a task breaks its stream
    probes = client.run(_probe, spec, paths, on_error="return", workers=list(workers))
    problems = []
    for address, probe in probes.items():
        if isinstance(probe, BaseException):
            problems.append((labels[address], _import_problem(probe)))
        elif probe["version"] != geofloodsam.__version__:
            problems.append((labels[address], (
                f"runs geofloodsam {probe['version']}, the client {geofloodsam.__version__}: "
                "install the same version everywhere"
            )))
        elif probe["problems"]:
            problems.append((labels[address], probe["problems"][0]))
    _fail(problems)

    plugin = ModelPlugin(spec, torch_threads, _threads_by_host(workers, probes))
    client.register_plugin(plugin, name=plugin.name)
    warm = _gather_per_worker(client, pinned(_warm, plugin.name), timeout, "load the model")
    expected = spec.expected_hashes()
    for address, info in warm.items():
        if isinstance(info, BaseException):
            text = info.message if isinstance(info, GeofloodsamError) else str(info)
            problems.append((labels[address], f"cannot load the model: {' '.join(text.split())}"))
            continue
        for key in ("checkpoint_sha256", "decoder_sha256"):
            want = expected[key] or next(
                (w[key] for w in warm.values() if isinstance(w, dict)), None
            )
            if info[key] != want:
                what = key.split("_")[0]
                problems.append((labels[address], (
                    f"loads a {what} with SHA-256 {str(info[key])[:12]}, expected "
                    f"{str(want)[:12]}: give every worker the same {what} file"
                )))
                break
    _fail(problems)
    report = {a: {**probes[a], **warm[a], "name": workers[a].get("name")} for a in workers}
    return PreflightReport(plugin.name, report)


class DaskExecutor:
    """The :class:`~geofloodsam.tiles.executor.Executor` of a Dask cluster: runs tile work on
    its workers and yields the outcomes in submission order.

    At most ``max_in_flight`` tasks are submitted but not yet handed back (default: four per
    task thread of the cluster), which bounds the client's memory. ``on_outcome(index,
    outcome)`` is called as each task completes (in completion order).
    """

    def __init__(
        self,
        client,
        plugin_name: str,
        *,
        retries: int = RETRIES,
        max_in_flight: int | None = None,
        on_outcome: Callable[[int, TileOutcome], None] | None = None,
    ) -> None:
        self.client = client
        self.plugin_name = plugin_name
        self.retries = retries
        self.max_in_flight = max_in_flight
        self.on_outcome = on_outcome
        self._run = uuid.uuid4().hex[:8]
        self._counter = itertools.count()

    def _window(self) -> int:
        if self.max_in_flight:
            return self.max_in_flight
        workers = self.client.scheduler_info(n_workers=-1)["workers"].values()
        return max(2, 4 * sum(int(w.get("nthreads", 1)) for w in workers))

    def map(
        self, work: WorkFunction, items: Iterable[tuple[SceneSpec, Any]], *, cache: bool = False
    ) -> Iterator[TileOutcome]:
        """``work(model, scene, stretch, payload)`` for each (scene, payload), in order.

        With ``cache``, ``work`` also gets the worker's kept embeddings as a fifth argument.
        """
        from distributed import as_completed

        items = iter(enumerate(items))
        window = self._window()
        batch = next(self._counter)
        index: dict[str, int] = {}
        ready: dict[int, TileOutcome] = {}
        pending = as_completed(loop=self.client.loop)
        submitted = handed = 0
        try:
            while True:
                while submitted - handed < window:
                    nxt = next(items, None)
                    if nxt is None:
                        break
                    i, (scene, payload) = nxt
                    fut = self.client.submit(
                        run_tile, self.plugin_name, work, scene, payload, cache,
                        key=f"geofloodsam-tile-{self._run}-{batch}-{i}",
                        retries=self.retries, pure=False,
                    )
                    index[fut.key] = i
                    pending.add(fut)
                    submitted += 1
                if handed == submitted:
                    return
                fut = next(pending)
                i = index.pop(fut.key)
                ready[i] = self._result(fut, i)
                if self.on_outcome is not None:
                    self.on_outcome(i, ready[i])
                while handed in ready:
                    yield ready.pop(handed)
                    handed += 1
        finally:
            leftover = list(pending.futures) if hasattr(pending, "futures") else []
            if leftover:
                self.client.cancel(leftover)

    @staticmethod
    def _result(fut, i: int) -> TileOutcome:
        try:
            outcome = fut.result()
        except GeofloodsamError:
            raise
        except Exception as exc:  # noqa: BLE001 - KilledWorker, CancelledError, task errors
            text = " ".join(str(exc).split())[:200]
            raise GeofloodsamError(
                f"tile task {i} failed on the Dask cluster ({type(exc).__name__}: {text}): "
                "see the worker logs; rerun to retry."
            ) from None
        finally:
            fut.release()
        return outcome

    def forget(self, keys: Iterable[Hashable]) -> None:
        """Nothing to do: the workers' embedding caches forget by themselves (LRU)."""
