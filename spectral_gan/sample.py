"""spectral-gan-sample: write generated images of a checkpoint as PNG files (and an .npz)."""
from __future__ import annotations

import os

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from torchvision.utils import save_image

from spectral_gan import config_resolvers
from spectral_gan.checkpoint import load_generator
from spectral_gan.errors import ConfigError
from spectral_gan.train import CONFIG_DIR, or_exit_on_config_error
from spectral_gan.visualize import scatter_image


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def generate(generator, n: int, batch_size: int, seed: int, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    generator.to(device)
    out = [generator(torch.randn(min(batch_size, n - i), generator.z_dim, generator=gen).to(device)).cpu()
           for i in range(0, n, batch_size)]
    return torch.cat(out)


def write_samples(cfg: DictConfig) -> dict:
    if int(cfg.n) < 1:
        raise ConfigError(f"n must be a positive number of samples, got {cfg.n}")
    generator, datamodule, info = load_generator(cfg.ckpt_path)
    samples = generate(generator, int(cfg.n), int(cfg.batch_size), int(cfg.seed), pick_device(cfg.device))
    os.makedirs(cfg.out, exist_ok=True)
    if samples.dim() == 4:
        for i, image in enumerate(samples):
            save_image((image.clamp(-1, 1) + 1) / 2, os.path.join(cfg.out, f"{i:06d}.png"))
        array = ((samples.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    else:
        save_image(scatter_image(samples, getattr(datamodule, "modes", None)),
                   os.path.join(cfg.out, "scatter.png"))
        array = samples.numpy()
    if cfg.npz or samples.dim() != 4:
        np.savez_compressed(os.path.join(cfg.out, "samples.npz"), samples=array)
    return {**info, "n": len(samples), "out": os.path.abspath(cfg.out)}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="sample")
def _main(cfg: DictConfig) -> None:
    config_resolvers.register()
    result = or_exit_on_config_error(lambda: write_samples(cfg))
    print(f"wrote {result['n']} samples of generator step {result['gen_step']} "
          f"({result['generator_weights']} weights) to {result['out']}")


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
