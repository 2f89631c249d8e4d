"""Random images: a data source for benchmarks and smoke runs, not for learning anything.

Any channel count and size, generated in memory from a seed (no files, no network). The peers'
step times quoted in docs/benchmarks.md were taken on random images of CIFAR-10's shape, and
``make bench`` uses this source to time the same step on 3-channel 32x32 data.
"""
from __future__ import annotations

import torch

from spectral_gan.data.in_memory import InMemoryImages
from spectral_gan.errors import ConfigError


class SyntheticImages(InMemoryImages):
    """``num_samples`` images of shape (channels, image_size, image_size), uniform in [-1, 1]."""

    dataset_name = "synthetic"
    reference_attrs = ("num_samples", "seed")

    def __init__(self, channels: int = 3, image_size: int = 32, num_samples: int = 10_000,
                 **kwargs) -> None:
        super().__init__(image_size=image_size, **kwargs)
        if channels < 1 or num_samples < 1:
            raise ConfigError(f"data=synthetic needs channels >= 1 and num_samples >= 1, "
                              f"got {channels} and {num_samples}")
        self.num_samples = num_samples
        self.shape = (channels, image_size, image_size)

    def load(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed)
        return torch.rand((self.num_samples, *self.shape), generator=gen) * 2 - 1
