"""Stability diagnostics of a model's weight layers, read without advancing any power iteration.

- ``sigma/<layer>``: spectral norm of the raw weight (viewed as a matrix, as SN does): the stored
  power-iteration estimate ``u^T W v`` where the layer has one (both directions for BSN:
  ``sigma/<layer>/out`` and ``/in``), else the exact value (``torch.linalg.matrix_norm(ord=2)``).
- ``lipschitz/upper_bound``: the product over layers of the normalized weights' spectral norms,
  an upper bound on the Lipschitz constant of the linear parts (activations are 1-Lipschitz);
  as in the SN paper it treats a convolution through its reshaped weight matrix.
- ``osn_gate/<layer>``: OSN gate states (1 open, 0 closed).
- ``condition/<layer>``: sigma_max / sigma_min of the normalized weight, from a full SVD
  (``condition_numbers``, costly: call it rarely).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.norms.optional import OptionalSpectralNorm
from spectral_gan.norms.power_iteration import power_iteration_paused, weight_matrix
from spectral_gan.norms.spectral import SpectralNorm, output_dim


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers built through a NormHook (they carry ``norm_name``), in model order."""
    return [(m.norm_name, m) for m in model.modules() if hasattr(m, "norm_name")]


def _parametrization(layer: nn.Module) -> SpectralNorm | None:
    if parametrize.is_parametrized(layer, "weight"):
        p = layer.parametrizations.weight[0]
        return p if isinstance(p, SpectralNorm) else None
    return None


def _exact_sigma(weight: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.linalg.matrix_norm(weight_matrix(weight.detach().float(), dim), ord=2)


@torch.no_grad()
def spectral_report(model: nn.Module) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    bound = None
    with power_iteration_paused(model):
        for name, layer in weight_layers(model):
            p = _parametrization(layer)
            if p is not None:
                raw = layer.parametrizations.weight.original
                for direction, s in p.raw_sigmas(raw).items():
                    out[f"sigma/{name}" + (f"/{direction}" if direction else "")] = s
                normalized = p.power.sigma(weight_matrix(layer.weight, p.dim))
            else:
                normalized = _exact_sigma(layer.weight, output_dim(layer))
                out[f"sigma/{name}"] = normalized
            bound = normalized if bound is None else bound * normalized
            if isinstance(p, OptionalSpectralNorm):
                out[f"osn_gate/{name}"] = p.gate.clone()
    if bound is not None:
        out["lipschitz/upper_bound"] = bound
    return out


@torch.no_grad()
def condition_numbers(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    with power_iteration_paused(model):
        for name, layer in weight_layers(model):
            p = _parametrization(layer)
            dim = p.dim if p is not None else output_dim(layer)
            s = torch.linalg.svdvals(weight_matrix(layer.weight.detach().float(), dim))
            out[f"condition/{name}"] = s[0] / s[-1].clamp_min(1e-12)
    return out
