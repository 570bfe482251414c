"""SAM's image encoder on OpenVINO's CPU plugin (``geofloodsam[openvino]``).

The encoder is converted once with ``openvino.convert_model`` and saved as OpenVINO IR under
``$GEOFLOODSAM_HOME/openvino/<key>.xml``. The key hashes what the graph depends on: the
checkpoint's SHA-256, the model name and the hash of merged adapters, OpenVINO's version and
the source of the code that is traced. Later runs only compile the IR, and OpenVINO keeps the
compiled graph beside it (``compiled/``, its ``CACHE_DIR``), so a later load imports it
instead. A graph is
compiled for latency with ``INFERENCE_PRECISION_HINT`` f32 or bf16 and as many threads as
torch uses at the time of the call (``--threads``), and compiled again when that changes.

``int8`` (``--precision int8``): the encoder's fp32 IR with NNCF's weight-only int8
compression applied before it is saved (:mod:`geofloodsam.model.openvino_int8`), compiled
with f32 activations. Its key adds the compression recipe, and a signature beside it
(``<key>.json``: the recipe, the SHA-256 of the ``.bin`` and, for the record, NNCF's
version) is checked before the entry is used: an entry whose weights or recipe do not
match is refused and made again. A made entry runs without NNCF.

* :class:`OpenVinoEncoder`: ``(B, 3, S, S)`` -> ``(B, C, 64, 64)``, one image at a time
  (a fixed input of one image).

The mask decoder stays in torch on every runtime. Its OpenVINO graph (removed on 2026-12-07)
was no faster than torch on the README demo (2.09 against 2.07 s on a Zen 5 EPYC, 2.97
against 2.52 s on the EPYC before) and kept the buffers of its largest call: without it the
demo's peak memory fell from 1.26 to 1.00 GB (``docs/performance.md``).

Only this module imports ``openvino``, and only when a model is loaded with
``runtime="openvino"`` (or ``auto`` where it is installed).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from geofloodsam.errors import GeofloodsamError, ensure_signal_stack
from geofloodsam.files.space import reporting_full_disk

#: OpenVINO's inference precision of each ``--precision`` (int8: int8 weights, f32 arithmetic)
OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}


def _source(obj: object) -> str:
    try:
        return inspect.getsource(obj)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return repr(obj)


def _key(*parts: str) -> str:
    import openvino

    text = "\n".join([openvino.__version__, *parts])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


#: what to do when the graph cache's disk is full
OPENVINO_FULL_FIX = (
    "free some space there, set GEOFLOODSAM_HOME to a folder on another disk, or run with "
    "--runtime torch"
)
#: GEOFLOODSAM_HOME -> the folder used for it (a temporary one if it is unusable), per process
_DIRECTORIES: dict[Path, Path] = {}


def _default_directory() -> Path:
    """``$GEOFLOODSAM_HOME/openvino``, or a temporary folder when that is unusable."""
    from geofloodsam.model.embedding_cache import cache_home, usable_home_folder

    home = cache_home()
    if home not in _DIRECTORIES:
        _DIRECTORIES[home] = usable_home_folder("openvino", "OpenVINO graph cache")
    return _DIRECTORIES[home]


class _OpenVinoGraph:
    """A torch module as OpenVINO IR on disk, compiled on first use."""

    def __init__(
        self,
        build: Callable[[], torch.nn.Module],
        example: tuple[torch.Tensor, ...],
        precision: str,
        key: str,
        directory: Path | None = None,
    ) -> None:
        import openvino

        if precision not in OV_PRECISION:
            raise GeofloodsamError(
                f"OpenVINO runs SAM in fp32, bf16 or int8, not {precision!r}."
            )
        if directory is None:
            directory = _default_directory()
        self.ov = openvino
        self.core = openvino.Core()
        # compiled graphs are cached too (keyed by OpenVINO on the IR and the config)
        self.core.set_property({"CACHE_DIR": str(Path(directory) / "compiled")})
        self.build, self.example = build, example
        self.precision = precision
        self.path = Path(directory) / f"{key}.xml"
        self._compiled = None
        self._threads: int | None = None
        self._lock = threading.Lock()

    @property
    def cached(self) -> bool:
        """Whether a usable IR is on disk (for int8: its signature matches too)."""
        if not (self.path.is_file() and self.path.with_suffix(".bin").is_file()):
            return False
        return self.precision != "int8" or _signature_matches(self.path)

    def _ir(self) -> Path:
        """The IR's path: cached, or converted and saved there now (atomically)."""
        if self.cached:
            return self.path
        module = self.build()
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # tracing reports the Python branches on fixed shapes (padding, broadcasting)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            model = self.ov.convert_model(module, example_input=self.example)
        if self.precision == "int8":
            from geofloodsam.model.openvino_int8 import compress_weights

            model = compress_weights(model)
        needed = sum(t.numel() * t.element_size() for t in module.state_dict().values())
        space = {self.path.parent: needed + (1 << 20)}  # the weights (.bin) and the graph
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=".convert-"))
        try:
            with reporting_full_disk(space, "the OpenVINO graph cache", OPENVINO_FULL_FIX):
                self.ov.save_model(model, str(tmp / self.path.name), compress_to_fp16=False)
            if self.precision == "int8":
                _write_signature(tmp / self.path.name)
                (tmp / self.path.name).with_suffix(".json").replace(
                    self.path.with_suffix(".json")
                )
            (tmp / self.path.name).with_suffix(".bin").replace(self.path.with_suffix(".bin"))
            (tmp / self.path.name).replace(self.path)  # the .xml last: it marks a whole entry
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.path

    def _compile(self, config: dict):
        """Compile from the IR file; OpenVINO keeps the compiled blob in ``compiled/``."""
        try:
            return self.core.compile_model(str(self._ir()), "CPU", config)
        except RuntimeError:  # a broken cache entry: convert again, once
            self.path.unlink(missing_ok=True)
            return self.core.compile_model(str(self._ir()), "CPU", config)

    def prepare(self) -> None:
        """Convert (or read) and compile now, for the current torch thread count."""
        with self._lock:
            self._ready()

    def _ready(self):
        threads = torch.get_num_threads()
        if self._compiled is None or self._threads != threads:
            config = {
                "INFERENCE_PRECISION_HINT": OV_PRECISION[self.precision],
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_NUM_THREADS": int(threads),
            }
            if self.precision == "int8":
                from geofloodsam.model.openvino_int8 import INT8_RECIPE

                config["DYNAMIC_QUANTIZATION_GROUP_SIZE"] = int(
                    INT8_RECIPE["dynamic_quantization_group_size"]
                )
            self._compiled = self._compile(config)
            self._threads = threads
            ensure_signal_stack()  # OpenVINO leaves the main thread a stack it frees later
        return self._compiled

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run the compiled graph (calls from several threads take turns)."""
        with self._lock:
            result = self._ready()(list(inputs), share_inputs=True, share_outputs=True)
            return [np.array(result[i], dtype=np.float32, copy=True) for i in range(len(result))]


def _int8_signature(xml: Path) -> dict:
    """What an int8 entry is signed with: the recipe and the SHA-256 of its weights file."""
    from geofloodsam.files.hashing import sha256_file
    from geofloodsam.model.openvino_int8 import recipe_text

    return {"recipe": recipe_text(), "bin_sha256": sha256_file(xml.with_suffix(".bin"))}


def _write_signature(xml: Path) -> None:
    from geofloodsam.model.openvino_int8 import nncf_version

    record = {**_int8_signature(xml), "made_with_nncf": nncf_version()}
    xml.with_suffix(".json").write_text(json.dumps(record, sort_keys=True))


def _signature_matches(xml: Path) -> bool:
    """Whether the int8 entry ``xml`` carries the signature of its recipe and weights."""
    try:
        written = json.loads(xml.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return False
    expected = _int8_signature(xml)
    return isinstance(written, dict) and all(written.get(k) == v for k, v in expected.items())


class _Encoder(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)


class OpenVinoEncoder:
    """A callable ``(B, 3, S, S)`` float32 tensor -> ``(B, C, 64, 64)`` float32 tensor.

    Args:
        encoder: the torch image encoder (converted on first use when no IR is cached), or a
            function that returns it (called only to convert).
        image_size: the model's input side ``S``.
        precision: ``fp32``, ``bf16`` or ``int8`` (int8 weights, see
            :mod:`geofloodsam.model.openvino_int8`).
        model_name, checkpoint_sha256: what the cached IR is keyed by (with the encoder's
            source and OpenVINO's version; for int8 also the compression recipe).
        directory: where the IR is kept (default ``$GEOFLOODSAM_HOME/openvino``).
        source: the module that defines the encoder (default: that of ``encoder``'s class);
            needed when ``encoder`` is a function.
    """

    def __init__(
        self,
        encoder: torch.nn.Module | Callable[[], torch.nn.Module],
        image_size: int,
        precision: str,
        model_name: str,
        checkpoint_sha256: str | None,
        directory: Path | None = None,
        source: object | None = None,
    ) -> None:
        if isinstance(encoder, torch.nn.Module):
            module, encoder = encoder, lambda: module
            source = source or inspect.getmodule(type(module))
        parts = [model_name, str(checkpoint_sha256), _source(source)]
        if precision == "int8":  # fp32 / bf16 share one fp32 IR (the hint differs)
            from geofloodsam.model.openvino_int8 import recipe_text

            parts += ["int8", recipe_text()]
        key = "encoder-" + _key(*parts)
        example = (torch.zeros(1, 3, int(image_size), int(image_size)),)
        self.graph = _OpenVinoGraph(
            lambda: _Encoder(encoder()), example, precision, key, directory
        )

    def use_module(self, encoder: torch.nn.Module) -> None:
        """The torch encoder to convert from, should the cached IR turn out unusable."""
        self.graph.build = lambda: _Encoder(encoder)

    @property
    def cached(self) -> bool:
        """Whether the IR is on disk already (then compiling it needs no torch module)."""
        return self.graph.cached

    def prepare(self) -> None:
        """Convert (or read) and compile now."""
        self.graph.prepare()

    def prepare_in_background(self) -> threading.Thread:
        """Compile in a thread (OpenVINO releases the GIL meanwhile); :meth:`prepare` and the
        first call wait for it. A failure there is left to them to meet again and report."""

        def compile_quietly() -> None:
            try:
                self.graph.prepare()
            except Exception:  # noqa: BLE001 - prepare() in the caller's thread raises it
                pass

        thread = threading.Thread(target=compile_quietly, name="openvino-compile", daemon=True)
        thread.start()
        return thread

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Encode a batch, one image at a time."""
        batch = x.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(np.concatenate([self.graph.run(i[None])[0] for i in batch]))

