"""Lightning callbacks that count in generator steps (one training step = n_dis + 1 optimizer steps)."""
from __future__ import annotations

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint, TQDMProgressBar


class StepCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, plus ``last.ckpt`` of the final state when training ends.

    Stock ModelCheckpoint with ``every_n_train_steps`` leaves the steps after the last periodic
    save unsaved; a finished run should always be resumable and evaluable from ``last.ckpt``.
    """

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class StepProgressBar(TQDMProgressBar):
    """Progress in generator steps, with the total that ``steps=`` asked for."""

    @property
    def total_train_batches(self) -> int | float:
        trainer = self.trainer
        if trainer.max_steps and trainer.max_steps > 0:
            return trainer.max_steps // (trainer.lightning_module.n_dis + 1)
        return super().total_train_batches

    def on_train_epoch_start(self, trainer: pl.Trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description("Training")
        # Resume: start the bar at the restored generator step.
        self.train_progress_bar.initial = trainer.lightning_module.gen_step
