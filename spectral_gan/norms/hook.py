"""The hook through which discriminators build their normalized layers.

Models never name a normalization: they pass each weight layer through ``hook.wrap`` and ask
``hook.feature_norm`` for what follows a hidden layer. The config picks the facets:
``weight`` (how weights are reparameterized), ``feature`` (what normalizes activations) and
``penalty`` (a gradient penalty, applied by the training step, not here).
"""
from __future__ import annotations

import fnmatch
from typing import Any, Sequence

from torch import nn

from spectral_gan.errors import ConfigError
from spectral_gan.norms.options import route_options
from spectral_gan.norms.registry import WEIGHT_NORMS, import_methods, lookup

# The layers ``normalize_all`` (``g_norm``) normalizes. ``nn.Embedding`` is left out on purpose:
# a generator's embeddings are conditional batch norm's per-class gains and biases
# (models/conditional.py), which start at 1 and 0 and must not be rescaled. A discriminator's
# class embedding (the projection discriminator's V) is wrapped by the model itself through
# ``NormHook.wrap``, which every weight normalization handles (its weight is a 2-D matrix).
WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                 nn.ConvTranspose2d, nn.ConvTranspose3d)


def _patterns(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None or value == "all":
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


class NormHook:
    """Builds normalized layers for one model.

    Args:
        weight: a registered weight normalization (``none``, ``sn``, ``bsn``, ``msn``, ``osn``, or
            one from a file of your own, see ``module``).
        feature: a registered feature normalization (``none``, ``batch``, ``mean``, ...).
        penalty: gradient penalty name (``none``, ``wgan_gp``, ``r1``, ``r1r2``, ``dragan``,
            ``dragan_code``), kept for the training step; with a batch-mixing normalization it is
            refused here.
        penalty_weight: its weight (None: the penalty's usual one).
        apply_to: ``all`` or layer-name patterns (fnmatch, e.g. ``[conv*, dense]``) whose weights
            are normalized; other layers keep plain weights.
        layers: OSN's layer mask, patterns like ``apply_to`` (both must match).
        module: dotted module path(s) imported first, so that a method defined outside
            ``spectral_gan.norms`` registers itself (``registry.import_methods``).
        **options: options of the methods (``n_power_iterations``, ``scale``, ...). Each goes to
            the chosen method(s) that declare it; an option that neither takes is refused with a
            ``ConfigError``, whatever its value; ``None`` is not given (the method's own
            default). See ``norms.options``.
    """

    def __init__(self, weight: str = "none", feature: str = "none", penalty: str = "none",
                 penalty_weight: float | None = None, apply_to: str | Sequence[str] = "all",
                 layers: str | Sequence[str] = "all", module: str | Sequence[str] | None = None,
                 **options: Any) -> None:
        import_methods(module)
        self._weight = lookup("weight", weight)
        self._feature = lookup("feature", feature)
        self.weight, self.feature = weight, feature
        self.penalty = penalty or "none"
        self.penalty_weight = penalty_weight
        self.apply_to = _patterns(apply_to)
        self.layers = _patterns(layers)
        self.options, self.feature_options = route_options(self._weight, self._feature, options)
        self.wrapped: dict[str, nn.Module] = {}
        self.has_built = False  # whether wrap has seen a layer yet (the first is the input layer)
        self.shared: dict[str, Any] = {}  # what the layers built here share (registry.takes_shared)
        if self.penalty != "none" and self.batch_mixing:
            mixer = (f"norm.feature={feature} mixes the samples of a batch"
                     if self._feature.mixes_batch
                     else f"norm.weight={weight} centers each batch (batch-mixing)")
            per_sample = "|".join(n for n, s in WEIGHT_NORMS.items() if not s.mixes_batch)
            raise ConfigError(
                f"norm.penalty={self.penalty} penalizes each sample's own input gradient of D, but "
                f"{mixer}, so one sample's gradient depends on the others and the penalty is not "
                f"the per-sample one it claims to be; use norm.penalty=none or a per-sample "
                f"normalization (norm.feature=none, norm.weight={per_sample})")

    @property
    def batch_mixing(self) -> bool:
        """Whether D's output for one sample depends on the rest of the batch (in training)."""
        return self._weight.mixes_batch or self._feature.mixes_batch

    def selects(self, name: str) -> bool:
        for patterns in (self.apply_to, self.layers):
            if patterns is not None and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                return False
        return True

    def wrap(self, layer: nn.Module, name: str | None = None, output: bool = False,
             center: bool | None = None) -> nn.Module:
        """Return ``layer`` with the weight normalization applied (possibly a new module).

        ``layer``: a Linear, convolution or Embedding (a projection discriminator's class
        embedding, whose weight is normalized as a num_classes x dim matrix).
        ``output`` marks the discriminator's logit layer (MSN does not center it), to which a
        projection discriminator's class embedding belongs.
        ``center``: the architecture's own placement of batch centering (MSN's ``norm.center=auto``):
        True where the model's rule centres this layer's output, False where it does not, None
        when the model states no rule (then every hidden layer but the first one this hook
        builds is a centring site). The input layer is never one: centring it would make D blind
        to a shift of the whole batch. Each built-in model states its rule in its docstring.
        """
        name = name or f"layer{len(self.wrapped)}"
        layer.norm_name = name  # read by spectral_gan.norms.monitor
        layer.norm_output = output  # the logit layer: no hidden pre-activation (monitor's drift)
        first, self.has_built = not self.has_built, True
        if not self.selects(name):
            return layer
        flag: dict[str, Any] = {"output_layer": output} if self._weight.takes_output_layer else {}
        if self._weight.takes("center_site"):
            flag["center_site"] = (not output) and (not first if center is None else bool(center))
        if self._weight.takes("layer_name"):
            flag["layer_name"] = name
        if self._weight.takes_shared:
            flag["shared"] = self.shared
        out = self._weight(layer, **self.options, **flag)
        self.wrapped[name] = out
        return out

    def feature_norm(self, num_features: int, dims: int = 2) -> nn.Module:
        """The feature normalization after a hidden layer (``nn.Identity`` when none)."""
        return self._feature(num_features, dims, **self.feature_options)

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
