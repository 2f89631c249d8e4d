"""The progress bar, in generator steps."""
from __future__ import annotations

import sys


import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.callbacks.progress.tqdm_progress import Tqdm, convert_inf


class StepProgressBar(TQDMProgressBar):
    """Progress in generator steps, with the total that ``steps=`` asked for:
    ``gen step 1200/10000  12%|█▏   | [01:10<08:10, 17.1 steps/s, loss_d=..., loss_g=...]``.

    Lightning's bar counts batches of the current epoch (``Epoch 0: 0/20``, ``Epoch 1`` after a
    resume); this one counts the module's generator steps, so a resume continues at its step.
    """

    BAR = ("gen step {n_fmt}/{total_fmt} {percentage:3.0f}%|{bar}| "
           "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    def _total(self, trainer: pl.Trainer) -> int | None:
        if trainer.max_steps and trainer.max_steps > 0:
            return trainer.max_steps
        return None

    @property
    def total_train_batches(self) -> int | float:
        total = self._total(self.trainer)
        return super().total_train_batches if total is None else total

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(position=2 * self.process_position, disable=self.is_disabled, leave=True,
                    dynamic_ncols=True, file=sys.stdout, smoothing=0, unit="step",
                    bar_format=self.BAR, total=self._total(self.trainer),
                    initial=self.trainer.lightning_module.gen_step)

    def on_train_epoch_start(self, trainer: pl.Trainer, *args) -> None:
        # One bar for the whole run: a new data epoch does not restart it.
        bar = self.train_progress_bar
        if bar.total is None:
            bar.total = convert_inf(self.total_train_batches)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args) -> None:
        n, bar = pl_module.gen_step, self.train_progress_bar
        due = self.is_enabled and (n % self.refresh_rate == 0 or n == bar.total) if bar else False
        if due:
            bar.n = n
            bar.refresh()
            bar.set_postfix(self.get_metrics(trainer, pl_module))
