"""What ``--precision`` and ``--runtime`` resolve to on this machine: the encoder's path.

The image encoder is the floor of every run; how fast it can go depends on the hardware:

* **CUDA**: torch with autocast, bfloat16 where the GPU supports it, else float16.
* **Any CPU**: float32. OpenVINO's float32 CPU plugin, when installed (``pip install
  geofloodsam[openvino]``), runs the encoder; otherwise torch. bfloat16 (``--precision
  bf16``: torch autocast, or OpenVINO's bf16 inference) is 1.7-2.8x faster in the encoder on
  a CPU with bfloat16 units (``avx512_bf16`` or AMX ``amx_bf16``), but measured there it
  moved the masks of the synthetic 4096² and 16384² scenes far from fp32's (IoU 0.96 and
  0.69-0.73: many uncertain water fragments flip), so ``auto`` does not take it: it is there
  for who asks. So is ``--precision int8`` (OpenVINO with the encoder's fully connected
  weights in int8, ``geofloodsam[int8]``): 1.17-1.27x faster in the encoder than OpenVINO
  fp32 on an AVX-512 VNNI CPU (shared cores), masks within IoU 0.998 of fp32 on the demo and
  at 4096², but 0.92 at 16384²; on an AVX2 CPU without VNNI it is slower (0.91x).

``fp32`` on the torch runtime is the reference path and always available. The table is
:func:`resolve_encoder`; it takes the CPU flags and whether OpenVINO is importable as
arguments, so every row can be tested on any machine. The figures behind it are in
``docs/performance.md``.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.choices import PRECISION_CHOICES, RUNTIME_CHOICES

#: CPU flags (``/proc/cpuinfo``) of hardware bfloat16 arithmetic
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class EncoderPlan:
    """How the image encoder runs: ``precision`` fp32 / bf16 / fp16 on ``runtime`` torch /
    openvino, and why that was chosen."""

    precision: str
    runtime: str
    reason: str

    @property
    def signature(self) -> str:
        """``runtime-precision``: what the embedding cache signs entries with."""
        return f"{self.runtime}-{self.precision}"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``/proc/cpuinfo``; empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_has_bf16(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU does bfloat16 arithmetic in hardware (AVX512-BF16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    if flags:
        return any(f in flags for f in BF16_FLAGS)
    try:  # no /proc/cpuinfo (macOS, Windows): ask torch (AVX512 / AVX512_BF16 / AMX ...)
        import torch

        return "BF16" in torch.backends.cpu.get_cpu_capability().upper() or "AMX" in (
            torch.backends.cpu.get_cpu_capability().upper()
        )
    except Exception:  # noqa: BLE001 - no answer means no bf16
        return False


def openvino_available() -> bool:
    """Whether the optional OpenVINO runtime is installed (``geofloodsam[openvino]``)."""
    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):  # a broken install, or blocked in sys.modules
        return False


def resolve_encoder(
    precision: str = "auto",
    runtime: str = "auto",
    device_type: str = "cpu",
    *,
    flags: frozenset[str] | None = None,
    openvino: bool | None = None,
    cuda_bf16: bool | None = None,
) -> EncoderPlan:
    """The encoder path for ``--precision`` / ``--runtime`` on a ``device_type`` (cpu/cuda).

    ``auto`` precision is the fastest that keeps masks within IoU 0.98 of fp32 (measured in
    ``docs/performance.md``): fp32 on every CPU (bf16 failed that test on a CPU with bf16
    units), bf16 autocast on CUDA (fp16 on GPUs without bf16; not measured here). ``auto``
    runtime is OpenVINO on the CPU when it is installed, else torch. ``int8`` (int8 weights,
    OpenVINO only) is never ``auto``: it moved the masks of the 16384² synthetic scene to
    IoU 0.92. ``flags``, ``openvino`` and ``cuda_bf16`` default to this machine's.
    """
    precision, runtime = str(precision).lower(), str(runtime).lower()
    if precision not in PRECISION_CHOICES:
        raise GeofloodsamError(
            f"unknown precision {precision!r}: use one of {', '.join(PRECISION_CHOICES)}."
        )
    if runtime not in RUNTIME_CHOICES:
        raise GeofloodsamError(
            f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIME_CHOICES)}."
        )
    if device_type == "cuda":
        if precision == "int8":
            raise GeofloodsamError(
                "--precision int8 runs on the CPU only (OpenVINO): use --device cpu, or "
                "--precision auto on CUDA."
            )
        if runtime == "openvino":
            raise GeofloodsamError(
                "--runtime openvino runs on the CPU only: use --device cpu, or --runtime torch "
                "(or auto) on CUDA."
            )
        if precision == "auto":
            if cuda_bf16 is None:
                import torch

                cuda_bf16 = torch.cuda.is_bf16_supported()
            precision = "bf16" if cuda_bf16 else "fp16"
            return EncoderPlan(precision, "torch", f"CUDA: {precision} autocast")
        return EncoderPlan(precision, "torch", f"CUDA: {precision} asked for")
    has_bf16 = cpu_has_bf16(flags)
    if openvino is None:
        openvino = openvino_available()
    if runtime == "openvino" and not openvino:
        raise GeofloodsamError(
            "--runtime openvino needs OpenVINO: `pip install geofloodsam[openvino]` (or "
            "`pip install openvino`), or use --runtime torch."
        )
    if precision == "int8":
        _check_int8(runtime, openvino)
        return EncoderPlan("int8", "openvino", "int8 asked for (OpenVINO, int8 weights)")
    units = "with bf16 units" if has_bf16 else "without bf16 units"
    if precision == "auto":
        precision = "fp32"
        why = (f"CPU {units}: fp32 (bf16 moved masks beyond IoU 0.98 of fp32, "
               "docs/performance.md)" if has_bf16 else f"CPU {units}: fp32")
    else:
        why = f"{precision} asked for (CPU {units})"
    if runtime == "auto":
        runtime = "openvino" if openvino else "torch"
        why += ", OpenVINO installed" if openvino else ", OpenVINO not installed"
    return EncoderPlan(precision, runtime, why)


def nncf_available() -> bool:
    """Whether NNCF is installed (``geofloodsam[int8]``): it makes the int8 graph once."""
    try:
        return importlib.util.find_spec("nncf") is not None
    except (ImportError, ValueError):
        return False


def _check_int8(runtime: str, openvino: bool) -> None:
    """One-line errors for ``--precision int8`` where it cannot run."""
    if runtime == "torch":
        raise GeofloodsamError(
            "--precision int8 runs on OpenVINO only: use --runtime openvino (or auto), or "
            "--precision fp32 / bf16 with --runtime torch."
        )
    if not openvino:
        raise GeofloodsamError(
            "--precision int8 needs OpenVINO and NNCF: `pip install geofloodsam[int8]`, or "
            "use --precision fp32."
        )
