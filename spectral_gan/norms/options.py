"""Which ``norm.*`` options were given, and to which method each goes; the rest is refused.

Every preset in ``configs/norm/`` starts from ``none.yaml``, which lists every built-in method's
options at ``null``: "not given, the method's own default" (the default of its function's
parameter, one place per method). A method's own YAML may set its options (``osn.yaml``:
``threshold: 1.0``); a method defined in a file of your own lists its options in its YAML.

A given (non-null) option goes to each chosen method (weight, feature) that declares it; one that
neither declares is refused with a ``ConfigError`` naming the method, the option and the valid
options, whatever its value (``norm=sn norm.scale=2`` and ``norm=sn norm.scale=1.0`` alike).
"""
from __future__ import annotations

from typing import Any, Mapping

from spectral_gan.errors import ConfigError
from spectral_gan.norms.registry import FEATURE_NORMS, WEIGHT_NORMS, NormSpec, all_specs

FACETS = ("_target_", "module", "weight", "feature", "penalty", "penalty_weight", "apply_to", "layers")


def _listing(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "(none)"


def route_options(weight: NormSpec, feature: NormSpec,
                  options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the given ``options`` into (weight method's, feature method's); refuse the others."""
    to_weight: dict[str, Any] = {}
    to_feature: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in options.items():
        if value is None:
            continue
        if key in weight.options:
            to_weight[key] = value
        if key in feature.options:
            to_feature[key] = value
        if key not in weight.options and key not in feature.options:
            unknown.append(key)
    if unknown:
        quoted = ", ".join(repr(k) for k in unknown)
        message = (f"norm.weight={weight.name} does not take option{'s' if len(unknown) > 1 else ''} "
                   f"{quoted}; its options are: {_listing(weight.options)}")
        if feature.name != "none":
            message += f" (norm.feature={feature.name} takes: {_listing(feature.options)})"
        raise ConfigError(message + "; choose a method that takes it or leave it unset (null)")
    return to_weight, to_feature


def effective(norm: Mapping[str, Any]) -> dict[str, Any]:
    """A ``norm`` config as the chosen methods run it: the facets as given, and each option the
    chosen weight or feature method takes, at its value or (null) the method's default; options
    neither method takes are dropped. Configs written before the options became null (every
    option at a method's default) therefore compare equal to today's. A method that is not
    registered (defined in a file not imported here) keeps its config as it is."""
    all_specs()  # the built-in methods; nothing outside spectral_gan is imported
    weight = WEIGHT_NORMS.get(str(norm.get("weight", "none")))
    feature = FEATURE_NORMS.get(str(norm.get("feature", "none")))
    if weight is None or feature is None:
        return dict(norm)
    out = {k: norm[k] for k in FACETS if k in norm}
    for spec in (weight, feature):
        defaults = spec.defaults()
        for key in spec.options:
            value = norm.get(key)
            out[key] = defaults.get(key) if value is None else value
    return out
