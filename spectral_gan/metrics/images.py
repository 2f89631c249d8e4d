"""Reading image folders for scoring: every readable image, unreadable ones counted."""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from spectral_gan.data.image_folder import IMAGE_EXTENSIONS, list_images
from spectral_gan.errors import DatasetNotFoundError
from spectral_gan.metrics.inception import resize_like_tf1


class FolderImages:
    """Batches of (N, channels, size, size) images in [-1, 1] from a folder (RGB 299x299 for
    Inception; a data set's own shape, e.g. 1x32x32, when scored against it), resized with
    TF1-style bilinear sampling where they differ. ``unreadable`` lists files that failed;
    ``other_sizes`` the (width, height) of images that were resized."""

    def __init__(self, folder: str, batch_size: int = 50, size: int = 299, channels: int = 3) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if not os.path.isdir(folder):
            raise DatasetNotFoundError(f"{folder} is not a folder of images")
        self.paths = list_images(folder)
        if not self.paths:
            raise DatasetNotFoundError(
                f"no images in {os.path.abspath(folder)} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        self.folder, self.batch_size, self.size, self.channels = folder, batch_size, size, channels
        self.unreadable: list[str] = []
        self.other_sizes: set[tuple[int, int]] = set()

    def _load(self, path: str) -> torch.Tensor | None:
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB" if self.channels == 3 else "L"), dtype=np.float32)
        except Exception:  # noqa: BLE001  PIL raises many kinds; count and go on
            self.unreadable.append(path)
            return None
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.shape[:2] != (self.size, self.size):
            self.other_sizes.add((arr.shape[1], arr.shape[0]))
        x = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1
        return resize_like_tf1(x, self.size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        batch: list[torch.Tensor] = []
        for path in self.paths:
            x = self._load(path)
            if x is not None:
                batch.append(x)
            if len(batch) == self.batch_size:
                yield torch.cat(batch)
                batch = []
        if batch:
            yield torch.cat(batch)
