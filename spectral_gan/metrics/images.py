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
    """Batches of (N, 3, 299, 299) images in [-1, 1] from a folder; ``unreadable`` lists failures."""

    def __init__(self, folder: str, batch_size: int = 50, size: int = 299) -> None:
        if not os.path.isdir(folder):
            raise DatasetNotFoundError(f"{folder} is not a folder of images")
        self.paths = list_images(folder)
        if not self.paths:
            raise DatasetNotFoundError(
                f"no images in {os.path.abspath(folder)} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        self.folder, self.batch_size, self.size = folder, batch_size, size
        self.unreadable: list[str] = []

    def _load(self, path: str) -> torch.Tensor | None:
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"), dtype=np.float32)
        except Exception:  # noqa: BLE001  PIL raises many kinds; count and go on
            self.unreadable.append(path)
            return None
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
