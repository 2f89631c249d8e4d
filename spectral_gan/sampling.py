"""Samples of a trained generator as files: PNG images (and an .npz), or a 2-D scatter plot."""
from __future__ import annotations

import os
import sys

import numpy as np
import torch
from tqdm import tqdm
from torchvision.utils import save_image

from spectral_gan.checkpoint import load_generator
from spectral_gan.errors import ConfigError
from spectral_gan.visualize import scatter_image


@torch.no_grad()
def generate(generator, n: int, batch_size: int, seed: int, device: torch.device,
             progress: bool = False) -> torch.Tensor:
    """``n`` samples from noise of its own seeded generator (the same for every checkpoint);
    ``progress``: a bar on stderr."""
    gen = torch.Generator().manual_seed(seed)
    generator.to(device)
    out = []
    with tqdm(total=n, desc="generating", unit="img", file=sys.stderr, disable=not progress) as bar:
        for i in range(0, n, batch_size):
            out.append(generator(torch.randn(min(batch_size, n - i), generator.z_dim,
                                             generator=gen).to(device)).cpu())
            bar.update(len(out[-1]))
    return torch.cat(out)


def write_samples(ckpt_path: str, out: str, n: int, batch_size: int, seed: int,
                  device: torch.device, npz: bool = False, weights: str = "auto",
                  trust: bool = False, progress: bool = False) -> dict:
    """Write ``n`` samples of a checkpoint's generator under ``out`` (``weights``: auto = EMA
    weights if any, ema, raw; ``trust``: build whatever the checkpoint's config names, see
    ``checkpoint.load_generator``)."""
    if int(n) < 1:
        raise ConfigError(f"n must be a positive number of samples, got {n}")
    generator, datamodule, info = load_generator(ckpt_path, weights, trust=trust)
    samples = generate(generator, int(n), int(batch_size), int(seed), device, progress)
    os.makedirs(out, exist_ok=True)
    if samples.dim() == 4:
        for i, image in enumerate(tqdm(samples, desc="writing PNGs", unit="img", file=sys.stderr,
                                       disable=not progress)):
            save_image((image.clamp(-1, 1) + 1) / 2, os.path.join(out, f"{i:06d}.png"))
        array = ((samples.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    else:
        save_image(scatter_image(samples, getattr(datamodule, "modes", None)),
                   os.path.join(out, "scatter.png"))
        array = samples.numpy()
    if npz or samples.dim() != 4:
        np.savez_compressed(os.path.join(out, "samples.npz"), samples=array)
    return {**info, "n": len(samples), "out": os.path.abspath(out)}
