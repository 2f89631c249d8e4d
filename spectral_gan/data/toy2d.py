"""2-D Gaussian mixtures of the mode-collapse benchmark (PacGAN, Lin et al. 2018, Section 5).

- ``ring``: 8 modes at (cos 2*pi*i/8, sin 2*pi*i/8), radius 1, std 0.01 per coordinate.
- ``grid``: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05.
Samples are drawn fresh for every batch: the data distribution, not a finite set, is the target.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset

from spectral_gan.data.base import GANDataModule


def ring_modes(n: int = 8, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_modes(values: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0)) -> torch.Tensor:
    v = torch.tensor(values)
    return torch.cartesian_prod(v, v)


class MixtureBatches(IterableDataset):
    """Endless batches from an equal-weight isotropic Gaussian mixture."""

    def __init__(self, modes: torch.Tensor, std: float, batch_size: int, seed: int = 0,
                 skip: int = 0) -> None:
        self.modes, self.std, self.batch_size, self.seed, self.skip = modes, std, batch_size, seed, skip

    def __iter__(self) -> Iterator[torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        skip = self.skip  # resume: replay the random stream past the batches already used
        while True:
            idx = torch.randint(len(self.modes), (self.batch_size,), generator=gen)
            noise = torch.randn(self.batch_size, self.modes.shape[1], generator=gen)
            if skip:
                skip -= 1
                continue
            yield self.modes[idx] + self.std * noise


class GaussianMixtureDataModule(GANDataModule):
    kind = "points"

    def __init__(self, modes: torch.Tensor, std: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.modes, self.std = modes, std
        self.shape = (int(modes.shape[1]),)

    def train_dataloader(self) -> DataLoader:
        return self._loader(MixtureBatches(self.modes, self.std, self.step_batch_size, self.seed,
                                           skip=self.resume_step))

    def reference_images(self, split: str, n: int, batch_size: int = 250) -> Iterator[torch.Tensor]:
        """``n`` points drawn from the mixture with the data seed (the same points every call).
        The mode metrics need only ``modes`` and ``std``; this serves whoever wants real samples."""
        self.check_reference_split(split)
        points = next(iter(MixtureBatches(self.modes, self.std, n, self.seed)))
        return iter(points.split(batch_size))


class RingDataModule(GaussianMixtureDataModule):
    dataset_name = "ring"

    def __init__(self, num_modes: int = 8, radius: float = 1.0, std: float = 0.01, **kwargs) -> None:
        super().__init__(ring_modes(num_modes, radius), std, **kwargs)


class GridDataModule(GaussianMixtureDataModule):
    dataset_name = "grid"

    def __init__(self, std: float = 0.05, **kwargs) -> None:
        super().__init__(grid_modes(), std, **kwargs)
