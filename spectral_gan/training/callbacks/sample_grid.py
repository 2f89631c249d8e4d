"""The sample grid of the fixed noise every ``sample_every`` generator steps (and at the last):
an image grid (one row per class for a class-conditional generator) or, for 2-D data, a cloud
over the mixture's modes; to the loggers and to ``<run_dir>/samples/step_NNNNNN.png``."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from spectral_gan.training.loggers import log_picture
from spectral_gan.visualize import image_grid, scatter_image

# A 2-D cloud needs more points than a grid has: drawn from fixed noise of its own.
CLOUD_POINTS = 2048
# The grid of a class-conditional generator: one row per class (at most this many classes), this
# many samples per row, each with its own fixed noise.
GRID_COLUMNS = 8
GRID_MAX_CLASSES = 16


def fixed_grid(generator: torch.nn.Module, num_classes: int | None, label_probs: torch.Tensor | None,
               num_samples: int, seed: int
               ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
    """(class probabilities of generated samples, the grid's fixed noise, its labels) of a
    generator: for an unconditional one (None, ``num_samples`` noise vectors, None); for a
    class-conditional one, ``label_probs`` normalized (None: uniform) and a row per class."""
    fixed_y = probs = None
    if num_classes is not None:
        k = int(num_classes)
        probs = torch.full((k,), 1.0 / k) if label_probs is None else label_probs.float()
        if probs.shape != (k,) or not bool((probs >= 0).all()) or float(probs.sum()) <= 0:
            raise ValueError(f"label_probs must be {k} non-negative class weights, got {probs}")
        probs = probs / probs.sum()
        rows = min(k, GRID_MAX_CLASSES)
        num_samples = rows * GRID_COLUMNS
        fixed_y = torch.arange(rows).repeat_interleave(GRID_COLUMNS)
    z = torch.randn(num_samples, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    return probs, z, fixed_y


class SampleGrids(Callback):
    """Added by ``train`` to every run; ``draw`` logs one grid now."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        step, schedule = pl_module.gen_step, pl_module.schedule
        if outputs and schedule.due(schedule.sample_every, step, pl_module.total_steps):
            self.draw(trainer, pl_module, step)

    @staticmethod
    def draw(trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> None:
        out = pl_module.samples()
        if out.dim() == 4:
            picture = image_grid(out, nrow=pl_module.grid_columns)
        else:
            if len(out) < CLOUD_POINTS // 4:  # fixed noise, not the training stream
                z = torch.randn(CLOUD_POINTS, pl_module.G.z_dim,
                                generator=torch.Generator().manual_seed(pl_module.seed))
                out = pl_module.samples(z.to(pl_module.device))
            picture = scatter_image(out, pl_module.reference_points)
        log_picture(pl_module.loggers, picture, step,
                    pl_module.paths.samples if trainer.is_global_zero else None)
