"""Low-rank adapters (LoRA) in MobileSAM's TinyViT image encoder.

A :class:`LoRALinear` wraps one frozen ``nn.Linear`` ``W x + b`` and adds ``s B A x`` with
``A`` (r x in) random, ``B`` (out x r) zero at the start (so a fresh adapter changes nothing)
and ``s = alpha / r``. :func:`add_adapters` wraps the attention projections (``qkv``,
``proj``) of every TinyViT attention block, and with ``targets="attn+mlp"`` the MLPs'
``fc1`` / ``fc2`` too. For inference the adapters are merged (:func:`merge_adapters`):
``W' = W + s B A`` written into plain ``nn.Linear`` layers, so the adapted encoder has the
base architecture, runs as fast, converts to OpenVINO and runs under bf16 autocast as it is.

Adapter tensors are stored by the name of the wrapped layer (``layers.1.blocks.0.attn.qkv``)
with ``.lora_a`` / ``.lora_b``. Why in-house rather than ``peft``: the whole layer is a dozen
lines, it needs no new dependency, and merging into the encoder's own ``nn.Linear`` keeps
every inference path (torch, bf16, OpenVINO, the embedding cache) unchanged; it is tested
against the reference computation (``tests/model/test_lora.py``).
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import nn

from geofloodsam.errors import GeofloodsamError

#: which layers of each TinyViT block get adapters, per ``--adapt`` choice
TARGETS = {
    "attn": ("attn.qkv", "attn.proj"),
    "attn+mlp": ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"),
}


class LoRALinear(nn.Module):
    """``base(x) + scale * (x A^T) B^T``: a frozen linear layer plus a trainable low-rank term."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError("rank must be at least 1")
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.rank = int(rank)
        self.scale = float(alpha if alpha is not None else rank) / self.rank
        dev, dtype = base.weight.device, base.weight.dtype
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=dev, dtype=dtype))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=dev, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    def delta(self) -> torch.Tensor:
        """The weight update ``scale * B A`` (out x in)."""
        return (self.lora_b @ self.lora_a) * self.scale

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function (``W + scale B A``)."""
        out = nn.Linear(self.base.in_features, self.base.out_features,
                        bias=self.base.bias is not None)
        out = out.to(self.base.weight.device, self.base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.delta().to(self.base.weight.dtype))
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        out.requires_grad_(False)
        return out


def check_adaptable(encoder: nn.Module, model_name: str) -> None:
    """One-line error when ``encoder`` is not a TinyViT (the only encoder with adapters)."""
    from geofloodsam.model.tinyvit import TinyViT

    if not isinstance(encoder, TinyViT):
        raise GeofloodsamError(
            f"--train adapter/full knows MobileSAM's TinyViT encoder only, and model "
            f"{model_name} has a {type(encoder).__name__}: use --model vit_t, or --train decoder."
        )


def target_layers(encoder: nn.Module, targets: str) -> dict[str, nn.Linear]:
    """The ``nn.Linear`` layers of ``encoder`` that get adapters, by qualified name."""
    if targets not in TARGETS:
        raise GeofloodsamError(f"--adapt {targets}: use one of {', '.join(TARGETS)}.")
    suffixes = tuple("." + t for t in TARGETS[targets])
    found = {
        name: module
        for name, module in encoder.named_modules()
        if ".blocks." in name and name.endswith(suffixes) and isinstance(module, nn.Linear)
    }
    if not found:
        raise GeofloodsamError(
            f"the image encoder ({type(encoder).__name__}) has no TinyViT attention blocks to "
            "adapt: use --train decoder."
        )
    return found


def _set_child(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, child, module)


def add_adapters(
    encoder: nn.Module, rank: int, targets: str = "attn", seed: int = 0
) -> dict[str, LoRALinear]:
    """Wrap the target layers of ``encoder`` in :class:`LoRALinear` (in place); returns them.

    ``A`` is initialised from a generator seeded by ``seed``, so runs are reproducible.
    """
    layers = target_layers(encoder, targets)
    out = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, linear in layers.items():
            wrapped = LoRALinear(linear, rank)
            _set_child(encoder, name, wrapped)
            out[name] = wrapped
    return out


def adapters_of(encoder: nn.Module) -> dict[str, LoRALinear]:
    """The :class:`LoRALinear` layers of ``encoder`` by qualified name."""
    return {n: m for n, m in encoder.named_modules() if isinstance(m, LoRALinear)}


def adapter_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """``{<layer>.lora_a: A, <layer>.lora_b: B}``: what an adapted-model file stores."""
    out = {}
    for name, layer in adapters_of(encoder).items():
        out[f"{name}.lora_a"] = layer.lora_a.detach().clone()
        out[f"{name}.lora_b"] = layer.lora_b.detach().clone()
    return out


def load_adapter_state(encoder: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy stored ``A`` / ``B`` into the :class:`LoRALinear` layers of ``encoder``."""
    layers = adapters_of(encoder)
    expected = {f"{n}.lora_{x}" for n in layers for x in "ab"}
    if set(state) != expected:
        raise GeofloodsamError(
            "the adapter tensors do not match this encoder's adapted layers: the file was "
            "written for another rank, --adapt choice or encoder."
        )
    with torch.no_grad():
        for name, layer in layers.items():
            layer.lora_a.copy_(state[f"{name}.lora_a"].to(layer.lora_a.dtype))
            layer.lora_b.copy_(state[f"{name}.lora_b"].to(layer.lora_b.dtype))


def merge_adapters(encoder: nn.Module) -> int:
    """Replace every :class:`LoRALinear` in ``encoder`` by its merged ``nn.Linear``; returns
    how many were merged."""
    layers = adapters_of(encoder)
    for name, layer in layers.items():
        _set_child(encoder, name, layer.merged())
    return len(layers)


def merge_state_into(
    encoder: nn.Module, state: dict[str, torch.Tensor], rank: int, alpha: float | None = None
) -> None:
    """Add stored adapters to the plain ``nn.Linear`` weights of ``encoder`` (in place)."""
    scale = float(alpha if alpha is not None else rank) / rank
    names = sorted({k.rsplit(".", 1)[0] for k in state})
    modules = dict(encoder.named_modules())
    missing = [n for n in names if not isinstance(modules.get(n), nn.Linear)]
    if missing or any(f"{n}.lora_{x}" not in state for n in names for x in "ab"):
        raise GeofloodsamError(
            f"the adapters do not fit this image encoder (no layer {missing[0] if missing else '?'}"
            "): the file was written for another encoder."
        )
    with torch.no_grad():
        for name in names:
            linear = modules[name]
            a, b = state[f"{name}.lora_a"].float(), state[f"{name}.lora_b"].float()
            if a.shape != (rank, linear.in_features) or b.shape != (linear.out_features, rank):
                raise GeofloodsamError(
                    f"adapter {name} has shapes {tuple(a.shape)}, {tuple(b.shape)}, which do not "
                    f"fit rank {rank} on this encoder's layer: the file is damaged."
                )
            delta = (b.to(linear.weight.device) @ a.to(linear.weight.device)) * scale
            linear.weight.add_(delta.to(linear.weight.dtype))


def tensors_sha256(state: dict[str, torch.Tensor], *extra: str) -> str:
    """SHA-256 of named tensors (sorted names, shapes, dtypes, bytes) and ``extra`` strings."""
    h = hashlib.sha256("|".join(extra).encode())
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
