"""Early stopping checked after each evaluation."""
from __future__ import annotations

from typing import Any

import torch

import pytorch_lightning as pl
from pytorch_lightning.callbacks import EarlyStopping

from spectral_gan.errors import ConfigError
from spectral_gan.training.callbacks.watched_metric import evaluated_now, metric_mode, primary_metric


class EvalEarlyStopping(EarlyStopping):
    """Lightning's EarlyStopping, checked after each evaluation instead of at epoch ends (the
    data loaders never end an epoch): ``patience`` counts evaluations without improvement.

    ``monitor`` None: the evaluator's primary metric; ``mode`` None: the metric's direction from
    ``spectral_gan/metrics/registry.py``. Stock ``EarlyStopping`` also reads the metrics (they are
    in ``trainer.callback_metrics``) but checks only when an epoch ends.
    """

    def __init__(self, monitor: str | None = None, mode: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("check_on_train_epoch_end", False)
        super().__init__(monitor=monitor or "", mode=metric_mode(monitor, mode) if monitor else "min", **kwargs)
        self._mode_given = mode
        self._min_delta_given = abs(self.min_delta)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if not self.monitor:
            self.monitor = primary_metric(pl_module) or ""
            if self.monitor:
                self.mode = metric_mode(self.monitor, self._mode_given)
                self.min_delta = self._min_delta_given * (1 if self.mode == "max" else -1)
                self.best_score = torch.tensor(-torch.inf if self.mode == "max" else torch.inf)
        if not self.monitor:
            raise ConfigError("callbacks.early_stopping needs a monitor: this run has no "
                              "evaluation metric (set eval.classifier/eval.inception, or monitor=...)")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        if evaluated_now(pl_module):
            # The stock check, through the hook that runs it after a validation loop (which a
            # GAN run does not have; check_on_train_epoch_end=False lets it check).
            EarlyStopping.on_validation_end(self, trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pass  # checked after evaluations only (above)
