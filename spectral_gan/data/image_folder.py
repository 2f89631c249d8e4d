"""Any folder of images (searched recursively), center-cropped and resized, in [-1, 1]."""
from __future__ import annotations

import os
import warnings
from typing import Any, Iterator

import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from spectral_gan.data.base import GANDataModule, first_batches
from spectral_gan.errors import DatasetNotFoundError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def readable(paths: list[str], decode: bool = False) -> tuple[list[str], list[str]]:
    """Split paths into images PIL can read and ones it cannot (checked once, up front).

    ``verify`` reads headers and checksums without decoding, so it stays cheap on large folders
    but passes e.g. a truncated JPEG; ``decode=True`` (``on_bad_image=fail``: strict, before
    training) also decodes every file. Without it ``ImageFiles`` handles those when decoding."""
    good, bad = [], []
    for path in paths:
        try:
            with Image.open(path) as img:
                img.verify()
            if decode:
                with Image.open(path) as img:
                    img.load()
            good.append(path)
        except Exception:  # noqa: BLE001  PIL raises many kinds for broken files
            bad.append(path)
    return good, bad


def list_images(folder: str) -> list[str]:
    found = []
    for dirpath, _, names in os.walk(folder):
        found += [os.path.join(dirpath, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


class ImageFiles(Dataset):
    """Decoded, transformed images. A file that passed ``readable`` but fails to decode (a
    truncated JPEG) is, with ``on_bad_image=skip``, replaced by the next decodable file with a
    warning (training goes on), and with ``fail`` a DatasetNotFoundError naming it."""

    def __init__(self, paths: list[str], transform, mode: str, on_bad_image: str = "skip") -> None:
        self.paths, self.transform, self.mode = paths, transform, mode
        self.on_bad_image = on_bad_image
        self.undecodable: set[str] = set()  # per process (each loader worker has its own)

    def __len__(self) -> int:
        return len(self.paths)

    def _decode(self, path: str) -> torch.Tensor | None:
        if path in self.undecodable:
            return None
        try:
            with Image.open(path) as img:
                return self.transform(img.convert(self.mode))
        except (OSError, SyntaxError, ValueError) as err:  # PIL's decode errors
            if self.on_bad_image == "fail":
                raise DatasetNotFoundError(
                    f"data=image_folder: {path} cannot be decoded ({err}); remove it, or set "
                    f"data.on_bad_image=skip to train on the others") from None
            self.undecodable.add(path)
            warnings.warn(f"data=image_folder: skipping {path}, which cannot be decoded ({err}); "
                          f"another image is used in its place")
            return None

    def __getitem__(self, i: int) -> torch.Tensor:
        for k in range(len(self.paths)):
            image = self._decode(self.paths[(i + k) % len(self.paths)])
            if image is not None:
                return image
        raise DatasetNotFoundError(f"data=image_folder: none of the {len(self.paths)} images "
                                   f"can be decoded")


class ImageFolderDataModule(GANDataModule):
    dataset_name = "image_folder"

    def __init__(self, root: str, image_size: int = 32, channels: int = 3,
                 on_bad_image: str = "skip", **kwargs) -> None:
        super().__init__(**kwargs)
        if on_bad_image not in ("skip", "fail"):
            raise DatasetNotFoundError(f"data.on_bad_image must be skip or fail, got {on_bad_image!r}")
        self.root, self.image_size, self.on_bad_image = str(root), image_size, on_bad_image
        self.unreadable: list[str] = []
        self.shape = (channels, image_size, image_size)
        self._paths: list[str] | None = None

    def check_available(self) -> None:
        if self._paths is not None:
            return
        if not os.path.isdir(self.root):
            raise DatasetNotFoundError(
                f"data=image_folder: folder {os.path.abspath(self.root)} does not exist; "
                f"set data.root to a folder of images ({', '.join(IMAGE_EXTENSIONS)})")
        paths, self.unreadable = readable(list_images(self.root), decode=self.on_bad_image == "fail")
        if self.unreadable:
            examples = ", ".join(self.unreadable[:3])
            if self.on_bad_image == "fail":
                raise DatasetNotFoundError(
                    f"data=image_folder: {len(self.unreadable)} unreadable image(s) in "
                    f"{os.path.abspath(self.root)} (e.g. {examples}); remove them, or set "
                    f"data.on_bad_image=skip to train on the {len(paths)} readable ones")
            warnings.warn(f"data=image_folder: skipping {len(self.unreadable)} unreadable image(s) "
                          f"in {self.root} (e.g. {examples}); training on {len(paths)}")
        if len(paths) < self.step_batch_size:
            raise DatasetNotFoundError(
                f"data=image_folder: {os.path.abspath(self.root)} holds {len(paths)} images "
                f"({', '.join(IMAGE_EXTENSIONS)}), fewer than one training step needs "
                f"({self.step_batch_size} = batch_size x n_dis)")
        self._paths = paths

    def reference_identity(self) -> dict[str, Any]:
        """The base identity (with the folder's real path) plus a fingerprint of its image
        files (count, bytes, newest change), so adding or replacing images misses the cache."""
        files = list_images(self.root) if os.path.isdir(self.root) else []
        stats = [os.stat(p) for p in files]
        return {**super().reference_identity(),
                "files": [len(files), sum(s.st_size for s in stats),
                          max((s.st_mtime_ns for s in stats), default=0)]}

    def _dataset_images(self) -> Dataset:
        self.check_available()
        c = self.shape[0]
        transform = T.Compose([T.Resize(self.image_size), T.CenterCrop(self.image_size),
                               T.ToTensor(), T.Normalize([0.5] * c, [0.5] * c)])
        return ImageFiles(self._paths, transform, "L" if c == 1 else "RGB", self.on_bad_image)

    def reference_images(self, split: str, n: int, batch_size: int = 250) -> Iterator[torch.Tensor]:
        """``n`` readable images (``reference_indices`` of the sorted paths; the folder is the one split)."""
        self.check_reference_split(split)
        return first_batches(self._dataset_images(), n, batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._dataset_images())
