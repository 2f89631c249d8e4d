"""Base DataModule: batches of ``batch_size * batches_per_step`` samples in [-1, 1].

One training step of the GAN (one generator update) consumes ``batches_per_step`` (= n_dis)
real batches, so each loader batch holds all of them; the module splits it. Small datasets live in
memory and are served as whole batches by tensor indexing, which avoids per-sample collation.
"""
from __future__ import annotations

from typing import Iterator

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from spectral_gan.errors import ConfigError


class TensorBatches(IterableDataset):
    """Endless shuffled passes over an in-memory tensor, yielded as whole batches."""

    def __init__(self, data: torch.Tensor, batch_size: int, seed: int = 0, skip: int = 0) -> None:
        if batch_size > len(data):
            raise ConfigError(
                f"a training step needs {batch_size} samples (batch_size x n_dis) but the dataset "
                f"has only {len(data)}; lower batch_size or n_dis")
        self.data, self.batch_size, self.seed, self.skip = data, batch_size, seed, skip

    def __iter__(self) -> Iterator[torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        skip = self.skip  # resume: the same sequence, without the batches already trained on
        while True:
            order = torch.randperm(len(self.data), generator=gen)
            for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                if skip:
                    skip -= 1
                    continue
                yield self.data[order[start:start + self.batch_size]]


class GANDataModule(pl.LightningDataModule):
    """Common interface: ``shape`` of one sample, ``check_available()``, ``train_dataloader()``."""

    shape: tuple[int, ...]
    kind = "image"  # or "points" for 2-D data
    dataset_name = "custom"  # the data= option; keys reference statistics and classifiers

    def __init__(self, batch_size: int = 64, batches_per_step: int = 1, num_workers: int = 0,
                 seed: int = 0) -> None:
        super().__init__()
        if batch_size < 1 or batches_per_step < 1:
            raise ConfigError(f"batch_size and n_dis must be >= 1, got {batch_size} and {batches_per_step}")
        self.batch_size = batch_size
        self.batches_per_step = batches_per_step
        self.num_workers = num_workers
        self.seed = seed
        # Generator steps already trained (set on resume): in-memory and 2-D sources skip that
        # many batches so a resumed run sees the batches an uninterrupted one would have.
        self.resume_step = 0

    @property
    def step_batch_size(self) -> int:
        return self.batch_size * self.batches_per_step

    def check_available(self) -> None:
        """Raise DatasetNotFoundError, naming the path and files expected, if data is missing."""

    def _loader(self, dataset: Dataset) -> DataLoader:
        if isinstance(dataset, IterableDataset):
            return DataLoader(dataset, batch_size=None, num_workers=0)
        return DataLoader(dataset, batch_size=self.step_batch_size, shuffle=True, drop_last=True,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))


class InMemoryImages(GANDataModule):
    """Images loaded once into a float tensor in [-1, 1] of shape (N, C, H, W)."""

    def __init__(self, image_size: int = 32, **kwargs) -> None:
        super().__init__(**kwargs)
        self.image_size = image_size
        self._images: torch.Tensor | None = None

    def load(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def images(self) -> torch.Tensor:
        if self._images is None:
            self._images = self.load()
        return self._images

    def train_dataloader(self) -> DataLoader:
        return self._loader(TensorBatches(self.images, self.step_batch_size, self.seed,
                                          skip=self.resume_step))
