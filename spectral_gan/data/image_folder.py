"""Any folder of images (searched recursively), center-cropped and resized, in [-1, 1]."""
from __future__ import annotations

import os

import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from spectral_gan.data.base import GANDataModule
from spectral_gan.errors import DatasetNotFoundError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def list_images(folder: str) -> list[str]:
    found = []
    for dirpath, _, names in os.walk(folder):
        found += [os.path.join(dirpath, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


class ImageFiles(Dataset):
    def __init__(self, paths: list[str], transform, mode: str) -> None:
        self.paths, self.transform, self.mode = paths, transform, mode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as img:
            return self.transform(img.convert(self.mode))


class ImageFolderDataModule(GANDataModule):
    dataset_name = "image_folder"

    def __init__(self, root: str, image_size: int = 32, channels: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root, self.image_size = str(root), image_size
        self.shape = (channels, image_size, image_size)
        self._paths: list[str] | None = None

    def check_available(self) -> None:
        if self._paths is not None:
            return
        if not os.path.isdir(self.root):
            raise DatasetNotFoundError(
                f"data=image_folder: folder {os.path.abspath(self.root)} does not exist; "
                f"set data.root to a folder of images ({', '.join(IMAGE_EXTENSIONS)})")
        paths = list_images(self.root)
        if len(paths) < self.step_batch_size:
            raise DatasetNotFoundError(
                f"data=image_folder: {os.path.abspath(self.root)} holds {len(paths)} images "
                f"({', '.join(IMAGE_EXTENSIONS)}), fewer than one training step needs "
                f"({self.step_batch_size} = batch_size x n_dis)")
        self._paths = paths

    def _dataset_images(self) -> Dataset:
        self.check_available()
        c = self.shape[0]
        transform = T.Compose([T.Resize(self.image_size), T.CenterCrop(self.image_size),
                               T.ToTensor(), T.Normalize([0.5] * c, [0.5] * c)])
        return ImageFiles(self._paths, transform, "L" if c == 1 else "RGB")

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._dataset_images())
