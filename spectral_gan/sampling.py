"""Samples of a trained generator as files: PNG images (and an .npz), or a 2-D scatter plot.

A class-conditional generator writes ``n`` samples of each requested class into one folder per
class (``out/<class>/000000.png``), the layout class-wise FID tools read.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import torch
from tqdm import tqdm
from torchvision.utils import save_image

from spectral_gan.checkpoints.load import load_generator
from spectral_gan.errors import ConfigError
from spectral_gan.visualize import scatter_image


@torch.no_grad()
def generate(generator, n: int, batch_size: int, seed: int, device: torch.device,
             progress: bool = False, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` samples from noise of its own seeded generator (the same for every checkpoint);
    ``labels``: for a class-conditional generator, the class of each of the ``n`` samples;
    ``progress``: a bar on stderr."""
    gen = torch.Generator().manual_seed(seed)
    generator.to(device)
    out = []
    with tqdm(total=n, desc="generating", unit="img", file=sys.stderr, disable=not progress) as bar:
        for i in range(0, n, batch_size):
            z = torch.randn(min(batch_size, n - i), generator.z_dim, generator=gen).to(device)
            if labels is None:
                out.append(generator(z).cpu())
            else:
                out.append(generator(z, labels[i:i + len(z)].to(device)).cpu())
            bar.update(len(out[-1]))
    return torch.cat(out)


def requested_classes(generator, classes) -> list[int] | None:
    """The classes to sample (None: the generator is unconditional and none were asked for):
    ``classes`` None means every class; an int or a list of ints picks some."""
    conditional = bool(getattr(generator, "conditional", False))
    if not conditional:
        if classes is not None:
            raise ConfigError(f"class={classes}: this checkpoint's generator is not "
                              f"class-conditional; drop class=")
        return None
    k = int(generator.num_classes)
    if classes is None:
        return list(range(k))
    chosen = [classes] if isinstance(classes, int) else list(classes)
    bad = [c for c in chosen if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < k]
    if bad or not chosen:
        raise ConfigError(f"class={classes}: the generator has classes 0..{k - 1}; pass one "
                          f"(class=3) or a list (class=[0,3,7])")
    return chosen


def write_samples(ckpt_path: str, out: str, n: int, batch_size: int, seed: int,
                  device: torch.device, npz: bool = False, weights: str = "auto",
                  trust: bool = False, progress: bool = False, classes=None) -> dict:
    """Write ``n`` samples of a checkpoint's generator under ``out`` (``weights``: auto = EMA
    weights if any, ema, raw; ``trust``: build whatever the checkpoint's config names, see
    ``checkpoint.load_generator``). A class-conditional generator writes ``n`` samples of each
    of ``classes`` (None: all) into ``out/<class>/``; the .npz then also holds ``labels``."""
    if int(n) < 1:
        raise ConfigError(f"n must be a positive number of samples, got {n}")
    generator, datamodule, info = load_generator(ckpt_path, weights, trust=trust)
    chosen = requested_classes(generator, classes)
    labels = None if chosen is None else torch.tensor(chosen).repeat_interleave(int(n))
    total = int(n) if labels is None else len(labels)
    samples = generate(generator, total, int(batch_size), int(seed), device, progress, labels)
    os.makedirs(out, exist_ok=True)
    extra = {} if labels is None else {"labels": labels.numpy()}
    if samples.dim() == 4:
        for i, image in enumerate(tqdm(samples, desc="writing PNGs", unit="img", file=sys.stderr,
                                       disable=not progress)):
            folder = out if labels is None else os.path.join(out, str(int(labels[i])))
            index = i if labels is None else i % int(n)
            os.makedirs(folder, exist_ok=True)
            save_image((image.clamp(-1, 1) + 1) / 2, os.path.join(folder, f"{index:06d}.png"))
        array = ((samples.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    else:
        save_image(scatter_image(samples, getattr(datamodule, "modes", None)),
                   os.path.join(out, "scatter.png"))
        array = samples.numpy()
    if npz or samples.dim() != 4:
        np.savez_compressed(os.path.join(out, "samples.npz"), samples=array, **extra)
    result = {**info, "n": len(samples), "out": os.path.abspath(out)}
    if chosen is not None:
        result["classes"] = chosen
    return result
