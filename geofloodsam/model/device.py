"""Device selection and the per-device inference settings (threads, autocast, batch size)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from geofloodsam.errors import GeofloodsamError
from geofloodsam.model.choices import DEVICE_CHOICES


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a torch device.

    ``auto`` picks CUDA when available, else the CPU. On the CPU all cores are used.
    """
    if isinstance(device, torch.device):
        resolved = device
    else:
        name = str(device).strip().lower()
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise GeofloodsamError(
                f"--device {device} was asked for but CUDA is not available: "
                "use --device cpu or --device auto."
            )
        try:
            resolved = torch.device(name)
        except RuntimeError as exc:
            raise GeofloodsamError(
                f"unknown device {device!r}: use one of {', '.join(DEVICE_CHOICES)}."
            ) from exc
    if resolved.type == "cpu":
        torch.set_num_threads(cpu_count())
    return resolved


def cpu_count() -> int:
    """Cores this process may use (respects CPU affinity where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def autocast(device: torch.device, precision: str = "auto") -> Iterator[None]:
    """Mixed precision for ``precision`` (``fp32``: none) on ``device``.

    CUDA: ``auto`` is bfloat16 where supported, else float16; ``bf16`` / ``fp16`` as asked.
    CPU: ``bf16`` is torch's bfloat16 autocast; ``auto`` and ``fp32`` run in float32 (on
    the CPU, ``auto`` is resolved by :func:`geofloodsam.model.precision.resolve_encoder`
    before it gets here).
    """
    dtype = None
    if device.type == "cuda" and precision != "fp32":
        if precision == "auto":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    elif device.type == "cpu" and precision == "bf16":
        dtype = torch.bfloat16
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def default_batch_size(device: torch.device) -> int:
    """How many 1024x1024 tiles to encode per call: batching only pays off on a GPU."""
    return 8 if device.type == "cuda" else 1
