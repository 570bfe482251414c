"""Device selection and the per-device inference settings (threads, autocast)."""

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
def autocast(device: torch.device) -> Iterator[None]:
    """Mixed precision on CUDA (bfloat16 where supported, else float16); nothing on CPU."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        with torch.autocast("cuda", dtype=dtype):
            yield
    else:
        yield


def default_batch_size(device: torch.device) -> int:
    """How many 1024x1024 tiles to encode per call: batching only pays off on a GPU."""
    return 8 if device.type == "cuda" else 1
