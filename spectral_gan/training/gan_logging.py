"""The GAN module's scalars: the training scalars at each log step (losses, gradient norms, sigmas,
learned scales, the HParams declaration) and ``log_scalars``, the one way anything is written at
a generator step.

A mixin of ``spectral_gan.training.gan.GAN``: it reads the module's ``D``, ``penalty``,
``evaluator``, ``loggers`` and ``run_hparams``."""
from __future__ import annotations

from typing import Any

import torch

from spectral_gan.training import health
from spectral_gan.norms.monitor import spectral_report
from spectral_gan.norms.spectral import learned_scales
from spectral_gan.training import loggers
from spectral_gan.training.loggers import as_floats, grad_norm, log_hparams, training_scalars


class ScalarLogging:
    def d_grad_norm(self) -> torch.Tensor:
        """2-norm of all discriminator gradients of the last update."""
        return grad_norm(self.D.parameters(), self.device)

    def _log_scalars(self, step, stats, loss_g, d_opt, g_opt) -> None:
        metrics = training_scalars(stats, loss_g, d_opt, g_opt, self.d_grad_norm(),
                                   self.penalty.name if self.penalty else None)
        metrics = as_floats({**metrics, **spectral_report(self.D), **learned_scales(self.D)})
        stalled = metrics["grad_norm/d"] < health.STALL_GRAD_NORM
        self._stalled_logs = self._stalled_logs + 1 if stalled else 0
        self.log_dict({"loss_d": metrics["loss/d"], "loss_g": metrics["loss/g"]},
                      prog_bar=True, logger=False)
        hp = {"hp/loss_d": metrics["loss/d"], "hp/loss_g": metrics["loss/g"]}
        if not self._hparams_logged:
            # The HParams view shows the metrics declared here: losses now, evaluation metrics
            # (final and best) as they are logged under hp/ later.
            declared = dict(hp)
            if self.evaluator is not None:
                declared.update({n.replace("metrics/", "hp/"): float("nan")
                                 for n in self.evaluator.metric_names()})
            log_hparams(self.loggers, self.run_hparams, declared)
            self._hparams_logged = True
        self.log_scalars({**metrics, **hp}, step)

    def log_scalars(self, metrics: dict[str, Any], step: int) -> None:
        """Scalars at generator step ``step`` (the loggers' x-axis), written to every logger
        directly, and their last values to ``trainer.callback_metrics``, which
        ModelCheckpoint(monitor=...) and EarlyStopping(monitor=...) read.

        Not through ``self.log``: Lightning counts optimizer steps, not generator steps, and
        hands a value logged at one step to the loggers again at every later one. So the unit
        of the x-axis is the GAN's own, whichever step a scalar belongs to (a training step's,
        an event the deferred divergence check reports for an earlier step, ``check_health``
        after fit)."""
        values = as_floats(metrics)
        loggers.log_scalars(self.loggers, values, step)
        try:
            monitors = self.trainer.callback_metrics
        except RuntimeError:  # not attached to a Trainer
            return
        monitors.update({k: torch.tensor(v) for k, v in values.items()})  # on the CPU: no syncs
