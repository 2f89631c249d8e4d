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
from torch.utils.data import DataLoader, Dataset, IterableDataset

from spectral_gan.data.batches import ResumableSampler, collate_pairs, pair_as_tuple
from spectral_gan.errors import ConfigError


# The data that ``use_labels`` accepts, for the message that refuses the others.
LABELED_DATA = ("mnist5k, digits, mnist, fashion_mnist, cifar10, stl10 (split train or test), "
                "image_folder with one subfolder per class")


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
