"""The hook through which discriminators build their normalized layers.

Models never name a normalization: they pass each weight layer through ``hook.wrap`` and ask
``hook.feature_norm`` for what follows a hidden layer. The config picks the facets:
``weight`` (how weights are reparameterized) and ``feature`` (what normalizes activations).
"""
from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from spectral_gan.norms.registry import FEATURE_NORMS, WEIGHT_NORMS, lookup


class NormHook:
    """Builds normalized layers for one model.

    Args:
        weight: a key of ``WEIGHT_NORMS`` (``none``, ``sn``, ...).
        feature: a key of ``FEATURE_NORMS`` (``none``, ``batch``, ...).
        **options: options of the weight normalization (``n_power_iterations``, ``eps``, ...);
            each method receives the ones its function accepts.
    """

    def __init__(self, weight: str = "none", feature: str = "none", **options: Any) -> None:
        self._weight_fn = lookup(WEIGHT_NORMS, "weight", weight)
        self._feature_fn = lookup(FEATURE_NORMS, "feature", feature)
        self.weight = weight
        self.feature = feature
        accepted = inspect.signature(self._weight_fn).parameters
        self.options = {k: v for k, v in options.items() if k in accepted}
        self.wrapped: dict[str, nn.Module] = {}

    def wrap(self, layer: nn.Module, name: str | None = None) -> nn.Module:
        """Return ``layer`` with the weight normalization applied (possibly a new module)."""
        out = self._weight_fn(layer, **self.options)
        self.wrapped[name or f"layer{len(self.wrapped)}"] = out
        return out

    def feature_norm(self, num_features: int, dims: int = 2) -> nn.Module:
        """The feature normalization after a hidden layer (``nn.Identity`` when none)."""
        return self._feature_fn(num_features, dims)

    def __repr__(self) -> str:
        return f"NormHook(weight={self.weight!r}, feature={self.feature!r}, options={self.options})"


IDENTITY = NormHook()
