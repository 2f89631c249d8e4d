"""The pieces of a data stream: in-memory batches, a resumable sampler for file-backed data, the
fixed reference subset of evaluations, and the collation of (image, label) pairs."""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import (DataLoader, Dataset, DistributedSampler, IterableDataset, Subset,
                              default_collate)

from spectral_gan.errors import ConfigError


# What ``train_dataloader`` yields: images, or (images, labels) once ``use_labels()`` was called.
Batch = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class TensorBatches(IterableDataset):
    """Endless shuffled passes over an in-memory tensor, yielded as whole batches.

    With ``labels`` (one per sample), yields ``(data[idx], labels[idx])``: the same permutation
    stream, so the data side is what it is without labels."""

    def __init__(self, data: torch.Tensor, batch_size: int, seed: int = 0, skip: int = 0,
                 labels: torch.Tensor | None = None) -> None:
        if batch_size > len(data):
            raise ConfigError(
                f"a training step needs {batch_size} samples (batch_size x n_dis) but the dataset "
                f"has only {len(data)}; lower batch_size or n_dis")
        if labels is not None and len(labels) != len(data):
            raise ValueError(f"{len(labels)} labels for {len(data)} samples")
        self.data, self.batch_size, self.seed, self.skip = data, batch_size, seed, skip
        # Indexed with the permutation on the data's device, so they must live there too.
        self.labels = None if labels is None else labels.to(data.device)

    def __iter__(self) -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(self.seed)
        skip = self.skip  # resume: the same sequence, without the batches already trained on
        while True:
            # The permutation is drawn on the CPU (the same sequence on any device, so resumes
            # match) and moved once per epoch: data on an accelerator is indexed there, no sync.
            order = torch.randperm(len(self.data), generator=gen).to(self.data.device)
            for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
                if skip:
                    skip -= 1
                    continue
                idx = order[start:start + self.batch_size]
                yield self.data[idx] if self.labels is None else (self.data[idx], self.labels[idx])


class ResumableSampler(DistributedSampler):
    """Endless seeded shuffles of a map-style dataset, split across DDP ranks, starting after the
    first ``skip`` samples of this rank's stream.

    Epoch ``e`` is ``randperm(n)`` seeded with ``seed + e`` (DistributedSampler's scheme), of
    which rank ``r`` takes every ``num_replicas``-th index; so where a stream stands after any
    number of samples is computed, not replayed. A DistributedSampler so that Lightning keeps it
    under DDP; no length, so the loader is endless like the in-memory sources (steps, not epochs,
    end training) and loader batches run across epoch boundaries.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 skip: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=True)
        if self.num_samples < 1:
            raise ConfigError(f"the dataset has {len(dataset)} samples, fewer than the "  # type: ignore[arg-type]
                              f"{num_replicas} processes that share it")
        self.skip = skip

    def __len__(self) -> int:
        raise TypeError("ResumableSampler is endless")

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.skip, self.num_samples)
        while True:
            order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(self.seed + epoch))  # type: ignore[arg-type]
            yield from order[self.rank:self.total_size:self.num_replicas][offset:].tolist()
            epoch, offset = epoch + 1, 0


# The reference side of FID/KID is a fixed random subset, not the first n items: data sets stored
# by class (mnist5k's file is sorted by digit, ImageFolder by class folder) would otherwise give a
# reference of a few classes only (the first 2,000 mnist5k digits are 0-3). A constant seed, so
# every run, seed and tool scores against the same images; not 0, which would pick exactly the
# 1,000 mnist5k digits held out from the digit classifier (metrics/classifier.py heldout_split).
REFERENCE_SUBSET_SEED = 1
REFERENCE_SUBSET = "seeded-permutation-v1"  # part of the reference cache's identity


def reference_indices(length: int, n: int) -> torch.Tensor:
    """Indices of the ``n`` reference items among ``length`` (all of them, in order, when
    ``n >= length``; else a fixed random subset, in ascending order)."""
    if n >= length:
        return torch.arange(length)
    perm = torch.randperm(length, generator=torch.Generator().manual_seed(REFERENCE_SUBSET_SEED))
    return perm[:n].sort().values


def first_batches(dataset: Dataset, n: int, batch_size: int) -> Iterator[Batch]:
    """``n`` reference items of ``dataset`` (``reference_indices``), in batches of at most
    ``batch_size``: image tensors, or ``(images, labels)`` tuples for a dataset of pairs."""
    if n < len(dataset):
        dataset = Subset(dataset, reference_indices(len(dataset), n).tolist())
    seen = 0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        if isinstance(batch, torch.Tensor):
            yield batch[: n - seen]
            seen += len(batch)
        else:  # collated pairs come as a list
            yield tuple(part[: n - seen] for part in batch)
            seen += len(batch[0])
        if seen >= n:
            return


def collate_pairs(samples: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Collate (image, label) samples into an ``(images, labels)`` tuple (default_collate gives
    a list). Module level, so loader worker processes can pickle it."""
    images, labels = default_collate(samples)
    return images, labels


def pair_as_tuple(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep a whole-batch pair a tuple (the loader's default conversion makes it a list)."""
    return tuple(batch)  # type: ignore[return-value]
