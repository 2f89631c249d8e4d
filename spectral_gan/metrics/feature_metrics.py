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
reference-statistics cache unless every plugin can save its real side (``real_state()`` and
``load_real_state(state)``, as PRDC's does).

Several metrics may share one state: a class attribute ``shared_state = SomeState`` makes
``build`` create one ``SomeState(num_features)`` per suite and pass it to each such metric
(``cls(state)``, kept as ``.state``); the suite then feeds ``update``/``reset_fake`` to the state
once, and each metric only ``compute``s. The built-in precision, recall, density and coverage
(``metrics/prdc.py``) are four names on one state: one k-NN pass, not four.
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
        fed = getattr(cls, "shared_state", None) or cls  # what update/reset_fake go to
        for method, owner in (("update", fed), ("compute", cls), ("reset_fake", fed)):
            if not callable(getattr(owner, method, None)):
                raise TypeError(f"feature metric {name!r} ({owner.__name__}) has no {method}()")
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
    """One fresh instance of each named metric, for features of ``num_features`` dimensions;
    metrics with a ``shared_state`` get one state per call (per suite) between them."""
    states: dict[type, Any] = {}
    out = {}
    for name in names:
        cls = FEATURE_METRICS[name]
        shared = getattr(cls, "shared_state", None)
        out[name] = (cls(num_features) if shared is None else
                     cls(states.setdefault(shared, shared(num_features))))
    return out


def fed(metrics: dict[str, Any]) -> list[Any]:
    """What a suite feeds features to: each metric, or its shared state once for all sharing it."""
    out: list[Any] = []
    for metric in metrics.values():
        target = metric.state if getattr(type(metric), "shared_state", None) else metric
        if not any(target is seen for seen in out):
            out.append(target)
    return out


# The built-in feature metrics (precision, recall, density, coverage), registered on import;
# here, after the decorator they use exists, so that every user of this module knows them.
importlib.import_module("spectral_gan.metrics.prdc")
