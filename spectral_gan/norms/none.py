"""The baselines: no weight normalization and no feature normalization.

They take no options, mix nothing and are allowed in the generator (``g_norm=none`` is the
default), so that the ``none`` preset is a registered method like any other.
"""
from __future__ import annotations

from torch import nn

from spectral_gan.norms.registry import register_feature_norm, register_weight_norm


@register_weight_norm("none", generator_ok=True)
def no_weight_norm(module: nn.Module) -> nn.Module:
    """Weights used as they are."""
    return module


@register_feature_norm("none")
def no_feature_norm(num_features: int, dims: int) -> nn.Module:
    return nn.Identity()
