"""OmegaConf resolvers used by configs/ (registered on import of ``spectral_gan``)."""
from __future__ import annotations

import os

from omegaconf import OmegaConf


def register() -> None:
    if not OmegaConf.has_resolver("mul"):  # ${mul:100,${discriminator.pack}}: PacGAN's batch
        OmegaConf.register_new_resolver("mul", lambda a, b: a * b)
    if not OmegaConf.has_resolver("pid"):  # run directory names: unique among concurrent runs
        OmegaConf.register_new_resolver("pid", os.getpid, use_cache=True)


register()
