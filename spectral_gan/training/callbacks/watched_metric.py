"""The evaluation metric a callback watches: its direction, the default (the evaluator's primary
metric) and whether the step that just ended evaluated it."""
from __future__ import annotations


import pytorch_lightning as pl

from spectral_gan.errors import ConfigError
from spectral_gan.metrics.registry import higher_is_better


def metric_mode(monitor: str, mode: str | None) -> str:
    """``mode`` as given, else the metric's direction from ``spectral_gan/metrics/registry.py``."""
    if mode is not None:
        return mode
    try:
        return "max" if higher_is_better(monitor) else "min"
    except KeyError:
        raise ConfigError(f"monitor={monitor} is not an evaluation metric with a known direction; "
                          f"give mode=min or mode=max") from None


def primary_metric(pl_module: pl.LightningModule) -> str | None:
    evaluator = getattr(pl_module, "evaluator", None)
    return evaluator.primary if evaluator is not None else None


def evaluated_now(pl_module: pl.LightningModule) -> bool:
    """Whether the training step that just ended evaluated (a module without evaluations, any
    LightningModule: every step counts)."""
    if not hasattr(pl_module, "evaluated_step"):
        return True
    return pl_module.evaluated_step is not None and pl_module.evaluated_step == pl_module.gen_step
