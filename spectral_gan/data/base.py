"""Base DataModule: batches of ``batch_size * batches_per_step`` samples in [-1, 1].

One training step of the GAN (one generator update) consumes ``batches_per_step`` (= n_dis)
real batches, so each loader batch holds all of them; the module splits it. Small datasets live in
memory and are served as whole batches by tensor indexing, which avoids per-sample collation.

Every source is an endless, seeded stream that a resume continues exactly where it stopped
(``resume_step``): in-memory and 2-D data replay their own stream, file-backed datasets
(torchvision, image folders) draw their order from ``ResumableSampler``, which skips the consumed
samples by index arithmetic, without loading them.

Class labels (for class-conditional GANs): ``num_classes`` says whether a source has them;
after ``use_labels()`` the training loader yields ``(images, labels)`` tuples instead of image
tensors, drawn from the same seeded stream, so switching labels on changes no image.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import pytorch_lightning as pl
import torch
from torch.utils.data import (DataLoader, Dataset, DistributedSampler, IterableDataset, Subset,
                              default_collate)

from spectral_gan.errors import ConfigError


# What ``train_dataloader`` yields: images, or (images, labels) once ``use_labels()`` was called.
Batch = torch.Tensor | tuple[torch.Tensor, torch.Tensor]

# The data that ``use_labels`` accepts, for the message that refuses the others.
LABELED_DATA = ("mnist5k, digits, mnist, fashion_mnist, cifar10, stl10 (split train or test), "
                "image_folder with one subfolder per class")


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


class GANDataModule(pl.LightningDataModule):
    """Common interface: ``shape`` of one sample, ``check_available()``, ``train_dataloader()``,
    and ``reference_images()`` for the real side of the evaluation.

    Class labels: ``num_classes`` is the number of classes of the training data, or None for a
    source without labels (2-D mixtures, synthetic images, celeba, unlabeled splits, flat image
    folders); reading it loads no images. ``labels`` (False by default) says whether
    ``train_dataloader()`` yields ``(images, labels)`` tuples, labels a long tensor (B,) of class
    indices in ``[0, num_classes)`` on the images' device; ``use_labels()`` turns it on.
    ``class_frequencies()`` and ``reference_labeled()`` serve conditional sampling and
    intra-class evaluation.
    """

    shape: tuple[int, ...]
    kind = "image"  # or "points" for 2-D data
    dataset_name = "custom"  # the data= option; keys reference statistics and classifiers
    # Splits ``reference_images`` can read. A source without splits has only its training data.
    reference_splits: tuple[str, ...] = ("train",)
    # Attributes that change which images ``reference_images`` yields (``reference_identity``).
    reference_attrs: tuple[str, ...] = ()

    def __init__(self, batch_size: int = 64, batches_per_step: int = 1, num_workers: int = 0,
                 seed: int = 0) -> None:
        super().__init__()
        if batch_size < 1 or batches_per_step < 1:
            raise ConfigError(f"batch_size and n_dis must be >= 1, got {batch_size} and {batches_per_step}")
        self.batch_size = batch_size
        self.batches_per_step = batches_per_step
        self.num_workers = num_workers
        self.seed = seed
        # Generator steps already trained (set on resume): every source skips that many loader
        # batches so a resumed run sees the batches an uninterrupted one would have.
        self.resume_step = 0
        # Whether train_dataloader() yields (images, labels); set by use_labels().
        self.labels = False

    @property
    def num_classes(self) -> int | None:
        """Number of classes of the training data; None when the source has no class labels."""
        return None

    def describe_data(self, split: str | None = None) -> str:
        """The data as messages name it: ``data=NAME``, plus the split or folder where that
        decides whether there are labels."""
        return f"data={self.dataset_name}"

    def _no_labels(self, consequence: str, split: str | None = None,
                   remedy: str = "labeled data") -> ConfigError:
        return ConfigError(f"{self.describe_data(split)} has no class labels, so {consequence}; "
                           f"{remedy}: {LABELED_DATA}")

    def use_labels(self) -> None:
        """Make ``train_dataloader()`` yield ``(images, labels)``; ConfigError, naming the data,
        when it has no labels. Call it before building the loaders."""
        if self.num_classes is None:
            raise self._no_labels("a conditional model (generator.conditional / "
                                  "discriminator.conditional) cannot train on it",
                                  remedy="train an unconditional model, or pick labeled data")
        self.labels = True

    def _train_labels(self) -> torch.Tensor:
        """Class index of every training sample (long, (N,)), reading no images where the source
        allows; only called on labeled sources."""
        raise NotImplementedError(f"{type(self).__name__} provides no labels")

    def class_frequencies(self) -> torch.Tensor:
        """Fraction of the training data in each class: float (num_classes,), summing to 1 (for
        sampling fake labels as the data has them). ConfigError for unlabeled data."""
        if self.num_classes is None:
            raise self._no_labels("it has no class frequencies")
        counts = torch.bincount(self._train_labels().cpu(), minlength=self.num_classes).double()
        return (counts / counts.sum()).float()

    @property
    def step_batch_size(self) -> int:
        return self.batch_size * self.batches_per_step

    def check_available(self) -> None:
        """Raise DatasetNotFoundError, naming the path and files expected, if data is missing."""

    def check_reference_split(self, split: str) -> None:
        """Raise ConfigError, listing the valid splits, if ``split`` is not one of them."""
        if split not in self.reference_splits:
            raise ConfigError(f"eval.reference_split={split!r} is not a split of data="
                              f"{self.dataset_name}; valid: {', '.join(self.reference_splits)}")

    def reference_identity(self) -> dict[str, Any]:
        """What defines this source's reference images, for the key of cached statistics: a
        second folder or another preprocessing must not reuse the first one's statistics."""
        identity: dict[str, Any] = {"source": f"{type(self).__module__}.{type(self).__qualname__}",
                                    "dataset": self.dataset_name, "shape": list(self.shape)}
        identity.update({name: getattr(self, name) for name in self.reference_attrs})
        root = getattr(self, "root", None)
        if root is not None:
            identity["root"] = os.path.realpath(str(root))
        return identity

    def reference_images(self, split: str, n: int, batch_size: int = 250) -> Iterator[torch.Tensor]:
        """``n`` real samples of ``split`` (all of them when ``n`` is at least its size, else a
        fixed random subset: ``reference_indices``), in batches of at most ``batch_size``: the
        reference side of FID/KID. The split is checked when this is called, before any batch is
        read."""
        raise NotImplementedError(f"{type(self).__name__} provides no reference images")

    def _split_has_labels(self, split: str) -> bool:
        """Whether ``split`` has class labels (sources with one split: whether the data has)."""
        return self.num_classes is not None

    def _check_labeled_split(self, split: str) -> None:
        self.check_reference_split(split)
        if not self._split_has_labels(split):
            raise self._no_labels("it has no labeled reference images (for intra-class "
                                  "metrics)", split, remedy="use a labeled split or labeled data")

    def reference_labeled(self, split: str, n: int,
                          batch_size: int = 250) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The images of ``reference_images(split, n, batch_size)`` (same subset, order and
        batching) with their labels: ``(images, labels)`` batches, labels long (B,). ConfigError
        for unlabeled data or an unlabeled split, before any batch is read."""
        self._check_labeled_split(split)
        raise NotImplementedError(f"{type(self).__name__} provides no labeled reference images")

    def _loader(self, dataset: Dataset) -> DataLoader:
        # With labels the datasets yield pairs; these keep each batch an (images, labels) tuple.
        if isinstance(dataset, IterableDataset):
            return DataLoader(dataset, batch_size=None, num_workers=0,
                              **({"collate_fn": pair_as_tuple} if self.labels else {}))
        trainer = getattr(self, "trainer", None)  # set by Lightning: DDP rank and world size
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = ResumableSampler(dataset, world, rank, self.seed,
                                   skip=self.resume_step * self.step_batch_size)
        return DataLoader(dataset, batch_size=self.step_batch_size, sampler=sampler, drop_last=True,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          **({"collate_fn": collate_pairs} if self.labels else {}))


ON_DEVICE = ("auto", True, False)


class InMemoryImages(GANDataModule):
    """Images loaded once into a float tensor in [-1, 1] of shape (N, C, H, W).

    ``on_device``: ``auto`` (default) copies the whole tensor to the accelerator once, at set-up,
    when it is at most ``on_device_max_mb``; batches are then drawn there, with no per-step
    host-to-device copy. ``true`` moves it whatever its size, ``false`` never. On the CPU it
    changes nothing.
    """

    def __init__(self, image_size: int = 32, on_device: str | bool = "auto",
                 on_device_max_mb: float = 1024, **kwargs) -> None:
        super().__init__(**kwargs)
        if on_device not in ON_DEVICE:
            raise ConfigError(f"data.on_device must be auto, true or false, got {on_device!r}")
        self.image_size = image_size
        self.on_device, self.on_device_max_mb = on_device, on_device_max_mb
        self._images: torch.Tensor | None = None
        self._targets: torch.Tensor | None = None

    def place(self, device: torch.device) -> bool:
        """Move the images (and labels, if any) to ``device`` if ``on_device`` says so; returns
        whether they moved."""
        if device.type == "cpu" or self.on_device is False:
            return False
        size_mb = self.images.numel() * self.images.element_size() / 2**20
        if self.on_device == "auto" and size_mb > self.on_device_max_mb:
            return False
        self._images = self.images.to(device)
        if self.num_classes is not None:
            self._targets = self._label_tensor().to(device)
        return True

    def setup(self, stage: str) -> None:
        trainer = getattr(self, "trainer", None)
        if trainer is not None and stage == "fit":
            self.place(trainer.strategy.root_device)

    def load(self) -> torch.Tensor:
        raise NotImplementedError

    def load_labels(self) -> torch.Tensor:
        """The class index of each image, in the order of ``load()``; labeled sources only."""
        raise NotImplementedError(f"{type(self).__name__} has no labels")

    @property
    def images(self) -> torch.Tensor:
        if self._images is None:
            self._images = self.load()
        return self._images

    def _label_tensor(self) -> torch.Tensor:
        if self._targets is None:
            self._targets = self.load_labels().long()
        return self._targets

    @property
    def targets(self) -> torch.Tensor:
        """The class index of each image (long, (N,)) on the images' device; ConfigError for
        unlabeled data."""
        if self.num_classes is None:
            raise self._no_labels("it has no label tensor")
        targets = self._label_tensor()
        if targets.device != self.images.device:  # images placed before the labels were read
            self._targets = targets = targets.to(self.images.device)
        return targets

    def _train_labels(self) -> torch.Tensor:
        return self._label_tensor()  # without loading the images

    def reference_images(self, split: str, n: int, batch_size: int = 250) -> Iterator[torch.Tensor]:
        """``n`` of the images trained on, a fixed random subset (``reference_indices``; the
        in-memory set is the one split)."""
        self.check_reference_split(split)
        return iter(self.images[reference_indices(len(self.images), n)].split(batch_size))

    def reference_labeled(self, split: str, n: int,
                          batch_size: int = 250) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``reference_images(split, n, batch_size)`` with their labels."""
        self._check_labeled_split(split)
        idx = reference_indices(len(self.images), n)
        return zip(self.images[idx].split(batch_size), self.targets[idx].split(batch_size))

    def train_dataloader(self) -> DataLoader:
        return self._loader(TensorBatches(self.images, self.step_batch_size, self.seed,
                                          skip=self.resume_step,
                                          labels=self.targets if self.labels else None))
