"""The hook through which discriminators build their normalized layers.

Models never name a normalization: they pass each weight layer through ``hook.wrap`` and ask
``hook.feature_norm`` for what follows a hidden layer. The config picks the facets:
``weight`` (how weights are reparameterized), ``feature`` (what normalizes activations) and
``penalty`` (a gradient penalty, applied by the training step, not here).
"""
from __future__ import annotations

import fnmatch
import inspect
from typing import Any, Sequence

from torch import nn

from spectral_gan.errors import ConfigError
from spectral_gan.norms.registry import FEATURE_NORMS, WEIGHT_NORMS, lookup

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                 nn.ConvTranspose2d, nn.ConvTranspose3d)
BATCH_MIXING_WEIGHT = ("msn",)


def _patterns(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None or value == "all":
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


class NormHook:
    """Builds normalized layers for one model.

    Args:
        weight: a key of ``WEIGHT_NORMS`` (``none``, ``sn``, ``bsn``, ``msn``, ``osn``).
        feature: a key of ``FEATURE_NORMS`` (``none``, ``batch``, ``mean``).
        penalty: gradient penalty name (``none``, ``wgan_gp``, ``r1``, ``dragan``), kept for the
            training step; with a batch-mixing normalization it is refused here.
        penalty_weight: its weight (None: the penalty's usual one).
        apply_to: ``all`` or layer-name patterns (fnmatch, e.g. ``[conv*, dense]``) whose weights
            are normalized; other layers keep plain weights.
        layers: OSN's layer mask, patterns like ``apply_to`` (both must match).
        **options: options of the weight normalization (``n_power_iterations``, ``scale``, ...);
            each method receives the ones its function accepts.
    """

    def __init__(self, weight: str = "none", feature: str = "none", penalty: str = "none",
                 penalty_weight: float | None = None, apply_to: str | Sequence[str] = "all",
                 layers: str | Sequence[str] = "all", **options: Any) -> None:
        self._weight_fn = lookup(WEIGHT_NORMS, "weight", weight)
        self._feature_fn = lookup(FEATURE_NORMS, "feature", feature)
        self.weight, self.feature = weight, feature
        self.penalty = penalty or "none"
        self.penalty_weight = penalty_weight
        self.apply_to = _patterns(apply_to)
        self.layers = _patterns(layers)
        accepted = inspect.signature(self._weight_fn).parameters
        self.options = {k: v for k, v in options.items() if k in accepted}
        self._takes_output_flag = "output_layer" in accepted
        self.wrapped: dict[str, nn.Module] = {}
        if self.penalty != "none" and self.batch_mixing:
            mixer = (f"norm.feature={feature} mixes the samples of a batch"
                     if feature != "none" else f"norm.weight={weight} centers each batch (batch-mixing)")
            raise ConfigError(
                f"norm.penalty={self.penalty} penalizes each sample's own input gradient of D, but "
                f"{mixer}, so one sample's gradient depends on the others and the penalty is not "
                f"the per-sample one it claims to be; use norm.penalty=none or a per-sample "
                f"normalization (norm.feature=none, norm.weight=none|sn|bsn|osn)")

    @property
    def batch_mixing(self) -> bool:
        """Whether D's output for one sample depends on the rest of the batch (in training)."""
        return self.feature != "none" or self.weight in BATCH_MIXING_WEIGHT

    def selects(self, name: str) -> bool:
        for patterns in (self.apply_to, self.layers):
            if patterns is not None and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                return False
        return True

    def wrap(self, layer: nn.Module, name: str | None = None, output: bool = False) -> nn.Module:
        """Return ``layer`` with the weight normalization applied (possibly a new module).

        ``output`` marks the discriminator's logit layer (MSN does not center it).
        """
        name = name or f"layer{len(self.wrapped)}"
        layer.norm_name = name  # read by spectral_gan.norms.monitor
        if not self.selects(name):
            return layer
        options = dict(self.options, **({"output_layer": output} if self._takes_output_flag else {}))
        out = self._weight_fn(layer, **options)
        self.wrapped[name] = out
        return out

    def feature_norm(self, num_features: int, dims: int = 2) -> nn.Module:
        """The feature normalization after a hidden layer (``nn.Identity`` when none)."""
        return self._feature_fn(num_features, dims)

    def __repr__(self) -> str:
        return (f"NormHook(weight={self.weight!r}, feature={self.feature!r}, "
                f"penalty={self.penalty!r}, options={self.options})")


def normalize_all(model: nn.Module, hook: NormHook) -> nn.Module:
    """Pass every weight layer of an existing model through ``hook`` (e.g. ``g_norm=sn``)."""
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, WEIGHT_LAYERS):
                full = f"{parent_name}.{child_name}" if parent_name else child_name
                new = hook.wrap(child, full)
                if new is not child:
                    setattr(parent, child_name, new)
    return model


IDENTITY = NormHook()
