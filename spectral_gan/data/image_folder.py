"""Any folder of images (searched recursively), center-cropped and resized, in [-1, 1].

Labels follow torchvision's ImageFolder: when every image lies in a subfolder of the root (none
directly in it), the root's subfolders are the classes, indexed in sorted name order, and an
image's label is the subfolder it lies under (at any depth). A flat folder, or one with images
directly in the root beside subfolders, is unlabeled (``num_classes`` None): the images at the
top belong to no class. (A root holding a single subfolder is thus one class.)
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Iterator

import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from spectral_gan.data.base import GANDataModule
from spectral_gan.data.batches import first_batches
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

    def __init__(self, paths: list[str], transform, mode: str, on_bad_image: str = "skip",
                 labels: list[int] | None = None) -> None:
        self.paths, self.transform, self.mode = paths, transform, mode
        self.labels = labels  # given: items are (image, label of the file actually decoded)
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

    def __getitem__(self, i: int) -> torch.Tensor | tuple[torch.Tensor, int]:
        for k in range(len(self.paths)):
            j = (i + k) % len(self.paths)
            image = self._decode(self.paths[j])
            if image is not None:
                return image if self.labels is None else (image, self.labels[j])
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
        self._classes: list[str] | None = None
        self._classes_read = False

    def _check_root(self) -> None:
        if not os.path.isdir(self.root):
            raise DatasetNotFoundError(
                f"data=image_folder: folder {os.path.abspath(self.root)} does not exist; "
                f"set data.root to a folder of images ({', '.join(IMAGE_EXTENSIONS)})")

    @property
    def classes(self) -> list[str] | None:
        """The class names: the root's subfolders, sorted (torchvision's ``find_classes``), when
        no image lies directly in the root; None for an unlabeled (flat) folder. Read once, from
        the root's listing alone."""
        if not self._classes_read:
            self._check_root()
            with os.scandir(self.root) as entries:
                found = list(entries)
            top_images = any(e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
                             for e in found)
            folders = sorted(e.name for e in found if e.is_dir())
            self._classes = folders if folders and not top_images else None
            self._classes_read = True
        return self._classes

    @property
    def num_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    def describe_data(self, split: str | None = None) -> str:
        return (f"data=image_folder ({os.path.abspath(self.root)} is not split into one subfolder "
                f"per class: it has no subfolders, or images directly in it)")

    def check_available(self) -> None:
        if self._paths is not None:
            return
        self._check_root()
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

    def _path_labels(self) -> list[int]:
        """The class index of each readable image (in ``check_available``'s sorted order): the
        class subfolder it lies under. DatasetNotFoundError for a class folder without a
        readable image, which torchvision's ImageFolder refuses too."""
        classes = self.classes
        if classes is None:
            raise self._no_labels("its images have no labels")
        self.check_available()
        index = {name: i for i, name in enumerate(classes)}
        labels = []
        for path in self._paths:
            top = os.path.relpath(path, self.root).split(os.sep)[0]
            if top not in index:  # the folder changed since its classes were read
                raise DatasetNotFoundError(
                    f"data=image_folder: {path} is not in one of the class folders "
                    f"{', '.join(classes)}; put every image in a class folder")
            labels.append(index[top])
        present = set(labels)
        empty = [name for i, name in enumerate(classes) if i not in present]
        if empty:
            raise DatasetNotFoundError(
                f"data=image_folder: class folder(s) {', '.join(empty)} in "
                f"{os.path.abspath(self.root)} hold no readable image; add images or remove "
                f"the folder(s) (each subfolder of the root is a class)")
        return labels

    def use_labels(self) -> None:
        super().use_labels()
        if self._paths is not None:  # the folder was listed already: check its classes now
            self._path_labels()

    def _train_labels(self) -> torch.Tensor:
        return torch.tensor(self._path_labels())

    def _dataset_images(self, labeled: bool = False) -> Dataset:
        self.check_available()
        c = self.shape[0]
        transform = T.Compose([T.Resize(self.image_size), T.CenterCrop(self.image_size),
                               T.ToTensor(), T.Normalize([0.5] * c, [0.5] * c)])
        return ImageFiles(self._paths, transform, "L" if c == 1 else "RGB", self.on_bad_image,
                          labels=self._path_labels() if labeled else None)

    def reference_images(self, split: str, n: int, batch_size: int = 250) -> Iterator[torch.Tensor]:
        """``n`` readable images (``reference_indices`` of the sorted paths; the folder is the one split)."""
        self.check_reference_split(split)
        return first_batches(self._dataset_images(), n, batch_size)

    def reference_labeled(self, split: str, n: int,
                          batch_size: int = 250) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``reference_images(split, n, batch_size)`` with their labels."""
        self._check_labeled_split(split)
        pairs = self._dataset_images(labeled=True)
        return first_batches(pairs, n, batch_size)  # type: ignore[return-value]

    def train_dataloader(self) -> DataLoader:
        return self._loader(self._dataset_images(labeled=self.labels))
