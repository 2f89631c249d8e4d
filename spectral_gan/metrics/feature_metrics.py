"""Metrics of two feature sets, as plugins: one file each, switched on by one config entry.

A feature metric compares the extractor's features of the real and the generated samples (the
pass that feeds FID, shared: no extra network call). It is a class registered by name:

    @register_feature_metric("mean_distance", higher_is_better=False,
                             description="distance between the feature means")
    class MeanDistance:
        def __init__(self, num_features: int) -> None: ...
        def update(self, features: torch.Tensor, real: bool) -> None: ...
        def compute(self) -> float: ...
        def reset_fake(self) -> None: ...      # forget generated samples, keep the real side

and trained with ``eval.metrics=[mean_distance]`` (a metric defined outside the package also
names its module: ``eval.metric_modules=[my_package.my_metric]``). Each suite (Inception, the
digit classifier) computes it on its own features, logged as ``metrics/<name>`` and
``metrics/<name>_classifier``; registering it also gives it a direction in
``metrics/registry.py``, so best checkpoints, early stopping and spectral-gan-compare treat it
like FID. The reference side of a suite with plugin metrics is recomputed, not read from the
reference-statistics cache (which holds FID's and KID's states only).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable

from spectral_gan.errors import ConfigError
from spectral_gan.metrics.registry import register_metric

FEATURE_METRICS: dict[str, type] = {}


def register_feature_metric(name: str, higher_is_better: bool, description: str) -> Callable[[type], type]:
    """Class decorator: register a feature metric (and its direction) under ``name``."""
    def wrap(cls: type) -> type:
        for method in ("update", "compute", "reset_fake"):
            if not callable(getattr(cls, method, None)):
                raise TypeError(f"feature metric {name!r} ({cls.__name__}) has no {method}()")
        known = FEATURE_METRICS.get(name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise ValueError(f"feature metric {name!r} is registered twice ({known.__qualname__}, "
                             f"{cls.__qualname__})")
        FEATURE_METRICS[name] = cls
        register_metric(name, higher_is_better, description, per_extractor=True)
        return cls
    return wrap


def _names(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"eval.{key} must be a list of names, got {value!r}")
    return list(values)


def feature_metrics(names: Any, modules: Any = None) -> list[str]:
    """The metric names of an ``eval:`` block, checked: ``modules`` imported first (metrics
    defined outside the package), each name registered. Unknown names are a ConfigError listing
    the known ones."""
    for module in _names(modules, "metric_modules"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name is None or not module.startswith(err.name):
                raise  # the module exists but one of its imports does not: its own error
            raise ConfigError(f"eval.metric_modules: {module!r} could not be imported; give an "
                              f"importable module that registers a feature metric") from None
    chosen = _names(names, "metrics")
    unknown = [n for n in chosen if n not in FEATURE_METRICS]
    if unknown:
        known = ", ".join(sorted(FEATURE_METRICS)) or "none registered"
        raise ConfigError(f"eval.metrics: unknown feature metric(s) {', '.join(unknown)}; known: "
                          f"{known} (a metric defined in your own module also needs "
                          f"eval.metric_modules=[<module>])")
    return chosen


def build(names: Iterable[str], num_features: int) -> dict[str, Any]:
    """One fresh instance of each named metric, for features of ``num_features`` dimensions."""
    return {name: FEATURE_METRICS[name](num_features) for name in names}
