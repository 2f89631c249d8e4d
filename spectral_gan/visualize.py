"""Pictures of samples: image grids, and 2-D point clouds rasterized without a plotting library."""
from __future__ import annotations

import torch
from torchvision.utils import make_grid


def image_grid(images: torch.Tensor, nrow: int = 8) -> torch.Tensor:
    """(N, C, H, W) in [-1, 1] -> (3 or C, H', W') grid in [0, 1]."""
    return make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, normalize=True,
                     value_range=(-1, 1), padding=2)


def scatter_image(points: torch.Tensor, reference: torch.Tensor | None = None, size: int = 256,
                  margin: float = 0.15) -> torch.Tensor:
    """2-D points as a (3, size, size) image in [0, 1]: samples in blue, reference points in red.

    The view spans the reference points (or the samples) plus a margin, so a sample grid at
    every step shares one frame; samples outside it are clipped to the border.
    """
    pts = points.detach().float().cpu()
    ref = reference.detach().float().cpu() if reference is not None else pts
    lo, hi = ref.min(0).values, ref.max(0).values
    pad = (hi - lo).clamp_min(1e-3) * margin + 0.1
    lo, hi = lo - pad, hi + pad
    image = torch.ones(3, size, size)

    def pixels(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xy = ((p - lo) / (hi - lo) * (size - 1)).round().long().clamp(0, size - 1)
        return size - 1 - xy[:, 1], xy[:, 0]  # row from the top, column from the left

    r, c = pixels(pts)
    image[0, r, c], image[1, r, c], image[2, r, c] = 0.1, 0.3, 0.9
    if reference is not None:
        r, c = pixels(ref)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = (r + dr).clamp(0, size - 1), (c + dc).clamp(0, size - 1)
                image[0, rr, cc], image[1, rr, cc], image[2, rr, cc] = 0.9, 0.1, 0.1
    return image
