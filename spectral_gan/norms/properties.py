"""Questions the training code asks about normalizations, answered from the registered specs.

No method is named here: each declares its facts where it registers (``registry.NormSpec``), and
what a method builds carries its spec (``built.norm_spec``), so a built model can be asked too.
"""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

from spectral_gan.norms.registry import WEIGHT_NORMS, NormSpec, all_specs


def generator_weight_norms() -> tuple[str, ...]:
    """The weight normalizations ``g_norm`` may name (declared ``generator_ok``), sorted."""
    all_specs()  # discovery
    return tuple(sorted(n for n, spec in WEIGHT_NORMS.items() if spec.generator_ok))


def specs_in(model: nn.Module) -> set[NormSpec]:
    """The specs of the methods that built parts of ``model``."""
    return {m.norm_spec for m in model.modules() if isinstance(getattr(m, "norm_spec", None), NormSpec)}


def mixes_batch(model: nn.Module) -> bool:
    """Whether ``model`` normalizes with batch statistics in training, so that one sample's output
    depends on the others in its batch: a part built by a method declared ``mixes_batch`` (MSN,
    ``batch``, ``mean``), or a torch BatchNorm that model code placed itself (DCGAN's generator)."""
    return (any(spec.mixes_batch for spec in specs_in(model))
            or any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()))


def per_update_signals(model: nn.Module) -> set[str]:
    """The training signals that the per-update hooks of ``model``'s methods need (empty: none)."""
    needed: set[str] = set()
    for spec in specs_in(model):
        if spec.per_update is not None:
            needed |= spec.per_update.signals(model)
    return needed


def run_per_update(model: nn.Module, signals: Mapping[str, torch.Tensor]) -> None:
    """Run each per-update hook of ``model``'s methods (after a discriminator update)."""
    for spec in sorted(specs_in(model), key=lambda s: (s.kind, s.name)):
        if spec.per_update is not None:
            spec.per_update.update(model, signals)


# The names the training step has always called (OSN's adaptive gates are the one hook today).
gate_signals_needed = per_update_signals
update_gates = run_per_update
