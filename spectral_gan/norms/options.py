"""Which ``norm.*`` options were given, and to which method each goes; the rest is refused.

Every preset in ``configs/norm/`` starts from ``none.yaml``, which lists every method's options at
their usual values, so ``norm=sn`` arrives with ``scale=1.0``, ``gate=none``, ... that nobody set.
An option therefore counts as *given* unless

- its value is ``None`` (null in a YAML: "the method's own default"), or
- no chosen method takes it and its value equals the default that a registered method taking it
  declares (the shared config's entry; such a value would change nothing anyway).

A given option goes to each chosen method (weight, feature) that declares it; one that neither
declares is refused with a ``ConfigError`` naming the method, the option and the valid options,
instead of being dropped without a word (``norm=sn norm.scale=2`` used to do nothing).
"""
from __future__ import annotations

from typing import Any, Mapping

from spectral_gan.errors import ConfigError
from spectral_gan.norms.registry import NormSpec, all_specs


def _is_shared_default(key: str, value: Any) -> bool:
    for spec in all_specs():
        defaults = spec.defaults()
        if key in defaults and defaults[key] == value:
            return True
    return False


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
        if key not in weight.options and key not in feature.options \
                and not _is_shared_default(key, value):
            unknown.append(key)
    if unknown:
        quoted = ", ".join(repr(k) for k in unknown)
        message = (f"norm.weight={weight.name} does not take option{'s' if len(unknown) > 1 else ''} "
                   f"{quoted}; its options are: {_listing(weight.options)}")
        if feature.name != "none":
            message += f" (norm.feature={feature.name} takes: {_listing(feature.options)})"
        raise ConfigError(message + "; choose a method that takes it or leave it unset (null)")
    return to_weight, to_feature
