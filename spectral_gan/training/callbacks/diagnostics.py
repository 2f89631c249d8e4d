"""The discriminator's per-layer and Lipschitz diagnostics, each at its cadence (``svd_every``,
``lipschitz_every``, ``layer_stats_every``; what each tag means: ``norms.monitor``,
``norms.lipschitz``), from the batches of the step that just ended."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from spectral_gan.models.conditional import bind_labels
from spectral_gan.norms.lipschitz import LayerConstants, lipschitz_report, sample_count
from spectral_gan.norms.monitor import activation_drift, condition_numbers, layer_grad_norms


class LayerDiagnostics(Callback):
    """Reads the step's real and fake batches from ``training_step``'s output and logs through
    ``GAN.log_scalars`` at the generator step. Added by ``train`` to every run."""

    def __init__(self) -> None:
        # Warm-started operator-norm vectors and input sizes of D's convolutions (not checkpointed)
        self.constants: LayerConstants | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        monitor = pl_module.settings.monitor
        self.constants = LayerConstants(monitor.lipschitz_iterations, pl_module.settings.seed)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        if not outputs:  # the run diverged in this step
            return
        # Under the precision plugin's autocast, as training_step's own passes ran: with
        # bf16-mixed the step's fake batch is bf16, which D's fp32 layers take only there.
        with trainer.precision_plugin.forward_context():
            self._diagnose(pl_module, outputs)

    def _diagnose(self, pl_module: pl.LightningModule, outputs: Any) -> None:
        step, last, schedule = pl_module.gen_step, pl_module.total_steps, pl_module.schedule
        D, monitor = pl_module.D, pl_module.settings.monitor
        values: dict[str, Any] = {}
        if schedule.due(schedule.svd_every, step, last):
            values.update(condition_numbers(D))
        real, fake = outputs.get("real"), outputs.get("fake")  # absent: every D update skipped
        y_real, y_fake = outputs.get("y_real"), outputs.get("y_fake")
        if schedule.due(schedule.lipschitz_every, step, last) and real is not None:
            model = D
            if y_real is not None:
                # lipschitz_report evaluates D on its first n real, n fake and n interpolated
                # samples, in that order: each at its own label (interpolates at the real one).
                n = sample_count(D, monitor.lipschitz_samples, min(len(real), len(fake)))
                model = bind_labels(D, torch.cat([y_real[:n], y_fake[:n], y_real[:n]]))
            values.update(lipschitz_report(model, real, fake, self.constants,
                                           monitor.lipschitz_samples))
        if schedule.due(schedule.layer_stats_every, step, last):
            values.update(layer_grad_norms(D, "grad_norm/d"))
            values.update(layer_grad_norms(pl_module.G, "grad_norm/g"))
            if real is not None:
                # Hidden layers come before the projection, so any labels of the right length
                # give the same drift; the real ones serve both batches (equal sizes).
                model = D if y_real is None else bind_labels(D, y_real)
                values.update(activation_drift(model, [real, fake]))
        if values:
            pl_module.log_scalars(values, step)
