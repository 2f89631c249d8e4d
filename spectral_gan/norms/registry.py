"""Name -> implementation tables for the normalization facets.

A weight normalization is a function ``fn(module, **options) -> nn.Module`` in the style of
``torch.nn.utils.parametrizations.spectral_norm``; a feature normalization is a factory
``fn(num_features, dims) -> nn.Module`` placed after a hidden layer. Each implementation file
registers itself, so adding a method is a new file plus one import in ``norms/__init__.py``.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from spectral_gan.errors import ConfigError

WeightNorm = Callable[..., nn.Module]
FeatureNorm = Callable[[int, int], nn.Module]

WEIGHT_NORMS: dict[str, WeightNorm] = {}
FEATURE_NORMS: dict[str, FeatureNorm] = {}


def register_weight_norm(name: str) -> Callable[[WeightNorm], WeightNorm]:
    def add(fn: WeightNorm) -> WeightNorm:
        WEIGHT_NORMS[name] = fn
        return fn

    return add


def register_feature_norm(name: str) -> Callable[[FeatureNorm], FeatureNorm]:
    def add(fn: FeatureNorm) -> FeatureNorm:
        FEATURE_NORMS[name] = fn
        return fn

    return add


def lookup(table: dict, kind: str, name: str):
    if name not in table:
        raise ConfigError(
            f"unknown {kind} normalization {name!r}; valid options are: {', '.join(sorted(table))}"
        )
    return table[name]


@register_weight_norm("none")
def no_weight_norm(module: nn.Module, **_options) -> nn.Module:
    """The baseline: weights used as they are."""
    return module


@register_feature_norm("none")
def no_feature_norm(num_features: int, dims: int) -> nn.Module:
    return nn.Identity()
