"""Image tensors to the GAN's range and size."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def to_size(images: torch.Tensor, size: int, mode: str = "resize") -> torch.Tensor:
    """Bring (N, C, h, w) images in [-1, 1] to (N, C, size, size).

    ``pad`` centers smaller images on a background of -1 (MNIST's 28 px in a 32 px frame, as
    usual for LeNet-style inputs) and falls back to resizing when the image is larger;
    ``resize`` uses antialiased bilinear interpolation.
    """
    h, w = images.shape[-2:]
    if (h, w) == (size, size):
        return images
    if mode == "pad" and h <= size and w <= size:
        top, left = (size - h) // 2, (size - w) // 2
        return F.pad(images, (left, size - w - left, top, size - h - top), value=-1.0)
    if mode not in ("pad", "resize"):
        raise ValueError(f"unknown resize mode {mode!r}; valid: pad, resize")
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False).clamp(-1, 1)
