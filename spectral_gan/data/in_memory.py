"""Datasets small enough to live in memory (on the training device when it pays), served as whole
batches by tensor indexing."""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader

from spectral_gan.errors import ConfigError


from spectral_gan.data.base import GANDataModule
from spectral_gan.data.batches import TensorBatches, reference_indices


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
