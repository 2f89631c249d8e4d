"""The GAN module's samples: of the EMA generator once it averages, else of the generator, in eval
mode; the fixed grid's when called without noise.

A mixin of ``spectral_gan.training.gan.GAN``: it reads the module's ``G``, ``G_ema``,
``conditional``, ``fixed_z`` and ``fixed_y``."""
from __future__ import annotations

import torch
from torch import nn

from spectral_gan.training import ema as ema_lib
from spectral_gan.training.callbacks.sample_grid import GRID_COLUMNS


class Sampling:
    @property
    def grid_columns(self) -> int:
        """Samples per row of the sample grid (a conditional one has a row per class)."""
        return GRID_COLUMNS if self.conditional else 8

    @property
    def sampler(self) -> nn.Module:
        """The EMA generator once it has started averaging, else the generator."""
        return self.G_ema.module if ema_lib.has_started(self.G_ema) else self.G

    @torch.no_grad()
    def samples(self, z: torch.Tensor | None = None, y: torch.Tensor | None = None) -> torch.Tensor:
        """Samples of ``sampler`` (eval mode) for noise ``z`` and, for a class-conditional
        generator, labels ``y``; no arguments: the fixed grid (one row per class)."""
        if z is None:
            z, y = self.fixed_z, self.fixed_y
        net = self.sampler
        was_training = net.training
        net.eval()
        try:
            return net(z) if not self.conditional else net(z, y)
        finally:
            net.train(was_training)
