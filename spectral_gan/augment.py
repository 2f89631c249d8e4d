"""Differentiable augmentation of D's inputs (DiffAugment: Zhao, Liu, Lin, Zhu & Han, "Differentiable
Augmentation for Data-Efficient GAN Training", NeurIPS 2020; mit-han-lab/data-efficient-gans,
``DiffAugment_pytorch.py``, read for its constants).

The same random transformation family is applied to real and generated images, in D's update and
in G's (through which G's gradient flows: every operation is differentiable in the pixels), so D
never sees an un-augmented image and G is not pushed to generate augmented ones. Each sample gets
its own draw. Policies, for images in [-1, 1]:

- ``color``: brightness ``x + (u - 0.5)``, saturation ``(x - mean_c) * 2u + mean_c`` (a no-op on
  one channel), contrast ``(x - mean_chw) * (u + 0.5) + mean_chw``, with ``u ~ U[0, 1)`` per sample;
- ``translation``: a shift by up to 1/8 of the image size in each axis (integers, per sample),
  zeros shifted in;
- ``cutout``: a square of half the image size zeroed at a random position (per sample; it may
  extend past the border).

``diff_augment(x, "color,translation,cutout")`` applies them in that order, as the authors'
``DiffAugment(x, policy)`` does.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from spectral_gan.errors import ConfigError


def _uniform(x: Tensor) -> Tensor:
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def color(x: Tensor) -> Tensor:
    x = x + (_uniform(x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def _shift_index(size: int, shifts: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample source index ``i - shift`` along one axis and whether it falls inside."""
    src = torch.arange(size, device=shifts.device).unsqueeze(0) - shifts.unsqueeze(1)  # (B, size)
    return src.clamp(0, size - 1), (src >= 0) & (src < size)


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    b, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b,), device=x.device)
    dx = torch.randint(-sw, sw + 1, (b,), device=x.device)
    rows, row_ok = _shift_index(h, dy)
    cols, col_ok = _shift_index(w, dx)
    # gather rows then columns: out[b, :, i, j] = x[b, :, i - dy, j - dx], zero where outside
    out = x.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    out = out.gather(3, cols[:, None, None, :].expand(b, c, h, w))
    mask = (row_ok[:, :, None] & col_ok[:, None, :]).unsqueeze(1)
    return out * mask.to(x.dtype)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # the square's centre, as the authors draw it: anywhere on the image (size parity adjusted)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    y0, x0 = cy - ch // 2, cx - cw // 2
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES: dict[str, Callable[[Tensor], Tensor]] = {
    "color": color, "translation": translation, "cutout": cutout,
}


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> its names, checked; ``none``/empty -> ()."""
    if policy in (None, "", "none"):
        return ()
    names = tuple(p.strip() for p in str(policy).split(",") if p.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ConfigError(f"augment.policy: unknown DiffAugment policy {', '.join(unknown)}; valid "
                          f"are {', '.join(POLICIES)} (comma-separated, e.g. color,translation,cutout)")
    return names


def diff_augment(x: Tensor, policy: str | tuple[str, ...]) -> Tensor:
    """``x`` (B, C, H, W) with each policy applied in order, a fresh draw per sample."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    if names and x.dim() != 4:
        raise ConfigError(f"DiffAugment ({','.join(names)}) transforms images (B, C, H, W), but D's "
                          f"input has shape {tuple(x.shape)}: use augment=none with 2-D data")
    for name in names:
        x = POLICIES[name](x)
    return x


__all__ = ["POLICIES", "color", "cutout", "diff_augment", "parse_policy", "translation"]
