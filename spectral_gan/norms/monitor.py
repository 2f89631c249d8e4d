"""Stability diagnostics of a model's weight layers, read without advancing any power iteration.

Every quantity means what its name says:

- ``sigma/<layer>``: the stored power-iteration estimate of the RAW weight's spectral norm, the
  number SN divides by (``u^T W v``; both directions for BSN, ``sigma/<layer>/out`` and ``/in``;
  the operator estimate for ``sn_conv``), else the exact value of the raw weight as a matrix.
- ``sigma_eff/<layer>`` and ``condition/<layer>``: from the singular values of the EFFECTIVE
  (normalized) weight as a matrix (``torch.linalg.svdvals``, not the iteration's own u, v, so a
  lagging iteration shows as a value away from 1 under SN): the largest one, and sigma_max /
  sigma_min (:func:`condition_numbers`).
- ``<key>/<layer>``: whatever a method's parametrization reports as ``diagnostics()``
  (``{key: tensor}``), e.g. OSN's gate states ``osn_gate/<layer>`` (1 open, 0 closed).
- ``grad_norm/<net>/<layer>``: the 2-norm of the gradients of each layer's parameters
  (:func:`layer_grad_norms`).
- ``drift/<layer>``: the batch mean of a hidden layer's output, what MSN removes
  (:func:`activation_drift`).
- ``lipschitz/*`` and ``sigma_op/<layer>``: ``spectral_gan.norms.lipschitz``.

What a normalization reports is its own to state; nothing here names a method. The contract, with
its defaults for a plugin that states nothing (docs/normalizations.md, "Adding a normalization"):

- the weight's parametrization may define ``raw_sigmas(raw_weight) -> {direction: sigma}`` (its
  stored estimates; ``""`` for one direction); without it ``sigma/<layer>`` is the exact spectral
  norm of the raw weight (``parametrizations.weight.original``), never that of the normalized one;
- the parametrization may define ``diagnostics() -> {key: tensor}``, logged as ``<key>/<layer>``;
- a module that wraps a weight layer (MSN's ``MeanSpectralNorm``) names it as ``wrapped`` so that
  ``drift/<layer>`` reads the wrapper's output, and states its Lipschitz constant as
  ``lipschitz_bound(constants)`` (``spectral_gan.norms.lipschitz``); a wrapper that does not is NaN
  there, never a figure it did not earn.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from spectral_gan.norms.power_iteration import power_iteration_paused, weight_matrix
from spectral_gan.norms.spectral import output_dim


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers built through a NormHook (they carry ``norm_name``), in model order."""
    return [(m.norm_name, m) for m in model.modules() if hasattr(m, "norm_name")]


def _parametrization(layer: nn.Module) -> nn.Module | None:
    """The layer's (first) weight parametrization, or None for a plain weight."""
    if parametrize.is_parametrized(layer, "weight"):
        return layer.parametrizations.weight[0]
    return None


def _exact_sigma(weight: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.linalg.matrix_norm(weight_matrix(weight.detach().float(), dim), ord=2)


@torch.no_grad()
def spectral_report(model: nn.Module) -> dict[str, torch.Tensor]:
    """``sigma/<layer>`` (raw weight) and ``osn_gate/<layer>``; cheap, every log step."""
    out: dict[str, torch.Tensor] = {}
    with power_iteration_paused(model):
        for name, layer in weight_layers(model):
            p = _parametrization(layer)
            if p is None:
                out[f"sigma/{name}"] = _exact_sigma(layer.weight, output_dim(layer))
                continue
            raw = layer.parametrizations.weight.original
            if hasattr(p, "raw_sigmas"):
                for direction, s in p.raw_sigmas(raw).items():
                    out[f"sigma/{name}" + (f"/{direction}" if direction else "")] = s
            else:  # a plugin without estimates: the raw weight's exact norm, as the tag says
                out[f"sigma/{name}"] = _exact_sigma(raw, output_dim(layer))
            for key, value in (p.diagnostics() if hasattr(p, "diagnostics") else {}).items():
                out[f"{key}/{name}"] = value.detach().clone()
    return out


def singular_values(matrix: torch.Tensor) -> torch.Tensor:
    """All singular values of ``matrix``, descending: square roots of the eigenvalues of the
    smaller Gram matrix (``M M^T`` or ``M^T M``) in float64. A third of ``svdvals``'s time on the
    SN CNN's weights (docs/benchmarks.md); float64 keeps sigma_min accurate for condition numbers
    up to about 1e7."""
    m = matrix.double()
    gram = m @ m.t() if m.shape[0] <= m.shape[1] else m.t() @ m
    return torch.linalg.eigvalsh(gram).clamp_min(0).sqrt().flip(0).float()


@torch.no_grad()
def condition_numbers(model: nn.Module) -> dict[str, torch.Tensor]:
    """``sigma_eff/<layer>`` and ``condition/<layer>`` from the singular values of each effective
    weight as a matrix (:func:`singular_values`; costs: docs/benchmarks.md)."""
    out = {}
    with power_iteration_paused(model):
        for name, layer in weight_layers(model):
            s = singular_values(weight_matrix(layer.weight.detach(), output_dim(layer)))
            out[f"sigma_eff/{name}"] = s[0]
            out[f"condition/{name}"] = s[0] / s[-1].clamp_min(1e-12)
    return out


def _layer_key(path: str) -> str:
    """A parameter's owning layer: ``a.parametrizations.weight.original`` belongs to ``a``."""
    owner = path.rsplit(".", 1)[0] if "." in path else ""
    if ".parametrizations." in f".{owner}.":
        owner = f".{owner}".split(".parametrizations.")[0].lstrip(".")
    return owner


@torch.no_grad()
def layer_grad_norms(model: nn.Module, prefix: str) -> dict[str, float]:
    """``<prefix>/<layer>``: the 2-norm of the current gradients of each layer's parameters
    (weight and bias together; a normalized weight's gradient is that of its raw weight). Layers
    built through a NormHook go by their ``norm_name``, the others by their module path. One
    host sync for all."""
    names = {path: getattr(m, "norm_name", path) for path, m in model.named_modules()}
    groups: dict[str, list[torch.Tensor]] = {}
    for path, p in model.named_parameters():
        if p.grad is not None:
            key = _layer_key(path)
            groups.setdefault(names.get(key, key) or "(root)", []).append(p.grad.detach())
    if not groups:
        return {}
    flat = [g for grads in groups.values() for g in grads]
    squares = torch.stack([n.float() ** 2 for n in torch._foreach_norm(flat)])
    sizes = [len(grads) for grads in groups.values()]
    totals = torch.stack([chunk.sum() for chunk in squares.split(sizes)]).sqrt().tolist()
    return {f"{prefix}/{name}": value for name, value in zip(groups, totals)}


def hidden_layer_outputs(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module whose output is the layer's pre-activation) for each hidden weight layer:
    the layer itself, or a wrapper around it that names it as ``wrapped`` (MSN: its output is
    centered); not the logit layer."""
    outer = {id(m.wrapped): m for m in model.modules()
             if isinstance(getattr(m, "wrapped", None), nn.Module)}
    return [(name, outer.get(id(layer), layer)) for name, layer in weight_layers(model)
            if not getattr(layer, "norm_output", False)]


def drift_of(y: torch.Tensor) -> torch.Tensor:
    """``||E_batch,positions[y]||_2 / sqrt(C)``: the root mean square over channels (dim 1) of each
    channel's mean over the batch and spatial positions."""
    mean = y.detach().float().mean(dim=[0, *range(2, y.dim())])
    return mean.norm() / math.sqrt(mean.numel())


@torch.no_grad()
def activation_drift(model: nn.Module, batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """``drift/<layer>``: :func:`drift_of` the output of each hidden weight layer (after MSN's
    centering where present, before a separate feature norm and the activation), in training mode
    (batch statistics, as D sees its batches), averaged over ``batches`` each passed on its own
    (e.g. a real and a fake batch). No side effects: the power iteration is paused and running
    statistics (BatchNorm, MSN) are restored afterwards."""
    targets = hidden_layer_outputs(model)
    sums: dict[str, torch.Tensor] = {}
    running = [b for n, b in model.named_buffers() if "running_" in n or "num_batches" in n]
    saved = [b.clone() for b in running]

    def hook(name):
        def record(_module, _args, output):
            sums[name] = sums.get(name, 0.0) + drift_of(output)
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in targets]
    try:
        with power_iteration_paused(model):
            for batch in batches:
                model(batch)
    finally:
        for h in handles:
            h.remove()
        for b, s in zip(running, saved):
            b.copy_(s)
    return {f"drift/{name}": total / len(batches) for name, total in sums.items()}
