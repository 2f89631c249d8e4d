"""torchvision datasets (cifar10, stl10, mnist, fashion_mnist, celeba) as GAN DataModules, one
row of ``TORCHVISION_SETS`` each.

``data.root`` holds the files; ``data.download=true`` fetches them where the internet is
reachable. Offline, a missing dataset fails before training with the directory and the files
torchvision expects there (derived from torchvision's own class attributes).

Labels: the 10 classes of cifar10, mnist, fashion_mnist and stl10's train and test splits (STL-10's
unlabeled images have none); celeba's attributes are not used as classes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torchvision.datasets as tvd
import torchvision.transforms as T
from torch.utils.data import DataLoader, Dataset

from spectral_gan.data.base import GANDataModule
from spectral_gan.data.batches import first_batches
from spectral_gan.errors import DatasetNotFoundError


def _strip_gz(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


@dataclass(frozen=True)
class TorchvisionSet:
    """One row of ``TORCHVISION_SETS``: all a torchvision dataset needs to train here.

    ``make(split, root=..., transform=..., download=...)`` builds torchvision's dataset of a
    split; ``files(root)`` is (directory, file names) torchvision looks for, for the error of a
    missing dataset; ``labeled``: the splits whose items carry one of 10 class labels."""

    channels: int
    splits: tuple[str, ...]
    labeled: tuple[str, ...]
    make: Callable[..., Dataset]
    files: Callable[[str], tuple[str, list[str]]]


def _archive_files(cls: type, meta: bool = False) -> Callable[[str], tuple[str, list[str]]]:
    """CIFAR-10 / STL-10 style: the files of ``train_list`` and ``test_list`` in ``base_folder``."""
    def files(root: str) -> tuple[str, list[str]]:
        names = [f for f, _ in cls.train_list + cls.test_list]
        return os.path.join(root, cls.base_folder), names + ([cls.meta["filename"]] if meta else [])
    return files


def _mnist_files(cls: type) -> Callable[[str], tuple[str, list[str]]]:
    return lambda root: (os.path.join(root, cls.__name__, "raw"), [_strip_gz(f) for f, _ in cls.resources])


def _celeba_files(root: str) -> tuple[str, list[str]]:
    files = [f for _, _, f in tvd.CelebA.file_list if not f.endswith(".zip")]
    return os.path.join(root, tvd.CelebA.base_folder), ["img_align_celeba/ (the extracted images)"] + files


# A torchvision dataset is one row here (and one file in configs/data/).
TORCHVISION_SETS: dict[str, TorchvisionSet] = {
    "cifar10": TorchvisionSet(3, ("train", "test"), ("train", "test"),
                              lambda split, **kw: tvd.CIFAR10(train=split == "train", **kw),
                              _archive_files(tvd.CIFAR10, meta=True)),
    "stl10": TorchvisionSet(3, ("train", "test", "unlabeled", "train+unlabeled"), ("train", "test"),
                            lambda split, **kw: tvd.STL10(split=split, **kw), _archive_files(tvd.STL10)),
    "mnist": TorchvisionSet(1, ("train", "test"), ("train", "test"),
                            lambda split, **kw: tvd.MNIST(train=split == "train", **kw),
                            _mnist_files(tvd.MNIST)),
    "fashion_mnist": TorchvisionSet(1, ("train", "test"), ("train", "test"),
                                    lambda split, **kw: tvd.FashionMNIST(train=split == "train", **kw),
                                    _mnist_files(tvd.FashionMNIST)),
    # celeba's attributes are not classes
    "celeba": TorchvisionSet(3, ("train", "valid", "test", "all"), (),
                             lambda split, **kw: tvd.CelebA(split=split, target_type=[], **kw),
                             _celeba_files),
}


def expected_files(name: str, root: str) -> tuple[str, list[str]]:
    """(directory, file names) that torchvision looks for under ``root``."""
    return TORCHVISION_SETS[name].files(root)


class ImagesOnly(Dataset):
    """Drops labels: an unconditional GAN trains on images alone."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.dataset[i][0]


class ImagesWithLabels(Dataset):
    """(image, class index) pairs, the label as a plain int so default collation makes a long
    tensor whatever type the dataset stores it as (numpy for STL-10)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, target = self.dataset[i]
        return image, int(target)


def dataset_targets(dataset: Dataset) -> torch.Tensor:
    """A torchvision dataset's labels as a long tensor, from its ``targets`` (MNIST, CIFAR) or
    ``labels`` (STL-10) attribute: no image is decoded."""
    for attr in ("targets", "labels"):
        values = getattr(dataset, attr, None)
        if values is not None:
            return torch.as_tensor(values).long()
    raise TypeError(f"{type(dataset).__name__} has neither targets nor labels")


class TorchvisionDataModule(GANDataModule):
    """One torchvision dataset, center-cropped and resized to ``image_size``, in [-1, 1]."""

    @property
    def dataset_name(self) -> str:
        return self.name

    def __init__(self, name: str, root: str = "data", split: str = "train", image_size: int = 32,
                 download: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        if name not in TORCHVISION_SETS:
            raise ValueError(f"unknown torchvision dataset {name!r}; valid: {', '.join(TORCHVISION_SETS)}")
        self.name, self.root, self.split, self.download = name, str(root), split, download
        self.row = TORCHVISION_SETS[name]
        self.image_size = image_size
        self.shape = (self.row.channels, image_size, image_size)
        self._dataset: Dataset | None = None

    def _transform(self) -> Callable:
        c = self.shape[0]
        return T.Compose([T.Resize(self.image_size), T.CenterCrop(self.image_size), T.ToTensor(),
                          T.Normalize([0.5] * c, [0.5] * c)])

    @property
    def reference_splits(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.row.splits

    @property
    def num_classes(self) -> int | None:
        return 10 if self._split_has_labels(self.split) else None

    def _split_has_labels(self, split: str) -> bool:
        return split in self.row.labeled

    def describe_data(self, split: str | None = None) -> str:
        # Where some splits are labeled and others not (STL-10), the split is the reason.
        mixed = bool(self.row.labeled) and set(self.row.labeled) != set(self.row.splits)
        return f"data={self.name}" + (f" split={split or self.split}" if mixed else "")

    def _construct(self, split: str) -> Dataset:
        return self.row.make(split, root=self.root, transform=self._transform(), download=self.download)

    def _open(self, split: str) -> Dataset:
        """torchvision's dataset for ``split``, or DatasetNotFoundError naming folder and files."""
        try:
            return self._construct(split)
        except (RuntimeError, OSError) as err:  # torchvision: "Dataset not found"; offline: URLError
            folder, files = expected_files(self.name, self.root)
            how = ("the download failed" if self.download
                   else "set data.download=true where the internet is reachable, or")
            raise DatasetNotFoundError(
                f"data={self.name}: dataset not found under {os.path.abspath(self.root)} "
                f"({type(err).__name__}: {err}). Expected in {os.path.abspath(folder)}: "
                f"{', '.join(files)}. To fix: {how} place those files there "
                f"(or point data.root at the folder that holds them)."
            ) from None

    def check_available(self) -> None:
        if self._dataset is None:
            self._dataset = self._open(self.split)

    def _split_dataset(self, split: str) -> Dataset:
        """torchvision's dataset of ``split``: the loaded one for the training split, else opened
        for the caller only, with the same transform."""
        if split == self.split:
            self.check_available()
            return self._dataset
        return self._open(split)

    def _train_labels(self) -> torch.Tensor:
        return dataset_targets(self._split_dataset(self.split))

    def reference_images(self, split: str, n: int, batch_size: int = 250) -> Iterator[torch.Tensor]:
        """``n`` images of ``split`` (``reference_indices`` of torchvision's order) (another split than the
        one trained on is opened for this call only, with the same transform)."""
        self.check_reference_split(split)
        return first_batches(ImagesOnly(self._split_dataset(split)), n, batch_size)

    def reference_labeled(self, split: str, n: int,
                          batch_size: int = 250) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``reference_images(split, n, batch_size)`` with their labels."""
        self._check_labeled_split(split)
        pairs = ImagesWithLabels(self._split_dataset(split))
        return first_batches(pairs, n, batch_size)  # type: ignore[return-value]

    def train_dataloader(self) -> DataLoader:
        dataset = self._split_dataset(self.split)
        return self._loader(ImagesWithLabels(dataset) if self.labels else ImagesOnly(dataset))
